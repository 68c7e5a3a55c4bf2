"""`/api/history`: one series of the lake for the dashboard's charts, read by DuckDB on a worker
thread so the collector's event loop never waits for a query.

The reading side (`lakeseries`: DuckDB, Arrow, the lake's scanners) is imported on the first
query, in the worker, so a collector whose dashboard nobody asks for a chart never loads it.
Each hour of the range is read from the coarsest table that holds it: the daily table where a
local day is materialised, else that hour's minute table, else the raw readings — so the last
minutes, not yet resampled by the pipeline, still show.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from energy_pipeline.catalog import DeviceMeaning
from energy_pipeline.config import DEVICE_ID_PATTERN
from energy_pipeline.transforms.history import HistoryQuery, bounded_step

_DEVICE = re.compile(DEVICE_ID_PATTERN)
_METRIC = re.compile(r"[A-Za-z0-9_.\-]{1,128}")
_RELATIVE = re.compile(r"-(\d+(?:\.\d+)?)([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
DEFAULT_RANGE = timedelta(hours=24)
MAX_RANGE = timedelta(days=3660)


class HistoryError(ValueError):
    """A request parameter the history cannot serve; the message names it."""


def parse_instant(text: str, name: str, now: datetime, tz: ZoneInfo) -> datetime:
    """`now`, relative (`-24h`, `-30m`, `-7d`, `-2w`, `-90s`) or ISO 8601; an ISO time
    without an offset is the site's local time."""
    text = text.strip()
    if text == "now":
        return now
    match = _RELATIVE.fullmatch(text)
    if match:
        return now - timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise HistoryError(
            f"{name}: expected ISO 8601 or a relative time like -24h, got {text!r}"
        ) from None
    return when.replace(tzinfo=tz) if when.tzinfo is None else when


def parse_query(query: Mapping[str, list[str]], now: datetime, tz: ZoneInfo) -> HistoryQuery:
    def one(name: str) -> str | None:
        values = query.get(name)
        return values[0] if values else None

    device, metric = one("device"), one("metric")
    if device is None or not _DEVICE.fullmatch(device):
        raise HistoryError("device: expected a device id")
    if metric is None or not _METRIC.fullmatch(metric):
        raise HistoryError("metric: expected a metric name")
    end = parse_instant(one("to") or "now", "to", now, tz)
    start_text = one("from")
    start = (
        end - DEFAULT_RANGE if start_text is None else parse_instant(start_text, "from", now, tz)
    )
    if start >= end:
        raise HistoryError("from: expected an instant before to")
    if end - start > MAX_RANGE:
        raise HistoryError(f"from: a range of at most {MAX_RANGE.days} days")
    step_text = one("step") or "auto"
    asked: int | None = None
    if step_text != "auto":
        if not step_text.isdigit() or int(step_text) < 1:
            raise HistoryError(f"step: expected whole seconds or auto, got {step_text!r}")
        asked = int(step_text)
    seconds = (end - start).total_seconds()
    return HistoryQuery(device, metric, start, end, bounded_step(seconds, asked))


class History:
    def __init__(self, data_dir: Path, meta: dict[str, DeviceMeaning], timezone: str):
        self.data_dir = data_dir
        self.meta = meta
        self.tz = ZoneInfo(timezone)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="history")
        self._reader: Any = None

    async def serve(self, query: Mapping[str, list[str]], now: datetime) -> dict[str, Any]:
        q = parse_query(query, now, self.tz)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self.read, q)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def read(self, q: HistoryQuery) -> dict[str, Any]:
        if self._reader is None:
            from energy_pipeline.live.lakeseries import SeriesReader

            self._reader = SeriesReader(self.data_dir, self.meta, self.tz)
        return self._reader.read(q)
