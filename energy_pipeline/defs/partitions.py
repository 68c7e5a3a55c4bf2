"""Minute and daily partitions, both in the site time zone.

A `TimeWindowPartitionMapping` refuses two time zones, so minutes use the site zone too and
Dagster handles DST (1,380 or 1,500 minute keys on a Europe/Berlin switch day). Minute
partitions cover a rolling window whose start is a local midnight, so keys change once a day
and an asset never tracks more than ~50,000 minutes; daily partitions cover the whole history.
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


def minute_partitions(config: Config, now: datetime) -> dg.TimeWindowPartitionsDefinition:
    return dg.TimeWindowPartitionsDefinition(
        cron_schedule="* * * * *",
        start=minute_window_start(config, now).strftime(MINUTE_FMT),
        fmt=MINUTE_FMT,
        timezone=config.site.timezone,
    )


def daily_partitions(config: Config) -> dg.DailyPartitionsDefinition:
    return dg.DailyPartitionsDefinition(
        start_date=config.pipeline.history_start.isoformat(), timezone=config.site.timezone
    )
