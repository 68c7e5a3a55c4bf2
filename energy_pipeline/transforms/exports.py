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
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from energy_pipeline.lake.exports import ExportFile
from energy_pipeline.lake.layout import DAILY_READINGS
from energy_pipeline.lake.scan import read_day
from energy_pipeline.transforms.schemas import DAILY_READINGS_SCHEMA, MARKER_COLUMNS

ColumnOrder = Callable[[str, list[str]], list[str]]
"""(device, metrics) -> the metrics in column order; `Catalog.column_order`."""
DayLoader = Callable[[date], pa.Table | None]
WEEK = 7


@dataclass
class DeviceDay:
    """One device's minutes with data of one local day as a grid: a row per minute, a column
    per metric (in column order), NaN where the metric has no value that minute."""

    metrics: list[str]
    timestamp: pa.Array
    lead: dict[str, pa.Array]
    values: np.ndarray
    _bodies: dict[tuple[str, ...], bytes] = field(default_factory=dict)

    def body(self, metrics: list[str]) -> bytes:
        """The CSV rows (no header) of `timestamp` and `metrics`; a metric the device did not
        report that day is an empty column. Written once per column list."""
        key = tuple(metrics)
        if key not in self._bodies:
            self._bodies[key] = _csv(self.table(metrics, with_lead=False), header=False)
        return self._bodies[key]

    def table(self, metrics: list[str], with_lead: bool) -> pa.Table:
        columns: dict[str, pa.Array] = {"timestamp": self.timestamp}
        if with_lead:
            columns.update(self.lead)
        col = {metric: j for j, metric in enumerate(self.metrics)}
        empty = pa.nulls(len(self.timestamp), pa.float64())
        for metric in metrics:
            if metric in col:
                column = self.values[:, col[metric]]
                columns[metric] = pa.array(column, mask=np.isnan(column))
            else:
                columns[metric] = empty
        return pa.table(columns)


def _csv(table: pa.Table, header: bool = True) -> bytes:
    sink = io.BytesIO()
    options = pa_csv.WriteOptions(include_header=header, quoting_style="needed")
    pa_csv.write_csv(table, sink, options)
    return sink.getvalue()


def _numpy(column: pa.ChunkedArray, fill: object) -> np.ndarray:
    return pc.fill_null(column, fill).to_numpy()


def device_days(
    readings: pa.Table, order: ColumnOrder | None = None
) -> dict[str, DeviceDay | None]:
    """A daily_readings day as a DeviceDay per device (None for one without any reading).

    Scattered into a numpy grid by (minute_of_day, metric) index rather than pivoted in SQL: a
    Luxtronik device has ~1,750 metrics, and its day as FILTER aggregates costs billions of
    filter evaluations, where the scatter is linear in the rows. The minutes kept are those
    where the device has any reading; their wall time and markers are the day's grid.
    """
    if readings.num_rows == 0:
        return {}
    minute = readings.column("minute_of_day").to_numpy().astype(np.int64)
    size = int(minute.max()) + 1
    first = np.full(size, -1, dtype=np.int64)
    first[minute[::-1]] = np.arange(len(minute) - 1, -1, -1)
    wall = readings.column("local_ts").to_numpy().astype("datetime64[ms]")
    stamps = np.datetime_as_string(wall[first.clip(0)], unit="ms")
    markers = {m: _numpy(readings.column(m), False)[first.clip(0)] for m in MARKER_COLUMNS}
    devices = pc.dictionary_encode(readings.column("device_id")).combine_chunks()
    metrics = pc.dictionary_encode(readings.column("metric")).combine_chunks()
    metric_names = np.array(metrics.dictionary.to_pylist(), dtype=object)
    metric_idx = metrics.indices.to_numpy()
    position = {name: i for i, name in enumerate(metric_names.tolist())}
    device_idx = devices.indices.to_numpy()
    count = _numpy(readings.column("count"), 0)
    value = pc.coalesce(readings.column("avg"), readings.column("last")).to_numpy(
        zero_copy_only=False
    )
    elapsed = _numpy(readings.column("minutes_elapsed"), -1)
    out: dict[str, DeviceDay | None] = {}
    for d, device_id in enumerate(devices.dictionary.to_pylist()):
        sel = np.flatnonzero(device_idx == d)
        rows = np.flatnonzero(np.bincount(minute[sel], weights=count[sel], minlength=size) > 0)
        if len(rows) == 0:
            out[device_id] = None
            continue
        ids = np.unique(metric_idx[sel])
        names = sorted(metric_names[ids].tolist())
        ordered = order(device_id, names) if order else names
        column = np.full(len(metric_names), -1, dtype=np.int64)
        column[[position[m] for m in ordered]] = np.arange(len(ordered))
        grid = np.full((size, len(ordered)), np.nan)
        grid[minute[sel], column[metric_idx[sel]]] = value[sel]
        since = np.full(size, -1, dtype=np.int64)
        since[minute[sel]] = elapsed[sel]
        lead: dict[str, pa.Array] = {
            "minutes_elapsed": pa.array(since[rows], pa.int32(), mask=since[rows] < 0)
        }
        for marker, flags in markers.items():
            lead[marker] = pa.array(np.where(flags[rows], "True", "False"))
        out[device_id] = DeviceDay(ordered, pa.array(stamps[rows]), lead, grid[rows])
    return out


