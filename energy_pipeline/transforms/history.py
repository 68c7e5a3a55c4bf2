"""One series of the lake for a chart: which step a range gets, and the SQL that buckets the
minute rows of the daily and minute tables and the raw readings into that step.

Pure: the caller lists the files (lake.scan) and runs the SQL on its own DuckDB connection, so
this module never imports DuckDB and the live dashboard can load it without paying for it.
Every source is reduced to the same minute-row shape (avg, min, max, last, delta, count) before
bucketing, so a range that is partly materialised and partly only raw still draws as one line.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

RAW_STEP_LIMIT = 60
"""Steps below a minute read raw readings only; the minute rows cannot be split."""
MAX_POINTS = 5000
TARGET_POINTS = 720
NICE_STEPS = (
    1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400,
    172800, 604800,
)  # fmt: skip
RESOLUTIONS = (
    ("hour", 3 * 3600),
    ("day", 2 * 86400),
    ("week", 10 * 86400),
    ("month", 40 * 86400),
    ("year", None),
)
"""The range's name as the dashboard's buttons say it: up to 3 h is 'hour', and so on."""


@dataclass(frozen=True)
class HistoryQuery:
    """One chart's request, parsed and bounded."""

    device: str
    metric: str
    start: datetime
    end: datetime
    step: int


def resolution(seconds: float) -> str:
    return next(name for name, limit in RESOLUTIONS if limit is None or seconds <= limit)


def auto_step(seconds: float) -> int:
    """The smallest nice step that draws the range in about TARGET_POINTS points."""
    want = seconds / TARGET_POINTS
    return next((s for s in NICE_STEPS if s >= want), NICE_STEPS[-1])


def bounded_step(seconds: float, asked: int | None) -> int:
    """The asked step, raised so a response never carries more than MAX_POINTS points."""
    step = auto_step(seconds) if asked is None else asked
    floor = -(-int(seconds) // MAX_POINTS)
    return max(step, floor, 1)


LOOKBACK_US = 3_600_000_000
"""Raw readings this long before a run's start give its first reading a previous value."""


@dataclass(frozen=True)
class RawRun:
    """Raw files of consecutive hours [start, end), with the hour before start in `files`
    too, so a counter's first delta in the run is not lost."""

    files: list[Path]
    start: datetime
    end: datetime


@dataclass(frozen=True)
class Sources:
    """Parquet files per shape: minute rows (daily and minute tables) and runs of raw hours.
    Each run's counter deltas are computed on their own, never across hours another table
    already covers, so an increase is counted once."""

    minute_rows: list[Path]
    raw_runs: list[RawRun]

    @property
    def raw_files(self) -> int:
        return sum(len(run.files) for run in self.raw_runs)


def _files(paths: list[Path]) -> str:
    return "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths) + "]"


MINUTE_ROWS_VIEW = "minute_rows"
"""The caller registers the series' minute rows (`minute_rows_sql`) under this name."""


def minute_rows_sql(files: list[Path]) -> str:
    """SQL with parameters (device, metric) → one series' minute rows of the files, with each
    row's file name, so the caller can keep them per file."""
    return f"""SELECT filename, epoch_us(ts) AS us, avg, min, max, last, delta, count
        FROM read_parquet({_files(files)}, union_by_name = true, filename = true)
        WHERE device_id = $device AND metric = $metric AND count > 0
        ORDER BY filename"""


def series_sql(sources: Sources, start: datetime, end: datetime, step: int, offset: int) -> str:
    """SQL with parameters (device, metric) → rows (t, avg, min, max, last, delta, count),
    t the bucket start in epoch seconds; minute rows come from MINUTE_ROWS_VIEW. Buckets are
    `step` seconds shifted by `offset` seconds (the site's UTC offset for day-sized steps, so
    a day bucket is a local day).
    Averages weigh each minute row by its reading count; counters add their deltas."""
    lo, hi = int(start.timestamp() * 1e6), int(end.timestamp() * 1e6)
    parts = []
    if sources.minute_rows:
        parts.append(
            f"""SELECT us, avg, min, max, last, delta, count FROM {MINUTE_ROWS_VIEW}
            WHERE us >= {lo} AND us < {hi} AND $device IS NOT NULL AND $metric IS NOT NULL"""
        )
    for run in sources.raw_runs:
        if not run.files:
            continue
        r0 = max(lo, int(run.start.timestamp() * 1e6))
        r1 = min(hi, int(run.end.timestamp() * 1e6))
        parts.append(
            f"""SELECT us, value AS avg, value AS min, value AS max, value AS last,
              CASE WHEN prev IS NULL THEN NULL WHEN value >= prev THEN value - prev
                   ELSE value END AS delta, 1 AS count
            FROM (SELECT epoch_us(ts) AS us, value,
                    lag(value) OVER (ORDER BY ts) AS prev
                  FROM read_parquet({_files(run.files)})
                  WHERE device_id = $device AND metric = $metric AND isfinite(value)
                    AND epoch_us(ts) >= {r0 - LOOKBACK_US} AND epoch_us(ts) < {r1})
            WHERE us >= {r0}"""
        )
    if not parts:
        parts.append(
            "SELECT 0::BIGINT AS us, 0.0 AS avg, 0.0 AS min, 0.0 AS max, 0.0 AS last, "
            "0.0 AS delta, 0 AS count WHERE $device IS NULL AND $metric IS NULL"
        )
    step_us = step * 1_000_000
    shift = offset * 1_000_000
    rows = " UNION ALL ".join(parts)
    return f"""SELECT ((us + {shift}) // {step_us} * {step_us} - {shift}) // 1000000 AS t,
          sum(avg * count) / sum(count) AS avg, min(min) AS min, max(max) AS max,
          arg_max(last, us) AS last, sum(delta) AS delta, sum(count)::BIGINT AS count
        FROM ({rows}) GROUP BY t ORDER BY t"""
