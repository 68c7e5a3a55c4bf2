"""Where everything lives under `data_dir`. Table folder names equal asset and view names.

Raw and minute tables sit in hive folders from UTC instants (`date=YYYY-MM-DD/hour=HH`), never
from Dagster partition keys, so DST never produces two folders for one hour; none of their
columns is named like a folder. Daily-level tables are one file per local day,
`<table>/YYYY-MM-DD.parquet`, with no hive folders: the day is in their own `day` column (whose
file statistics keep day filters fast), so pandas, pyarrow, polars and DuckDB open a table
folder as it is, and a table's own `hour` column never clashes with a folder. Only `*.parquet`
files are complete; files being written end in `.tmp` and are renamed atomically.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

RAW_READINGS = "raw_readings"
POLLS = "polls"
MINUTE_READINGS = "minute_readings"
DAILY_READINGS = "daily_readings"
DAILY_DEVICE_SUMMARY = "daily_device_summary"
FORECAST_FEATURES = "forecast_features"
LOAD_FORECAST = "load_forecast"
FORECAST_ACCURACY = "forecast_accuracy"
DAILY_TABLES = (
    DAILY_READINGS,
    DAILY_DEVICE_SUMMARY,
    FORECAST_FEATURES,
    LOAD_FORECAST,
    FORECAST_ACCURACY,
)
"""The tables stored one file per local day."""
WAREHOUSE_FILE = "warehouse.duckdb"
STATE_DIR = "state"
EXPORTS_DIR = "exports"
TMP_SUFFIX = ".tmp"
PART_FILE = "data.parquet"
HOUR = timedelta(hours=1)
MINUTE_US = 60_000_000
HOUR_US = 3_600_000_000
HIVE_TYPES = {"date": "DATE", "hour": "INTEGER"}
"""The hive folder keys' types, pinned so DuckDB never guesses them from folder names."""
SEALED_STAMP = "%Y%m%dT%H%M"
"""The UTC period start in a sealed file's name, `<collector_id>-<stamp>.parquet`."""


def table_dir(data_dir: Path, table: str) -> Path:
    return data_dir / table


def hour_dir(data_dir: Path, table: str, when: datetime) -> Path:
    """The hive folder of the UTC hour containing `when` (an aware datetime)."""
    utc = when.astimezone(UTC)
    return data_dir / table / f"date={utc:%Y-%m-%d}" / f"hour={utc:%H}"


def sealed_name(collector_id: str, period_start: datetime) -> str:
    return f"{collector_id}-{period_start.astimezone(UTC):{SEALED_STAMP}}.parquet"


def sealed_name_pattern(collector_id: str) -> str:
    """A regex matching `sealed_name(collector_id, ...)` for any period."""
    return rf"{re.escape(collector_id)}-\d{{8}}T\d{{4}}\.parquet"


def floor_hour(instant: datetime) -> datetime:
    utc = instant.astimezone(UTC)
    return utc.replace(minute=0, second=0, microsecond=0)


def hours_of(start: datetime, end: datetime) -> Iterator[datetime]:
    """The UTC hours that overlap [start, end)."""
    hour = floor_hour(start)
    while hour < end:
        yield hour
        hour += HOUR


def partition_path(data_dir: Path, table: str, hour: datetime) -> Path:
    """An hour-partitioned derived table's (minute_readings') file of one UTC hour."""
    return hour_dir(data_dir, table, hour) / PART_FILE


def day_path(data_dir: Path, table: str, day: date) -> Path:
    """A daily table's file of one local day."""
    return data_dir / table / f"{day.isoformat()}.parquet"


def day_of(path: Path) -> date | None:
    """The local day a daily table's file holds, from its name; None for other files."""
    try:
        return date.fromisoformat(path.name.removesuffix(".parquet"))
    except ValueError:
        return None


def table_glob(data_dir: Path, table: str) -> str:
    """The glob of a table's complete files (never one being written): the hive folders of
    raw and minute tables, the day files of daily tables."""
    if table in DAILY_TABLES:
        return str(data_dir / table / "*.parquet")
    return str(data_dir / table / "date=*" / "hour=*" / "*.parquet")


def state_dir(data_dir: Path) -> Path:
    return data_dir / STATE_DIR


def status_path(data_dir: Path, collector_id: str) -> Path:
    return state_dir(data_dir) / f"collector-{collector_id}.json"


def warehouse_path(data_dir: Path) -> Path:
    return data_dir / WAREHOUSE_FILE


def exports_dir(data_dir: Path) -> Path:
    return data_dir / EXPORTS_DIR
