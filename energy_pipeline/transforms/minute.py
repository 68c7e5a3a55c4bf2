"""Raw readings → per device, metric and minute: avg, min, max, last, count; counters as deltas.

One vectorised DuckDB query covers a whole window of minutes. Cleaning happens in the same pass:
a reading is dropped (and counted by reason) when it sits in the wrong hour folder, lies in the
future, is not finite, or falls outside the profile's min/max. Readings repeated across
overlapping files are de-duplicated exactly.

Counters (profile kind `counter`, ECHONET/Luxtronik energy) are resampled as deltas, never
averaged: each sample contributes `value - previous` to its minute; a drop is a reset (the
counter restarted from zero, so the new value is the increment) or, for unsigned registers that
were past half their range, a rollover (`value + wrap - previous`). The first sample of a window
takes its previous value from a look-back before the window, so minute deltas of adjacent runs
add up to the counter's total increase; across a gap the whole increase lands in the first
minute after it, so daily energy is conserved.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa

from energy_pipeline.catalog import Catalog
from energy_pipeline.catalog.tables import bounds_table
from energy_pipeline.lake.layout import HIVE_TYPES, RAW_READINGS
from energy_pipeline.lake.scan import LakeScan, overlapping, scan_window
from energy_pipeline.transforms.schemas import MINUTE_SCHEMA

REJECT_REASONS = ("misfiled", "future", "invalid")
HOUR_US = 3_600_000_000


@dataclass
class MinuteStats:
    """What a run read and what it dropped, by reason; shown in Dagster metadata."""

    files: int = 0
    rows_read: int = 0
    misfiled: int = 0
    future: int = 0
    invalid: int = 0
    out_of_range: int = 0
    duplicates: int = 0
    resets: int = 0
    skipped_files: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def connect() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB session in UTC, so timestamp arithmetic never depends on the host."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    return con


def _us(instant: datetime) -> int:
    return int(instant.timestamp() * 1_000_000)


def _source(files: list[Path]) -> str:
    hive = ", ".join(f"'{k}': {v}" for k, v in HIVE_TYPES.items())
    paths = ", ".join("'" + str(p).replace("'", "''") + "'" for p in files)
    return f"read_parquet([{paths}], hive_partitioning = true, hive_types = {{{hive}}})"


_OUT_OF_RANGE = "WHEN s.value < b.lo OR s.value > b.hi THEN 'out_of_range'"
_BOUNDS_JOIN = "LEFT JOIN bounds b ON s.device_id = b.device_id AND s.metric = b.metric"


def _classified(
    files: list[Path], overlap: list[Path], start: int, end: int, now: int, bounded: bool = False
) -> str:
    """SQL of every row with its reject reason (NULL = keep) and its duplicate count.

    Profile bounds need a join per row, so the main pass leaves them out (`bounded=False`);
    only the few minutes whose min or max falls outside them are recomputed with them."""
    parts = []
    cols = (
        "device_id, metric, epoch_us(ts) AS us, value,"
        f" epoch_us(CAST(date AS TIMESTAMP)) + hour::BIGINT * {HOUR_US} AS f"
    )
    if files:
        parts.append(f"SELECT {cols}, 0 AS dups FROM {_source(files)}")
    if overlap:
        parts.append(
            "SELECT device_id, metric, us,"
            " coalesce(max(value) FILTER (WHERE isfinite(value)), max(value)) AS value,"
            f" min(f) AS f, count(*) - 1 AS dups FROM (SELECT {cols} FROM {_source(overlap)})"
            " GROUP BY device_id, metric, us"
        )
    union = " UNION ALL ".join(parts)
    return f"""
        SELECT s.device_id, s.metric, s.us, s.value, s.dups,
          CASE WHEN s.us < s.f OR s.us >= s.f + {HOUR_US} THEN 'misfiled'
               WHEN s.us < {start} OR s.us >= {end} THEN 'outside'
               WHEN s.us >= {now} THEN 'future'
               WHEN NOT isfinite(s.value) THEN 'invalid'
               {_OUT_OF_RANGE if bounded else ""}
          END AS reject
        FROM ({union}) s
        {_BOUNDS_JOIN if bounded else ""}
    """


def compute_minutes(
    data_dir: Path,
    catalog: Catalog,
    start: datetime,
    end: datetime,
    now: datetime,
    con: duckdb.DuckDBPyConnection | None = None,
    ordered: bool = True,
) -> tuple[pa.Table, MinuteStats]:
    """Minute rows for [start, end) (UTC, minute-aligned), sorted by ts, device, metric; in no
    particular order with `ordered=False`, which spares a sort of every row when the caller
    places the rows itself (the daily grid)."""
    con = con or connect()
    stats = MinuteStats()
    lookback = timedelta(seconds=max(3600.0, 2 * max(catalog.intervals.values(), default=60)))
    lookback = min(lookback, timedelta(days=1))
    scan = scan_window(data_dir, RAW_READINGS, start, end)
    back = scan_window(data_dir, RAW_READINGS, start - lookback, start)
    stats.skipped_files = scan.problems
    stats.files = len(scan.files)
    if not scan.files:
        return MINUTE_SCHEMA.empty_table(), stats
    alone, overlap = overlapping(scan)
    s_us, e_us, n_us = _us(start), _us(end), _us(now)
    con.register("bounds", bounds_table(catalog, ()))
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE agg AS
        SELECT device_id, metric, us // 60000000 AS mi,
          avg(kept) AS avg, min(kept) AS min, max(kept) AS max,
          arg_max(value, CASE WHEN reject IS NULL THEN us END) AS last,
          count_if(reject IS NULL) AS n,
          count(*) AS rows_read,
          sum(dups) AS dups,
          {", ".join(f"count_if(reject = '{r}') AS {r}" for r in REJECT_REASONS)}
        FROM (SELECT *, CASE WHEN reject IS NULL THEN value END AS kept
              FROM ({_classified(alone, overlap, s_us, e_us, n_us)}))
        WHERE reject IS DISTINCT FROM 'outside'
        GROUP BY ALL"""
    )
    totals = con.execute(
        f"SELECT coalesce(sum(rows_read + dups), 0), coalesce(sum(dups), 0),"
        f" {', '.join(f'coalesce(sum({r}), 0)' for r in REJECT_REASONS)} FROM agg"
    ).fetchall()[0]
    assert totals is not None
    stats.rows_read, stats.duplicates = int(totals[0]), int(totals[1])
    for reason, count in zip(REJECT_REASONS, totals[2:], strict=True):
        setattr(stats, reason, int(count))

    stats.out_of_range = _apply_bounds(con, scan, s_us, e_us, n_us)
    series = con.execute("SELECT DISTINCT device_id, metric FROM agg WHERE n > 0").fetchall()
    counters = [(d, m) for d, m in series if catalog.is_counter(d, m)]
    con.register("bounds", bounds_table(catalog, series))
    con.execute(
        "CREATE OR REPLACE TEMP TABLE deltas"
        " (device_id VARCHAR, metric VARCHAR, mi BIGINT, delta DOUBLE, resets BIGINT)"
    )
    if counters:
        _counter_deltas(
            con, scan.files + back.files, counters, s_us, e_us, n_us, _us(start - lookback)
        )
        stats.resets = int(
            con.execute("SELECT coalesce(sum(resets), 0) FROM deltas").fetchall()[0][0]
        )  # type: ignore[index]
    result = con.sql(
        """SELECT make_timestamp(a.mi * 60000000)::TIMESTAMPTZ AS ts, a.device_id, a.metric,
             CASE WHEN b.is_counter THEN NULL ELSE a.avg END AS avg,
             a.min, a.max, a.last, a.n::INTEGER AS count,
             CASE WHEN b.is_counter THEN d.delta END AS delta,
             coalesce(d.resets, 0)::INTEGER AS resets
           FROM agg a
           LEFT JOIN bounds b ON a.device_id = b.device_id AND a.metric = b.metric
           LEFT JOIN deltas d ON a.device_id = d.device_id AND a.metric = d.metric AND a.mi = d.mi
           WHERE a.n > 0"""
        + (" ORDER BY a.mi, a.device_id, a.metric" if ordered else "")
    ).to_arrow_table()
    return result.cast(MINUTE_SCHEMA), stats


