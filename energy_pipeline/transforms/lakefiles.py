"""Reading and writing the lake's hive folders by UTC window.

Readers list the hour folders a window touches and check every file's schema before DuckDB sees
it: a corrupt or foreign file is reported by name and skipped, never silently and never fatal.
Writers replace exactly their own window: an hour fully inside the window is rewritten, an hour
the window only partly covers keeps its rows outside the window (under a lock, so two runs never
lose each other's minutes), and every file is swapped in atomically.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from energy_pipeline.lake.files import atomic_write_parquet
from energy_pipeline.lake.layout import TMP_SUFFIX, hour_dir, state_dir
from energy_pipeline.readings import RAW_SCHEMA

HOUR = timedelta(hours=1)
PART_FILE = "data.parquet"


@dataclass
class LakeScan:
    """The usable files of a window and, by name, the ones skipped and why."""

    files: list[Path] = field(default_factory=list)
    infos: list[FileInfo] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def floor_hour(instant: datetime) -> datetime:
    utc = instant.astimezone(UTC)
    return utc.replace(minute=0, second=0, microsecond=0)


def hours_of(start: datetime, end: datetime) -> Iterator[datetime]:
    """The UTC hours that overlap [start, end)."""
    hour = floor_hour(start)
    while hour < end:
        yield hour
        hour += HOUR


@dataclass(frozen=True)
class FileInfo:
    """A file's footer facts: a problem, or the ts and device_id ranges its rows span."""

    problem: str | None
    ts_min: int = 0
    ts_max: int = 0
    dev_min: str = ""
    dev_max: str = ""


_info_cache: dict[tuple[str, int, int], FileInfo] = {}


def _stat_range(meta: pq.FileMetaData, column: int) -> tuple[object, object] | None:
    lows, highs = [], []
    for rg in range(meta.num_row_groups):
        stats = meta.row_group(rg).column(column).statistics
        if stats is None or not stats.has_min_max:
            return None
        lows.append(stats.min)
        highs.append(stats.max)
    return (min(lows), max(highs)) if lows else None


def file_info(path: Path, expected: pa.Schema) -> FileInfo:
    """Checks the columns against `expected` (names and types) and reads the footer ranges."""
    try:
        st = path.stat()
    except OSError as exc:
        return FileInfo(f"unreadable ({exc.strerror})")
    key = (str(path), st.st_mtime_ns, st.st_size)
    cached = _info_cache.get(key)
    if cached is not None:
        return cached
    try:
        meta = pq.read_metadata(path)
        schema = meta.schema.to_arrow_schema()
    except (OSError, pa.ArrowException) as exc:
        info = FileInfo(f"not a readable Parquet file ({exc})")
    else:
        found = {f.name: f.type for f in schema}
        wanted = {f.name: f.type for f in expected}
        if found != wanted:
            info = FileInfo(f"foreign schema {found} (expected {wanted})")
        elif "ts" in found and "device_id" in found:
            ts = _stat_range(meta, schema.get_field_index("ts"))
            dev = _stat_range(meta, schema.get_field_index("device_id"))
            if meta.num_rows and (ts is None or dev is None):
                info = FileInfo(None, -(2**62), 2**62, "", "\uffff")
            elif meta.num_rows:
                info = FileInfo(None, _us(ts[0]), _us(ts[1]), str(dev[0]), str(dev[1]))
            else:
                info = FileInfo(None, 0, -1, "", "")
        else:
            info = FileInfo(None)
    if len(_info_cache) > 100_000:
        _info_cache.clear()
    _info_cache[key] = info
    return info


def _us(value: object) -> int:
    if isinstance(value, datetime):
        return int(value.timestamp() * 1_000_000)
    return int(value)  # type: ignore[call-overload]


