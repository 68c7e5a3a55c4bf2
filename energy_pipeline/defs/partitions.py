"""Minute and daily partitions, both in the site time zone.

A `TimeWindowPartitionMapping` refuses two time zones, so minutes use the site zone too and
Dagster handles DST (1,380 or 1,500 minute keys on a Europe/Berlin switch day). Both start at
`pipeline.history_start`, a date from the config and never the clock: a code server running
for weeks, a run worker started today and the CLI agree on every key, so nothing drifts.
Dagster keeps time-window partitions as ranges, so millions of minute keys cost little, as
long as no unpartitioned asset depends on minute_readings (Dagster would list every key for it:
the warehouse's views need no such edge). The rolling `minute_window_days` only bounds what
the sensor requests (`minute_window_start`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import dagster as dg

from energy_pipeline.config import Config

MINUTE_FMT = "%Y-%m-%d-%H:%M"


def minute_window_start(config: Config, now: datetime) -> datetime:
    tz = ZoneInfo(config.site.timezone)
    first_day = now.astimezone(tz).date() - timedelta(days=config.pipeline.minute_window_days)
    return datetime(first_day.year, first_day.month, first_day.day, tzinfo=tz)


def minute_partitions(config: Config) -> dg.TimeWindowPartitionsDefinition:
    start = config.pipeline.history_start
    return dg.TimeWindowPartitionsDefinition(
        cron_schedule="* * * * *",
        start=datetime(start.year, start.month, start.day).strftime(MINUTE_FMT),
        fmt=MINUTE_FMT,
        timezone=config.site.timezone,
    )


def daily_partitions(config: Config) -> dg.DailyPartitionsDefinition:
    return dg.DailyPartitionsDefinition(
        start_date=config.pipeline.history_start.isoformat(), timezone=config.site.timezone
    )


def forecast_partitions(config: Config) -> dg.DailyPartitionsDefinition:
    """The daily partitions plus today: a day's forecast needs only the days before it, so
    today's partition exists from local midnight on."""
    return dg.DailyPartitionsDefinition(
        start_date=config.pipeline.history_start.isoformat(),
        timezone=config.site.timezone,
        end_offset=1,
    )
