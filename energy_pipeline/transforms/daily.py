"""Local days: the 1-minute grid per device and metric, and the per-device daily summary.

A day's minutes come from `minute_readings`; an hour whose minute file is missing (older than
the minute window, never materialized) or older than its raw folder (late files arrived) is
computed from `raw_readings` with the same transform, so a daily backfill of any day works.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from energy_pipeline.catalog import Catalog
from energy_pipeline.lake.layout import (
    HOUR,
    MINUTE_READINGS,
    MINUTE_US,
    RAW_READINGS,
    hour_dir,
    hours_of,
    partition_path,
)
from energy_pipeline.lake.scan import latest_mtime
from energy_pipeline.transforms.minute import MinuteStats, compute_minutes, connect
from energy_pipeline.transforms.schemas import (
    DAILY_READINGS_SCHEMA,
    MINUTE_SCHEMA,
    SUMMARY_SCHEMA,
)
from energy_pipeline.transforms.timegrid import day_window, minute_grid


@dataclass
class MinuteSource:
    """A window's minutes and where they came from."""

    table: pa.Table
    from_minute_table: int = 0
    from_raw: list[datetime] = field(default_factory=list)  # UTC hours computed from raw
    raw_stats: list[MinuteStats] = field(default_factory=list)

    @property
    def skipped_files(self) -> list[str]:
        return [p for s in self.raw_stats for p in s.skipped_files]


def minute_source(
    data_dir: Path,
    catalog: Catalog,
    start: datetime,
    end: datetime,
    now: datetime,
    con: duckdb.DuckDBPyConnection | None = None,
) -> MinuteSource:
    """Minutes of [start, end) in no particular order: the minute table where it is current,
    else computed from raw."""
    con = con or connect()
    parts: list[pa.Table] = []
    src = MinuteSource(MINUTE_SCHEMA.empty_table())
    missing: list[datetime] = []
    for hour in hours_of(start, end):
        path = partition_path(data_dir, MINUTE_READINGS, hour)
        minute_mtime = latest_mtime(path)
        raw_mtime = latest_mtime(hour_dir(data_dir, RAW_READINGS, hour))
        if minute_mtime is not None and (raw_mtime is None or raw_mtime <= minute_mtime):
            parts.append(pq.read_table(path, schema=MINUTE_SCHEMA))
            src.from_minute_table += 1
        elif raw_mtime is not None:
            missing.append(hour)
    for run_start, run_end in _runs(missing):
        lo, hi = max(run_start, start), min(run_end, end)
        table, stats = compute_minutes(data_dir, catalog, lo, hi, now, con, ordered=False)
        parts.append(table)
        src.from_raw += [h for h in missing if run_start <= h < run_end]
        src.raw_stats.append(stats)
    if parts:
        table = pa.concat_tables(parts)
        ts = table.column("ts")
        keep = pc.and_(
            pc.greater_equal(ts, pa.scalar(start, ts.type)), pc.less(ts, pa.scalar(end, ts.type))
        )
        src.table = table if pc.all(keep).as_py() else table.filter(keep)
    return src


def _runs(hours: list[datetime]) -> list[tuple[datetime, datetime]]:
    """Consecutive hours merged into [start, end) runs, so each is one query."""
    runs: list[tuple[datetime, datetime]] = []
    for hour in hours:
        if runs and runs[-1][1] == hour:
            runs[-1] = (runs[-1][0], hour + HOUR)
        else:
            runs.append((hour, hour + HOUR))
    return runs


