"""Jobs and schedules: the minute job (driven by the sensor), the daily layer shortly after
local midnight, the warehouse rebuild and the nightly upkeep."""

from __future__ import annotations

from typing import TYPE_CHECKING

import dagster as dg

from energy_pipeline.config import Config
from energy_pipeline.lake.layout import (
    DAILY_DEVICE_SUMMARY,
    DAILY_READINGS,
    FORECAST_ACCURACY,
    FORECAST_FEATURES,
    LOAD_FORECAST,
    MINUTE_READINGS,
)

if TYPE_CHECKING:
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )

DAILY_ASSETS = [DAILY_READINGS, DAILY_DEVICE_SUMMARY, FORECAST_FEATURES, "csv_exports"]
FORECAST_ASSETS = [LOAD_FORECAST, FORECAST_ACCURACY]
UPKEEP_MINUTE_OFFSET = 20
FORECAST_MINUTE_OFFSET = 25


def minute_job() -> UnresolvedAssetJobDefinition:
    return dg.define_asset_job(
        "minute_job",
        selection=[MINUTE_READINGS],
        description="minute_readings for a range of minutes (requested by the sensor)",
    )


def daily_job() -> UnresolvedAssetJobDefinition:
    return dg.define_asset_job(
        "daily_job",
        selection=DAILY_ASSETS,
        description="the daily tables and CSV exports for one local day",
    )


def forecast_job() -> UnresolvedAssetJobDefinition:
    return dg.define_asset_job(
        "forecast_job",
        selection=FORECAST_ASSETS,
        description="today's day-ahead load forecast and the backtest behind it",
    )


def warehouse_job() -> UnresolvedAssetJobDefinition:
    return dg.define_asset_job(
        "warehouse_job", selection=["warehouse"], description="rebuild warehouse.duckdb"
    )


def build_schedules(
    config: Config,
    daily: UnresolvedAssetJobDefinition,
    warehouse: UnresolvedAssetJobDefinition,
    upkeep: dg.JobDefinition,
    forecasts: UnresolvedAssetJobDefinition,
) -> list[dg.ScheduleDefinition]:
    tz = config.site.timezone
    minute = config.pipeline.daily_schedule_minute
    return [
        dg.build_schedule_from_partitioned_job(
            daily,
            name="daily_schedule",
            hour_of_day=0,
            minute_of_hour=minute,
            default_status=dg.DefaultScheduleStatus.RUNNING,
            description="yesterday's daily tables and exports, shortly after local midnight",
        ),
        dg.build_schedule_from_partitioned_job(
            forecasts,
            name="forecast_schedule",
            hour_of_day=0 if minute + FORECAST_MINUTE_OFFSET < 60 else 1,
            minute_of_hour=(minute + FORECAST_MINUTE_OFFSET) % 60,
            default_status=dg.DefaultScheduleStatus.RUNNING,
            description="today's forecast, once yesterday's forecast_features are written",
        ),
        dg.ScheduleDefinition(
            name="warehouse_schedule",
            job=warehouse,
            cron_schedule=f"{(minute + 10) % 60} {0 if minute < 50 else 1} * * *",
            execution_timezone=tz,
            default_status=dg.DefaultScheduleStatus.RUNNING,
            description="rebuild the warehouse views after the daily layer",
        ),
        dg.ScheduleDefinition(
            name="upkeep_schedule",
            job=upkeep,
            cron_schedule=f"{(minute + UPKEEP_MINUTE_OFFSET) % 60} 1 * * *",
            execution_timezone=tz,
            default_status=dg.DefaultScheduleStatus.RUNNING,
            description="compact sealed raw hours, apply retention, purge old run history",
        ),
    ]
