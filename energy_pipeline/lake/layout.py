"""Where everything lives under `data_dir`. Table folder names equal asset and view names.

Hive folders come from UTC instants (`date=YYYY-MM-DD/hour=HH`), never from Dagster partition
keys, so DST never produces two folders for one hour. Only `*.parquet` files are complete;
files being written end in `.tmp` and are renamed atomically.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

RAW_READINGS = "raw_readings"
POLLS = "polls"
MINUTE_READINGS = "minute_readings"
DAILY_READINGS = "daily_readings"
DAILY_DEVICE_SUMMARY = "daily_device_summary"
FORECAST_FEATURES = "forecast_features"
WAREHOUSE_FILE = "warehouse.duckdb"
STATE_DIR = "state"
EXPORTS_DIR = "exports"
TMP_SUFFIX = ".tmp"
PART_FILE = "data.parquet"
HOUR = timedelta(hours=1)
HIVE_TYPES = {"date": "DATE", "hour": "INTEGER"}
"""The hive folder keys' types, pinned so DuckDB never guesses them from folder names."""


def table_dir(data_dir: Path, table: str) -> Path:
    return data_dir / table


def hour_dir(data_dir: Path, table: str, when: datetime) -> Path:
    """The hive folder of the UTC hour containing `when` (an aware datetime)."""
    utc = when.astimezone(UTC)
    return data_dir / table / f"date={utc:%Y-%m-%d}" / f"hour={utc:%H}"


def floor_hour(instant: datetime) -> datetime:
    utc = instant.astimezone(UTC)
    return utc.replace(minute=0, second=0, microsecond=0)


def hours_of(start: datetime, end: datetime) -> Iterator[datetime]:
    """The UTC hours that overlap [start, end)."""
    hour = floor_hour(start)
    while hour < end:
        yield hour
        hour += HOUR


def partition_path(data_dir: Path, table: str, window_start: datetime) -> Path:
    """A derived table's file of one window: the hive folder of the window's first UTC hour
    (an hour of minute_readings, or a local day of the daily tables)."""
    return hour_dir(data_dir, table, window_start) / PART_FILE


def table_glob(data_dir: Path, table: str) -> str:
    """A glob DuckDB reads with hive_partitioning; it never matches files being written."""
    return str(data_dir / table / "**" / "*.parquet")


def state_dir(data_dir: Path) -> Path:
    return data_dir / STATE_DIR


def status_path(data_dir: Path, collector_id: str) -> Path:
    return state_dir(data_dir) / f"collector-{collector_id}.json"


def warehouse_path(data_dir: Path) -> Path:
    return data_dir / WAREHOUSE_FILE


def exports_dir(data_dir: Path) -> Path:
    return data_dir / EXPORTS_DIR
