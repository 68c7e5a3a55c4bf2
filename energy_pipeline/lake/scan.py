"""Reading the lake: the files of a UTC window, schema-checked, and a daily table's days.

Readers list the hour folders a window touches and check every file's schema before DuckDB sees
it: a corrupt or foreign file is reported by name and skipped, never silently and never fatal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from energy_pipeline.lake.layout import (
    TMP_SUFFIX,
    day_path,
    hour_dir,
    hours_of,
    partition_path,
    table_dir,
)
from energy_pipeline.lake.schemas import RAW_SCHEMA


@dataclass
class LakeScan:
    """The usable files of a window and, by name, the ones skipped and why."""

    files: list[Path] = field(default_factory=list)
    infos: list[FileInfo] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


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


def existing(paths: list[Path]) -> list[Path]:
    return [p for p in paths if p.is_file()]


def hourly_files(data_dir: Path, table: str, start: datetime, end: datetime) -> list[Path]:
    """The stored files of an hour-partitioned table over [start, end)."""
    return existing([partition_path(data_dir, table, hour) for hour in hours_of(start, end)])


def read_day(data_dir: Path, table: str, day: date, schema: pa.Schema) -> pa.Table | None:
    """A daily table's stored day, or None when it has not been materialized."""
    path = day_path(data_dir, table, day)
    return pq.read_table(path, schema=schema) if path.is_file() else None


def day_files(data_dir: Path, table: str, days: list[date]) -> list[Path]:
    """The stored files of a daily table among `days`, in their order."""
    return existing([day_path(data_dir, table, d) for d in days])


def _hour_of(folder: Path) -> datetime | None:
    try:
        day = date.fromisoformat(folder.parent.name.removeprefix("date="))
        return datetime(
            day.year, day.month, day.day, int(folder.name.removeprefix("hour=")), tzinfo=UTC
        )
    except ValueError:
        return None


def hour_folders(data_dir: Path, table: str) -> list[tuple[datetime, Path]]:
    """Every `date=/hour=` folder of `table` with its UTC hour, oldest first."""
    out = []
    for folder in sorted(table_dir(data_dir, table).glob("date=*/hour=*")):
        hour = _hour_of(folder)
        if hour is not None and folder.is_dir():
            out.append((hour, folder))
    return out


def read_days(data_dir: Path, table: str, days: list[date], schema: pa.Schema) -> pa.Table:
    """The stored rows of a daily table over `days` (days never materialized are absent)."""
    files = day_files(data_dir, table, days)
    return pa.concat_tables(
        [pq.read_table(p, schema=schema) for p in files] or [schema.empty_table()]
    )
