"""CSV files the seeds' users already rely on, built from `daily_readings` (as bytes: where they
go and how they are written is `lake.exports`).

- PROGNOZA: `<exports>/<device>_readings_YYYY-MM-DD.csv`: `timestamp` (local ISO 8601 with
  milliseconds), `minutes_elapsed`, `marker_5min` … `marker_60min` (`True`/`False`), then one
  column per metric in the profile's register order (the minute mean; the last reading for
  counters), minutes with data only.
- Luxtronik logger: `<exports>/<device>/YYYY-MM-DD_daily.csv` (the local day) and
  `YYYY-MM-DD_weekly.csv` (the 7 days ending with it), one row per minute, one column per
  metric; files dated more than the retention before today are deleted.

Files are named by local date, so re-running a partition rewrites the same files.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from energy_pipeline.lake.exports import ExportFile, ExportKind
from energy_pipeline.lake.layout import DAILY_READINGS
from energy_pipeline.lake.scan import read_day
from energy_pipeline.transforms.minute import connect
from energy_pipeline.transforms.schemas import DAILY_READINGS_SCHEMA, MARKER_COLUMNS

ColumnOrder = Callable[[str, list[str]], list[str]]
"""(device, metrics) -> the metrics in column order; `Catalog.column_order`."""


def _wide(
    readings: pa.Table, device_id: str, with_markers: bool, order: ColumnOrder | None
) -> pa.Table | None:
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
    col = {metric: j for j, metric in enumerate(metrics)}
    for metric in order(device_id, metrics) if order else metrics:
        column = grid[:, col[metric]]
        columns[metric] = pa.array(column, mask=np.isnan(column))
    return pa.table(columns)


def _csv(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pa_csv.write_csv(table, sink, pa_csv.WriteOptions(quoting_style="needed"))
    return sink.getvalue()


def day_exports(
    today: pa.Table,
    week: pa.Table,
    devices: list[str] | None = None,
    order: ColumnOrder | None = None,
) -> list[ExportFile]:
    """The day's PROGNOZA and logger files for every device in `today` (or `devices`)."""
    con = connect()
    con.register("t", today)
    present = [d for (d,) in con.execute("SELECT DISTINCT device_id FROM t ORDER BY 1").fetchall()]
    files: list[ExportFile] = []
    for device_id in present if devices is None else [d for d in present if d in devices]:
        kinds: tuple[tuple[ExportKind, pa.Table, bool], ...] = (
            ("prognoza", today, True),
            ("daily", today, False),
            ("weekly", week, False),
        )
        for kind, source, with_markers in kinds:
            table = _wide(source, device_id, with_markers, order)
            if table is not None:
                files.append(ExportFile(device_id, kind, _csv(table)))
    return files


DayLoader = Callable[[date], pa.Table | None]


def stored_day(data_dir: Path) -> DayLoader:
    """Loads a day's materialized daily_readings file (None when there is none)."""

    def load(day: date) -> pa.Table | None:
        return read_day(data_dir, DAILY_READINGS, day, DAILY_READINGS_SCHEMA)

    return load


def export_files(
    day: date,
    load: DayLoader,
    devices: list[str] | None = None,
    order: ColumnOrder | None = None,
) -> list[ExportFile]:
    """One local day's files; the weekly roll-up takes whichever of the 6 days before exist.
    Nothing when the day itself has no readings."""
    today = load(day)
    if today is None or today.num_rows == 0:
        return []
    week = [t for t in (load(day - timedelta(days=i)) for i in range(6, 0, -1)) if t is not None]
    return day_exports(today, pa.concat_tables([*week, today]), devices, order)
