"""The lake side of `/api/history`: which files hold a range, and one series read from them by
DuckDB. Imported by `History` on its first query, in its worker thread: this is where Arrow,
DuckDB and the lake's scanners come in, so a collector whose dashboard nobody asks for a chart
never loads them.
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa

from energy_pipeline.catalog import DeviceMeaning
from energy_pipeline.lake.layout import (
    DAILY_READINGS,
    HOUR,
    MINUTE_READINGS,
    RAW_READINGS,
    day_path,
    hours_of,
    partition_path,
)
from energy_pipeline.lake.scan import file_info, scan_window
from energy_pipeline.live.records import iso
from energy_pipeline.transforms.history import (
    MINUTE_ROWS_VIEW,
    RAW_STEP_LIMIT,
    HistoryQuery,
    RawRun,
    Sources,
    minute_rows_sql,
    resolution,
    series_sql,
)
from energy_pipeline.transforms.schemas import DAILY_READINGS_SCHEMA

COLUMNS = ("avg", "min", "max", "last", "delta", "count")
CACHE_ROWS = 600_000
"""Minute rows kept per (file, series): about 35 MB, a month of some fourteen series."""


def lake_sources(data_dir: Path, start: datetime, end: datetime, step: int) -> Sources:
    """The files that hold [start, end): raw only for sub-minute steps; else per hour the
    daily table's day, the minute table's hour, or the raw hour, coarsest first."""
    if step < RAW_STEP_LIMIT:
        return Sources([], [raw_run(data_dir, start, end)])
    daily: list[Path] = []
    covered: list[tuple[int, int]] = []
    day = (start - timedelta(days=1)).date()  # local days reach a day either side of UTC's
    while day <= (end + timedelta(days=1)).date():
        path = day_path(data_dir, DAILY_READINGS, day)
        day += timedelta(days=1)
        if path.is_file():
            info = file_info(path, DAILY_READINGS_SCHEMA)
            if info.problem is None and info.ts_max >= info.ts_min:
                daily.append(path)
                covered.append((info.ts_min, info.ts_max + 60_000_000))
    minute_rows = list(daily)
    raw_hours: list[datetime] = []
    for hour in hours_of(start, end):
        h0 = int(hour.timestamp() * 1_000_000)
        if any(lo <= h0 and h0 + 3_600_000_000 <= hi for lo, hi in covered):
            continue
        path = partition_path(data_dir, MINUTE_READINGS, hour)
        if path.is_file():
            minute_rows.append(path)
        else:
            raw_hours.append(hour)
    runs: list[tuple[datetime, datetime]] = []
    for hour in raw_hours:
        if runs and runs[-1][1] == hour:
            runs[-1] = (runs[-1][0], hour + HOUR)
        else:
            runs.append((hour, hour + HOUR))
    return Sources(minute_rows, [raw_run(data_dir, max(a, start), min(b, end)) for a, b in runs])


def raw_run(data_dir: Path, start: datetime, end: datetime) -> RawRun:
    files = scan_window(data_dir, RAW_READINGS, start - HOUR, end).files
    return RawRun(files, start, end)


class SeriesReader:
    """One DuckDB session and the minute-row cache, used from the history worker thread only."""

    def __init__(self, data_dir: Path, meta: dict[str, DeviceMeaning], tz: ZoneInfo):
        self.data_dir = data_dir
        self.meta = meta
        self.tz = tz
        self._con: Any = None
        self._rows: OrderedDict[tuple[str, int, int, str, str], pa.Table] = OrderedDict()
        self._cached_rows = 0

    def _connection(self) -> Any:
        """One DuckDB session for the worker thread, single-threaded so a query leaves the
        other core to the collector."""
        if self._con is None:
            import duckdb

            con = duckdb.connect()
            con.execute("SET TimeZone = 'UTC'")
            con.execute("SET threads = 1")
            con.execute("SET parquet_metadata_cache = true")
            self._con = con
        return self._con

    def read(self, q: HistoryQuery) -> dict[str, Any]:
        sources = lake_sources(self.data_dir, q.start, q.end, q.step)
        offset = 0
        if q.step >= 86400:
            delta = self.tz.utcoffset(q.start.replace(tzinfo=None))
            offset = int(delta.total_seconds()) if delta else 0
        con = self._connection()
        params = {"device": q.device, "metric": q.metric}
        con.register(MINUTE_ROWS_VIEW, self._minute_rows(con, sources.minute_rows, params))
        sql = series_sql(sources, q.start, q.end, q.step, offset)
        rows = con.execute(sql, params)
        columns = list(zip(*rows.fetchall(), strict=True)) or [()] * (len(COLUMNS) + 1)
        device = self.meta.get(q.device)
        meaning = device.metric(q.metric) if device is not None else None
        doc: dict[str, Any] = {
            "device": q.device,
            "metric": q.metric,
            "name": meaning.display_name if meaning else q.metric,
            "unit": meaning.unit if meaning else "",
            "kind": meaning.kind if meaning else "gauge",
            "from": iso(q.start.astimezone(UTC)),
            "to": iso(q.end.astimezone(UTC)),
            "step": q.step,
            "resolution": resolution((q.end - q.start).total_seconds()),
            "files": {"minute_rows": len(sources.minute_rows), "raw": sources.raw_files},
            "t": list(columns[0]),
        }
        for name, values in zip(COLUMNS, columns[1:], strict=True):
            doc[name] = [None if v is None or v != v else v for v in values]
        return doc

    def _minute_rows(self, con: Any, files: list[Path], params: dict[str, str]) -> Any:
        """The series' minute rows of `files`, read once per file version: a file is keyed by
        path, mtime and size, so a rewritten hour is read again and a closed one never is.
        The least recently used are dropped past CACHE_ROWS."""
        keys = []
        for path in files:
            try:
                st = path.stat()
            except OSError:
                continue
            keys.append((str(path), st.st_mtime_ns, st.st_size, params["device"], params["metric"]))
        missing = [key for key in keys if key not in self._rows]
        if missing:
            sql = minute_rows_sql([Path(k[0]) for k in missing])
            table = con.sql(sql, params=params).to_arrow_table()
            names = table.column("filename").to_pylist()
            rows = table.drop_columns(["filename"])
            bounds: dict[str, list[int]] = {}
            for i, name in enumerate(names):
                bounds.setdefault(name, [i, i])[1] = i + 1
            for key in missing:
                lo, hi = bounds.get(key[0], [0, 0])
                self._rows[key] = rows.slice(lo, hi - lo)
                self._cached_rows += hi - lo
        for key in keys:
            self._rows.move_to_end(key)
        parts = [self._rows[key] for key in keys]
        while self._cached_rows > CACHE_ROWS and len(self._rows) > len(keys):
            _, dropped = self._rows.popitem(last=False)
            self._cached_rows -= dropped.num_rows
        schema = pa.schema(
            [("us", pa.int64())]
            + [(c, pa.float64()) for c in COLUMNS[:-1]]
            + [("count", pa.int32())]
        )
        return pa.concat_tables(parts) if parts else schema.empty_table()
