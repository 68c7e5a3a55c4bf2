"""CSV files the seeds' users already rely on, written from `daily_readings`.

- PROGNOZA: `<exports>/<device>_readings_YYYY-MM-DD.csv`: `timestamp` (local ISO 8601 with
  milliseconds), `minutes_elapsed`, `marker_5min` … `marker_60min` (`True`/`False`), then one
  column per metric (the minute mean; the last reading for counters), minutes with data only.
- Luxtronik logger: `<exports>/<device>/YYYY-MM-DD_daily.csv` (the local day) and
  `YYYY-MM-DD_weekly.csv` (the 7 days ending with it), one row per minute, one column per
  metric; files dated more than the retention before today are deleted.

Files are named by local date, so re-running a partition rewrites the same files.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from energy_pipeline.config import Config
from energy_pipeline.lake.files import atomic_write_bytes
from energy_pipeline.lake.layout import DAILY_READINGS, exports_dir
from energy_pipeline.transforms.lakefiles import partition_path
from energy_pipeline.transforms.minute import connect
from energy_pipeline.transforms.schemas import DAILY_READINGS_SCHEMA, MARKER_COLUMNS
from energy_pipeline.transforms.timegrid import day_window

_DATED = re.compile(r"(\d{4}-\d{2}-\d{2})(?:_daily|_weekly)?\.csv$")


def prognoza_path(exports: Path, device_id: str, day: date) -> Path:
    return exports / f"{device_id}_readings_{day.isoformat()}.csv"


def logger_paths(exports: Path, device_id: str, day: date) -> tuple[Path, Path]:
    folder = exports / device_id
    return folder / f"{day.isoformat()}_daily.csv", folder / f"{day.isoformat()}_weekly.csv"


def _wide(readings: pa.Table, device_id: str, with_markers: bool) -> pa.Table | None:
    """One device's long minute rows as a wide table: one column per metric, minutes with data.

    Scattered into a numpy grid by (minute, metric) index rather than pivoted in SQL: a
    Luxtronik device has ~1,750 metrics, and a week of them as FILTER aggregates costs
    billions of filter evaluations and gigabytes, where the scatter is linear in the rows.
    """
    con = connect()
    con.register("r", readings)
    lead = ", any_value(minutes_elapsed) AS minutes_elapsed, " + ", ".join(
        f"any_value({m}) AS {m}" for m in MARKER_COLUMNS
    )
    minutes = con.sql(
        f"""SELECT ts, strftime(any_value(local_ts), '%Y-%m-%dT%H:%M:%S.%g') AS timestamp
            {lead if with_markers else ""}
            FROM r WHERE device_id = $1 GROUP BY ts HAVING sum(count) > 0 ORDER BY ts""",
        params=[device_id],
    ).to_arrow_table()
    if minutes.num_rows == 0:
        return None
    con.register("minutes", minutes)
    cells = con.sql(
        """SELECT m.row, dense_rank() OVER (ORDER BY r.metric) - 1 AS col, r.metric,
                  coalesce(r.avg, r.last) AS value
           FROM r JOIN (SELECT ts, row_number() OVER (ORDER BY ts) - 1 AS row FROM minutes) m
             ON r.ts = m.ts
           WHERE r.device_id = $1""",
        params=[device_id],
    ).to_arrow_table()
    metrics = sorted(pc.unique(cells["metric"]).to_pylist())
    grid = np.full((minutes.num_rows, len(metrics)), np.nan)
    values = cells["value"].to_numpy(zero_copy_only=False).astype(float)
    grid[cells["row"].to_numpy(), cells["col"].to_numpy()] = values
    columns: dict[str, pa.Array | pa.ChunkedArray] = {"timestamp": minutes["timestamp"]}
    if with_markers:
        columns["minutes_elapsed"] = minutes["minutes_elapsed"]
        for marker in MARKER_COLUMNS:
            flags = minutes[marker].to_numpy(zero_copy_only=False).astype(bool)
            columns[marker] = pa.array(np.where(flags, "True", "False"))
    for j, metric in enumerate(metrics):
        column = grid[:, j]
        columns[metric] = pa.array(column, mask=np.isnan(column))
    return pa.table(columns)


def _csv(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pa_csv.write_csv(table, sink, pa_csv.WriteOptions(quoting_style="needed"))
    return sink.getvalue()


def write_exports(
    exports: Path, day: date, today: pa.Table, week: pa.Table, devices: list[str] | None = None
) -> list[Path]:
    """Write the day's PROGNOZA and logger files for every device in `today` (or `devices`)."""
    con = connect()
    con.register("t", today)
    present = [d for (d,) in con.execute("SELECT DISTINCT device_id FROM t ORDER BY 1").fetchall()]
    written: list[Path] = []
    for device_id in present if devices is None else [d for d in present if d in devices]:
        daily_path, weekly_path = logger_paths(exports, device_id, day)
        for path, source, with_markers in (
            (prognoza_path(exports, device_id, day), today, True),
            (daily_path, today, False),
            (weekly_path, week, False),
        ):
            table = _wide(source, device_id, with_markers)
            if table is not None:
                atomic_write_bytes(path, _csv(table))
                written.append(path)
    return written