def _header(names: list[str]) -> bytes:
    return _csv(pa.table({name: pa.nulls(0) for name in names}))


class Exports:
    """The export files of local days, one day after another (a range run is one pass).

    Each stored daily_readings day is loaded and scattered into device grids once, and each
    device-day's CSV rows are written once: the weekly roll-ups of the 7 days that include it
    join those rows under their header rather than rebuild a week per day. Only the last 7
    days are kept.
    """

    def __init__(
        self, load: DayLoader, devices: list[str] | None = None, order: ColumnOrder | None = None
    ) -> None:
        self._load, self._devices, self._order = load, devices, order
        self._days: dict[date, dict[str, DeviceDay | None] | None] = {}

    def _day(self, day: date) -> dict[str, DeviceDay | None] | None:
        if day not in self._days:
            table = self._load(day)
            self._days[day] = None if table is None else device_days(table, self._order)
        return self._days[day]

    def files(self, day: date) -> list[ExportFile]:
        """The day's PROGNOZA, daily and weekly files for every device in its daily_readings
        (or those of `devices`); the weekly roll-up takes whichever of the 6 days before exist.
        Nothing when the day itself has no readings."""
        week = [day - timedelta(days=i) for i in range(WEEK - 1, -1, -1)]
        for old in [d for d in self._days if d not in week]:
            del self._days[old]
        today = self._day(day)
        if not today:
            return []
        grids = [g for g in (self._day(d) for d in week) if g]
        files: list[ExportFile] = []
        for device_id in sorted(today):
            if self._devices is not None and device_id not in self._devices:
                continue
            own = today[device_id]
            if own is not None:
                prognoza = own.table(own.metrics, with_lead=True)
                files.append(ExportFile(device_id, "prognoza", _csv(prognoza)))
                daily = _header(["timestamp", *own.metrics]) + own.body(own.metrics)
                files.append(ExportFile(device_id, "daily", daily))
            days = [d for g in grids if (d := g.get(device_id)) is not None]
            if days:
                names = sorted({m for d in days for m in d.metrics})
                metrics = self._order(device_id, names) if self._order else names
                rows = b"".join(d.body(metrics) for d in days)
                weekly = _header(["timestamp", *metrics]) + rows
                files.append(ExportFile(device_id, "weekly", weekly))
        return files


def stored_day(data_dir: Path) -> DayLoader:
    """Loads a day's materialized daily_readings file (None when there is none)."""

    def load(day: date) -> pa.Table | None:
        return read_day(data_dir, DAILY_READINGS, day, DAILY_READINGS_SCHEMA)

    return load
