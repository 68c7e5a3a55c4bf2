"""Local days and the 1-minute grid with the PROGNOZA temporal markers.

Everything stored is UTC; the site time zone decides where a local day starts and ends (23 or
25 hours on DST days) and what the markers say. The grid is built in Python from `zoneinfo`
(1,500 rows at most), so no SQL engine's time-zone database is involved.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa

from energy_pipeline.lake.layout import MINUTE_US
from energy_pipeline.transforms.schemas import GRID_SCHEMA


def day_window(day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The UTC instants [start, end) of a local day."""
    start = datetime.combine(day, time(), tzinfo=tz).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(), tzinfo=tz).astimezone(UTC)
    return start, end


def days_between(start: date, end: date) -> list[date]:
    """Local dates from `start` to `end`, both included."""
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def minute_instants(start: datetime, end: datetime) -> np.ndarray:
    """Epoch microseconds of every minute in [start, end) (both on minute boundaries)."""
    first = int(start.timestamp()) * 1_000_000
    last = int(end.timestamp()) * 1_000_000
    return np.arange(first, last, MINUTE_US, dtype=np.int64)


def minute_grid(day: date, tz: ZoneInfo) -> pa.Table:
    """One row per minute of the local day: UTC ts, local wall time and the markers.

    `minute_of_day` counts minutes since local midnight (0..1379/1439/1499), so it stays unique
    on the day the clocks go back; the markers follow the local clock (true on minute 0 of each
    5/10/15/30/60-minute block), which on whole-hour DST shifts is the same thing.
    """
    start, end = day_window(day, tz)
    us = minute_instants(start, end)
    locals_ = [datetime.fromtimestamp(u / 1e6, UTC).astimezone(tz) for u in us.tolist()]
    clock_minute = np.fromiter((t.minute for t in locals_), dtype=np.int16, count=len(us))
    hours = np.fromiter((t.hour for t in locals_), dtype=np.int8, count=len(us))
    wall = np.array([t.replace(tzinfo=None) for t in locals_], dtype="datetime64[us]")
    weekday = day.weekday()
    n = len(us)
    columns = {
        "ts": pa.array(us, pa.int64()).cast(GRID_SCHEMA.field("ts").type),
        "local_ts": pa.array(wall),
        "minute_of_day": pa.array(np.arange(n, dtype=np.int16)),
        "marker_5min": pa.array(clock_minute % 5 == 0),
        "marker_10min": pa.array(clock_minute % 10 == 0),
        "marker_15min": pa.array(clock_minute % 15 == 0),
        "marker_30min": pa.array(clock_minute % 30 == 0),
        "marker_60min": pa.array(clock_minute == 0),
        "hour": pa.array(hours),
        "day_of_week": pa.array(np.full(n, weekday, dtype=np.int8)),
        "is_weekend": pa.array(np.full(n, weekday >= 5)),
    }
    return pa.table(columns, schema=GRID_SCHEMA)
