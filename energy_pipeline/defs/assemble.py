"""Assemble the Dagster definitions of one site from its config (tests build their own)."""

from __future__ import annotations

import dagster as dg

from energy_pipeline.config import Config
from energy_pipeline.defs.assets import build_assets
from energy_pipeline.defs.partitions import daily_partitions, minute_partitions
from energy_pipeline.defs.resources import EnergySite
from energy_pipeline.defs.schedules import (
    build_schedules,
    daily_job,
    forecast_job,
    minute_job,
    warehouse_job,
)
from energy_pipeline.defs.sensors import build_minute_sensor
from energy_pipeline.defs.upkeep import build_upkeep_job


def build_definitions(config: Config) -> dg.Definitions:
    minute_parts = minute_partitions(config)
    daily_parts = daily_partitions(config)
    minutes = minute_job()
    daily = daily_job()
    warehouse = warehouse_job()
    forecasts = forecast_job()
    upkeep = build_upkeep_job(config)
    return dg.Definitions(
        assets=build_assets(config, minute_parts, daily_parts),
        jobs=[minutes, daily, warehouse, upkeep, forecasts],
        sensors=[build_minute_sensor(config, minutes, minute_parts)],
        schedules=build_schedules(config, daily, warehouse, upkeep, forecasts),
        resources={"site": EnergySite(config_path=str(config.path))},
        executor=dg.in_process_executor,
    )