def _apply_bounds(
    con: duckdb.DuckDBPyConnection, scan: LakeScan, start: int, end: int, now: int
) -> int:
    """Recompute the minutes whose min or max lies outside the profile bounds without the
    out-of-range readings; returns how many readings that dropped."""
    con.execute(
        """CREATE OR REPLACE TEMP TABLE violations AS
        SELECT a.device_id, a.metric, a.mi FROM agg a
        JOIN bounds b ON a.device_id = b.device_id AND a.metric = b.metric
        WHERE a.n > 0 AND (a.min < b.lo OR a.max > b.hi)"""
    )
    minutes = sorted({mi for (mi,) in con.execute("SELECT DISTINCT mi FROM violations").fetchall()})
    if not minutes:
        return 0
    lo, hi = minutes[0] * 60_000_000, (minutes[-1] + 1) * 60_000_000
    touched = LakeScan()
    for path, info in zip(scan.files, scan.infos, strict=True):
        if info.ts_min < hi and info.ts_max >= lo:
            touched.files.append(path)
            touched.infos.append(info)
    alone, overlap = overlapping(touched)
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE bounded AS
        SELECT c.device_id, c.metric, c.us // 60000000 AS mi,
          avg(c.value) FILTER (WHERE c.reject IS NULL) AS avg,
          min(c.value) FILTER (WHERE c.reject IS NULL) AS min,
          max(c.value) FILTER (WHERE c.reject IS NULL) AS max,
          arg_max(c.value, c.us) FILTER (WHERE c.reject IS NULL) AS last,
          count(*) FILTER (WHERE c.reject IS NULL) AS n,
          count(*) FILTER (WHERE c.reject = 'out_of_range') AS out_of_range
        FROM ({_classified(alone, overlap, start, end, now, bounded=True)}) c
        SEMI JOIN violations v
          ON c.device_id = v.device_id AND c.metric = v.metric AND c.us // 60000000 = v.mi
        GROUP BY ALL"""
    )
    con.execute(
        """UPDATE agg SET avg = b.avg, min = b.min, max = b.max, last = b.last, n = b.n
        FROM bounded b
        WHERE agg.device_id = b.device_id AND agg.metric = b.metric AND agg.mi = b.mi"""
    )
    return int(con.execute("SELECT coalesce(sum(out_of_range), 0) FROM bounded").fetchall()[0][0])


def _counter_deltas(
    con: duckdb.DuckDBPyConnection,
    files: list[Path],
    counters: list[tuple[str, str]],
    start: int,
    end: int,
    now: int,
    lookback: int,
) -> None:
    """Per-minute deltas of counter series into temp table `deltas` (sample-level LAG)."""
    con.register(
        "counter_series",
        pa.table({"device_id": [d for d, _ in counters], "metric": [m for _, m in counters]}),
    )
    metrics = ", ".join("'" + m.replace("'", "''") + "'" for m in sorted({m for _, m in counters}))
    con.execute(
        f"""INSERT INTO deltas
        WITH s AS (
          SELECT r.device_id, r.metric, epoch_us(r.ts) AS us, max(r.value) AS value,
                 any_value(b.wrap) AS wrap
          FROM {_source(files)} r
          JOIN counter_series c ON r.device_id = c.device_id AND r.metric = c.metric
          LEFT JOIN bounds b ON r.device_id = b.device_id AND r.metric = b.metric
          WHERE r.metric IN ({metrics})
            AND epoch_us(r.ts) >= {lookback} AND epoch_us(r.ts) < {end}
            AND epoch_us(r.ts) < {now}
            AND epoch_us(r.ts) // {HOUR_US}
                = epoch_us(CAST(r.date AS TIMESTAMP)) // {HOUR_US} + r.hour
            AND isfinite(r.value)
            AND (b.lo IS NULL OR r.value >= b.lo) AND (b.hi IS NULL OR r.value <= b.hi)
          GROUP BY r.device_id, r.metric, epoch_us(r.ts)
        ), l AS (
          SELECT *, lag(value) OVER (PARTITION BY device_id, metric ORDER BY us) AS prev FROM s
        ), steps AS (
          SELECT device_id, metric, us // 60000000 AS mi,
            CASE WHEN prev IS NULL THEN NULL
                 WHEN value >= prev THEN value - prev
                 WHEN wrap IS NOT NULL AND prev > wrap / 2 AND value < wrap / 2
                   THEN value + wrap - prev
                 ELSE value END AS step,
            (prev IS NOT NULL AND value < prev) AS reset
          FROM l
        )
        SELECT device_id, metric, mi, sum(step), count(*) FILTER (WHERE reset)
        FROM steps WHERE mi >= {start // 60_000_000} GROUP BY ALL"""
    )