def daily_readings(minutes: pa.Table, day: date, tz: ZoneInfo) -> pa.Table:
    """Every (device, metric) seen that day x every minute of the local day; gaps are rows with
    count 0 and null values. `minutes_elapsed` counts from the device's first reading.

    `minutes` are the day's minute rows (any order). Built by index arithmetic rather than a
    cross join and sort in SQL: the output is series-major, so a minute row's place is its
    series' rank times the day's minutes plus its minute of the day, and every other column is
    the grid repeated per series.
    """
    grid = minute_grid(day, tz)
    size = grid.num_rows
    rel = minutes.column("ts").cast(pa.int64()).to_numpy() - _epoch_us(grid)
    keep = (rel >= 0) & (rel < size * MINUTE_US) & (rel % MINUTE_US == 0)
    if not keep.all():
        minutes = minutes.filter(pa.array(keep))
        rel = rel[keep]
    if minutes.num_rows == 0:
        return DAILY_READINGS_SCHEMA.empty_table()
    minute = rel // MINUTE_US
    devices = pc.dictionary_encode(minutes.column("device_id")).combine_chunks()
    metrics = pc.dictionary_encode(minutes.column("metric")).combine_chunks()
    device_names = devices.dictionary.to_pylist()
    metric_names = metrics.dictionary.to_pylist()
    device = devices.indices.to_numpy().astype(np.int64)
    pair = device * len(metric_names) + metrics.indices.to_numpy()
    seen = np.zeros(len(device_names) * len(metric_names), dtype=bool)
    seen[pair] = True
    codes = np.flatnonzero(seen)
    index = np.empty(len(seen), dtype=np.int64)
    index[codes] = np.arange(len(codes))
    inverse = index[pair]
    keys = [
        (device_names[c // len(metric_names)], metric_names[c % len(metric_names)])
        for c in codes.tolist()
    ]
    order = sorted(range(len(codes)), key=keys.__getitem__)
    rank = np.empty(len(codes), dtype=np.int64)
    rank[order] = np.arange(len(codes))
    series, rows = len(codes), len(codes) * size
    at = rank[inverse] * size + minute
    first = np.full(len(device_names), size, dtype=np.int64)
    np.minimum.at(first, device, minute)
    series_device = (codes[order] // len(metric_names)).astype(np.int64)
    minute_of_day = np.tile(np.arange(size, dtype=np.int64), series)
    elapsed = minute_of_day - np.repeat(first[series_device], size)
    columns: dict[str, pa.Array] = {
        "day": pa.array(np.full(rows, (day - _EPOCH).days, dtype=np.int32)).cast(pa.date32()),
        "device_id": _repeat([keys[i][0] for i in order], size),
        "metric": _repeat([keys[i][1] for i in order], size),
    }
    tiled = grid.take(pa.array(minute_of_day))
    for name in tiled.column_names:
        columns[name] = tiled.column(name)
    columns["minutes_elapsed"] = pa.array(elapsed, pa.int32(), mask=elapsed < 0)
    source = np.full(rows, -1, dtype=np.int64)
    source[at] = np.arange(len(at))
    take = pa.array(source, mask=source < 0)
    for name in ("avg", "min", "max", "last", "delta"):
        columns[name] = minutes.column(name).take(take)
    for name in ("count", "resets"):
        columns[name] = pc.fill_null(minutes.column(name).take(take), 0)
    return pa.table(columns).select(DAILY_READINGS_SCHEMA.names).cast(DAILY_READINGS_SCHEMA)


_EPOCH = date(1970, 1, 1)


def _epoch_us(grid: pa.Table) -> int:
    return int(grid.column("ts")[0].cast(pa.int64()).as_py())


def _repeat(names: list[str], times: int) -> pa.Array:
    """Each name `times` times, in order, as a plain string column."""
    indices = np.repeat(np.arange(len(names), dtype=np.int32), times)
    return pa.DictionaryArray.from_arrays(indices, pa.array(names, pa.string())).cast(pa.string())


def daily_summary(
    minutes: pa.Table,
    day: date,
    tz: ZoneInfo,
    catalog: Catalog,
    devices: list[str],
    con: duckdb.DuckDBPyConnection | None = None,
) -> pa.Table:
    """One row per device: energy from counter deltas, peak 15-min mean power, completeness."""
    con = con or connect()
    start, end = day_window(day, tz)
    minutes_in_day = int((end - start).total_seconds() // 60)
    con.register("m", minutes)
    seen: dict[str, set[str]] = {}
    for device_id, metric in con.execute("SELECT DISTINCT device_id, metric FROM m").fetchall():
        seen.setdefault(device_id, set()).add(metric)
    all_devices = sorted(set(devices) | set(seen))
    roles = pa.table(
        {
            "device_id": all_devices,
            "minutes_expected": pa.array(
                [catalog.expected_minutes(d, minutes_in_day) for d in all_devices], pa.int32()
            ),
            "energy_metric": [catalog.energy_metric(d, seen.get(d, ())) for d in all_devices],
            "power_metric": [catalog.power_metric(d, seen.get(d, ())) for d in all_devices],
        },
        schema=pa.schema(
            [
                ("device_id", pa.string()),
                ("minutes_expected", pa.int32()),
                ("energy_metric", pa.string()),
                ("power_metric", pa.string()),
            ]
        ),
    )
    con.register("roles", roles)
    table = con.sql(
        f"""WITH presence AS (
              SELECT device_id, count(DISTINCT ts) AS present, sum(count) AS readings
              FROM m GROUP BY device_id),
            energy AS (
              SELECT r.device_id, sum(m.delta) AS energy, sum(m.resets) AS resets
              FROM roles r JOIN m ON m.device_id = r.device_id AND m.metric = r.energy_metric
              GROUP BY r.device_id),
            power AS (
              SELECT r.device_id, min(m.min) AS pmin, max(m.max) AS pmax,
                sum(m.avg * m.count) / sum(m.count) AS pavg
              FROM roles r JOIN m ON m.device_id = r.device_id AND m.metric = r.power_metric
              GROUP BY r.device_id),
            slots AS (
              SELECT r.device_id, time_bucket(INTERVAL 15 MINUTE, m.ts) AS slot,
                avg(m.avg) AS mean_power
              FROM roles r JOIN m ON m.device_id = r.device_id AND m.metric = r.power_metric
              WHERE m.avg IS NOT NULL GROUP BY ALL),
            peak AS (
              SELECT device_id, max(mean_power) AS peak,
                first(slot ORDER BY mean_power DESC, slot) AS peak_start
              FROM slots GROUP BY device_id),
            per_metric AS (
              SELECT device_id, metric, min(min) AS min, max(max) AS max,
                sum(avg * count) / nullif(sum(count) FILTER (WHERE avg IS NOT NULL), 0) AS avg,
                arg_max(last, ts) AS last, sum(delta) AS delta, count(*)::INTEGER AS minutes
              FROM m GROUP BY device_id, metric),
            stats AS (
              SELECT device_id, list(struct_pack(metric, min, max, avg, last, delta, minutes)
                                     ORDER BY metric) AS metric_stats
              FROM per_metric GROUP BY device_id)
        SELECT DATE '{day.isoformat()}' AS day, r.device_id,
          {minutes_in_day}::INTEGER AS minutes_in_day, r.minutes_expected,
          coalesce(p.present, 0)::INTEGER AS minutes_present,
          least(100.0, 100.0 * coalesce(p.present, 0) / r.minutes_expected) AS completeness_pct,
          coalesce(p.readings, 0)::BIGINT AS readings,
          r.energy_metric, e.energy, e.resets::INTEGER AS energy_resets,
          r.power_metric, w.pmin AS power_min, w.pmax AS power_max, w.pavg AS power_avg,
          k.peak AS peak_15min_power, k.peak_start AS peak_15min_start, s.metric_stats
        FROM roles r
        LEFT JOIN presence p USING (device_id)
        LEFT JOIN energy e USING (device_id)
        LEFT JOIN power w USING (device_id)
        LEFT JOIN peak k USING (device_id)
        LEFT JOIN stats s USING (device_id)
        ORDER BY r.device_id"""
    ).to_arrow_table()
    return table.select(SUMMARY_SCHEMA.names).cast(SUMMARY_SCHEMA)
