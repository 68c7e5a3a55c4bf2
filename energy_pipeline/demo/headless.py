"""The headless demo's pipeline: what the sensor and the daily schedule would run, in process.

The minute run is the sensor's own run request (`defs.sensors.run_request`) over the collected
range, so its tags cannot drift from what the sensor asks Dagster for.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta
from typing import TextIO
from zoneinfo import ZoneInfo

import dagster as dg

from energy_pipeline.config import Config
from energy_pipeline.defs.assemble import build_definitions
from energy_pipeline.defs.partitions import minute_window_start
from energy_pipeline.defs.sensors import (
    RANGE_END_TAG,
    RANGE_START_TAG,
    Planned,
    floor_minute,
    run_request,
)
from energy_pipeline.lake.layout import RAW_READINGS
from energy_pipeline.lake.scan import hour_folders
from energy_pipeline.lake.warehouse import query
from energy_pipeline.transforms.timegrid import days_between
from energy_pipeline.transforms.warehouse import TABLES, render


def run_headless(config: Config, started: datetime, out: TextIO) -> int:
    """What the sensor and the daily schedule would do, in this process: the live minutes as
    one range run, every day of history through the daily layer, then the warehouse."""
    for noisy in ("alembic", "dagster"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    now = datetime.now(UTC)
    defs = build_definitions(config)
    instance = dg.DagsterInstance.ephemeral()
    tz = ZoneInfo(config.site.timezone)
    # The collector has stopped and sealed everything it acknowledged, so every complete
    # minute is final: one range run, as the sensor would request it, over the last hour of
    # history and the live minutes (a slow start may leave the live minutes nearly empty).
    first = max(floor_minute(started) - timedelta(hours=1), minute_window_start(config, now))
    last = floor_minute(now) - timedelta(minutes=1)
    if last >= first:
        parts = defs.resolve_assets_def("minute_readings").partitions_def
        assert isinstance(parts, dg.TimeWindowPartitionsDefinition)
        request = run_request(parts, Planned(first, last + timedelta(minutes=1), "sealed"))
        tags = request.tags
        ok = defs.resolve_job_def("minute_job").execute_in_process(
            instance=instance, tags=tags, raise_on_error=False
        )
        print(
            f"minute_readings: {tags[RANGE_START_TAG]} .. {tags[RANGE_END_TAG]}: "
            f"{'ok' if ok.success else 'FAILED'}",
            file=out,
            flush=True,
        )
        if not ok.success:
            return 1
    daily = defs.resolve_job_def("daily_job")
    earliest = _earliest_raw_day(config, tz)
    yesterday = now.astimezone(tz).date() - timedelta(days=1)
    for day in days_between(earliest, yesterday) if earliest else []:
        result = daily.execute_in_process(
            instance=instance, partition_key=day.isoformat(), raise_on_error=False
        )
        print(f"daily {day}: {'ok' if result.success else 'FAILED'}", file=out, flush=True)
        if not result.success:
            return 1
    warehouse = defs.resolve_job_def("warehouse_job")
    if not warehouse.execute_in_process(instance=instance, raise_on_error=False).success:
        return 1
    header, rows = query(
        config.data_dir,
        "SELECT device_id, count(*) AS days, round(sum(energy), 3) AS energy, "
        "any_value(energy_metric) AS energy_metric, round(max(peak_15min_power), 1) AS peak_15min, "
        "round(avg(completeness_pct), 1) AS completeness_pct "
        "FROM daily_device_summary GROUP BY device_id ORDER BY device_id",
        TABLES,
    )
    print("\ndaily_device_summary:\n" + render(header, rows, "table"), file=out)
    header, rows = query(
        config.data_dir,
        "SELECT (SELECT count(*) FROM minute_readings) AS minute_rows, "
        "(SELECT count(*) FROM daily_readings) AS daily_rows, "
        "(SELECT count(*) FROM forecast_features) AS feature_rows",
        TABLES,
    )
    print("\n" + render(header, rows, "table"), file=out, flush=True)
    return 0


def _earliest_raw_day(config: Config, tz: ZoneInfo) -> date | None:
    folders = hour_folders(config.data_dir, RAW_READINGS)
    return folders[0][0].astimezone(tz).date() if folders else None