def prune_exports(exports: Path, today: date, retention_days: int) -> list[Path]:
    """Delete export files dated more than `retention_days` before `today`."""
    cutoff = today - timedelta(days=retention_days)
    removed: list[Path] = []
    if not exports.is_dir():
        return removed
    for path in exports.rglob("*.csv"):
        match = _DATED.search(path.name)
        if match and date.fromisoformat(match.group(1)) < cutoff:
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


DayLoader = Callable[[date], pa.Table | None]


def stored_day(data_dir: Path, tz: ZoneInfo) -> DayLoader:
    """Loads a day's materialized daily_readings partition (None when there is none)."""

    def load(day: date) -> pa.Table | None:
        path = partition_path(data_dir, DAILY_READINGS, day_window(day, tz)[0])
        return pq.read_table(path, schema=DAILY_READINGS_SCHEMA) if path.is_file() else None

    return load


def export_day(
    exports: Path, day: date, load: DayLoader, devices: list[str] | None = None
) -> list[Path]:
    """One local day's files; the weekly roll-up takes whichever of the 6 days before exist.
    Nothing is written when the day itself has no readings."""
    today = load(day)
    if today is None or today.num_rows == 0:
        return []
    week = [t for t in (load(day - timedelta(days=i)) for i in range(6, 0, -1)) if t is not None]
    return write_exports(exports, day, today, pa.concat_tables([*week, today]), devices)


def export_range(
    config: Config, first: date, last: date, device: str | None = None
) -> tuple[list[Path], list[date]]:
    """The `export` verb: every day in [first, last] from daily_readings where materialized,
    else computed from the lake (minute_readings, else raw) without writing any table.
    Returns the files written and the days that had no readings."""
    from energy_pipeline.catalog import build_catalog
    from energy_pipeline.transforms.daily import daily_readings, minute_source

    if device is not None:
        config.device(device)
    tz = ZoneInfo(config.site.timezone)
    catalog = build_catalog(config)
    stored = stored_day(config.data_dir, tz)
    cache: dict[date, pa.Table | None] = {}

    def load(day: date) -> pa.Table | None:
        if day not in cache:
            table = stored(day)
            if table is None:
                start, end = day_window(day, tz)
                src = minute_source(config.data_dir, catalog, start, end, datetime.now(UTC))
                table = daily_readings(src.table, day, tz) if src.table.num_rows else None
            cache[day] = table
        return cache[day]

    written: list[Path] = []
    empty: list[date] = []
    day = first
    while day <= last:
        files = export_day(exports_dir(config.data_dir), day, load, [device] if device else None)
        written += files
        if not files:
            empty.append(day)
        day += timedelta(days=1)
    return written, empty