def scan_window(
    data_dir: Path, table: str, start: datetime, end: datetime, schema: pa.Schema = RAW_SCHEMA
) -> LakeScan:
    """Files of the hour folders overlapping [start, end), schema-checked."""
    scan = LakeScan()
    for hour in hours_of(start, end):
        folder = hour_dir(data_dir, table, hour)
        try:
            names = sorted(p.name for p in folder.iterdir())
        except FileNotFoundError:
            continue
        for name in names:
            path = folder / name
            if name.endswith(TMP_SUFFIX) or name.startswith(".") or path.is_dir():
                continue
            if not name.endswith(".parquet"):
                scan.problems.append(f"{path}: foreign file (not *.parquet), skipped")
                continue
            info = file_info(path, schema)
            if info.problem is None:
                scan.files.append(path)
                scan.infos.append(info)
            else:
                scan.problems.append(f"{path}: {info.problem}, skipped")
    return scan


def overlapping(scan: LakeScan) -> tuple[list[Path], list[Path]]:
    """Split files into (alone, overlapping): only files whose ts and device ranges overlap
    another file's can hold the same (device, metric, ts) twice, so only they need the costly
    exact de-duplication. Rows inside one sealed file are unique by construction."""
    order = sorted(range(len(scan.files)), key=lambda i: scan.infos[i].ts_min)
    flagged: set[int] = set()
    active: list[int] = []
    for i in order:
        info = scan.infos[i]
        active = [j for j in active if scan.infos[j].ts_max >= info.ts_min]
        for j in active:
            other = scan.infos[j]
            if info.dev_min <= other.dev_max and other.dev_min <= info.dev_max:
                flagged.update((i, j))
        active.append(i)
    alone = [scan.files[i] for i in range(len(scan.files)) if i not in flagged]
    return alone, [scan.files[i] for i in sorted(flagged)]


def latest_mtime(folder: Path) -> int | None:
    try:
        return folder.stat().st_mtime_ns
    except FileNotFoundError:
        return None


@contextmanager
def table_lock(data_dir: Path, table: str) -> Iterator[None]:
    """Serialise read-modify-write of a table's files across runs and processes."""
    folder = state_dir(data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{table}.lock", "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _ts_us(table: pa.Table) -> np.ndarray:
    return table.column("ts").cast(pa.int64()).to_numpy()


def write_hourly(
    data_dir: Path,
    table_name: str,
    table: pa.Table,
    start: datetime,
    end: datetime,
    schema: pa.Schema,
) -> list[Path]:
    """Replace the window [start, end) of an hour-partitioned table with `table`'s rows.

    `table` must hold only rows inside the window, sorted by ts. Hours left without rows lose
    their file, so a re-run after data was removed does not keep stale minutes.
    """
    table = table.select(schema.names).cast(schema)
    ts = _ts_us(table)
    written: list[Path] = []
    start_us = int(start.timestamp() * 1_000_000)
    end_us = int(end.timestamp() * 1_000_000)
    with table_lock(data_dir, table_name):
        for hour in hours_of(start, end):
            h0 = int(hour.timestamp() * 1_000_000)
            h1 = h0 + 3_600_000_000
            lo, hi = np.searchsorted(ts, [max(h0, start_us), min(h1, end_us)])
            part = table.slice(lo, hi - lo)
            path = hour_dir(data_dir, table_name, hour) / PART_FILE
            if (h0 < start_us or h1 > end_us) and path.exists():
                old = pq.read_table(path, schema=schema)
                old_ts = old.column("ts").cast(pa.int64())
                outside = pc.or_(pc.less(old_ts, start_us), pc.greater_equal(old_ts, end_us))
                part = pa.concat_tables([old.filter(outside), part]).sort_by(
                    [("ts", "ascending"), ("device_id", "ascending"), ("metric", "ascending")]
                )
            if part.num_rows:
                atomic_write_parquet(part, path)
                written.append(path)
            else:
                path.unlink(missing_ok=True)
    return written


def partition_path(data_dir: Path, table_name: str, window_start: datetime) -> Path:
    """A daily table's file: the hive folder of the local day's first UTC instant."""
    return hour_dir(data_dir, table_name, window_start) / PART_FILE


def write_partition(
    data_dir: Path, table_name: str, window_start: datetime, table: pa.Table, schema: pa.Schema
) -> Path:
    path = partition_path(data_dir, table_name, window_start)
    atomic_write_parquet(table.select(schema.names).cast(schema), path)
    return path


def existing(paths: list[Path]) -> list[Path]:
    return [p for p in paths if p.is_file()]
