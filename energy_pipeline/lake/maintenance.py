"""Lake upkeep: compact a sealed hour's minute files into one file, retention, and moving
daily tables from the old hive layout to one file per day.

Compaction builds the merged file in a hidden sibling folder and swaps the two folders with
Linux `renameat2(RENAME_EXCHANGE)`, one atomic step: a reader listing `hour=HH` sees all the
old files or the one new file, never both and never neither. The old folder is moved to
`state/trash/` and deleted on a later run, so a reader that listed it just before the swap can
still open its files. Files that land in the old folder during the swap are moved over. Where
`renameat2` is unavailable the swap falls back to two renames (a window of microseconds in
which the hour appears empty) and says so in the log.

Each swap is recorded in `state/compaction.json` (folder mtime before and after), so the
sensor can tell a compaction (same rows) from late data (rows to process again).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import json
import logging
import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from energy_pipeline.lake.files import atomic_write_json, atomic_write_parquet, fsync_dir
from energy_pipeline.lake.layout import DAILY_TABLES, TMP_SUFFIX, day_path, state_dir, table_dir
from energy_pipeline.lake.scan import file_info, hour_folders
from energy_pipeline.lake.tables import table_lock

log = logging.getLogger(__name__)

COMPACTED_PREFIX = "compacted-"
MANIFEST = "compaction.json"
TRASH = "trash"
TRASH_GRACE = timedelta(minutes=10)
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


@dataclass
class CompactionReport:
    compacted: list[str] = field(default_factory=list)
    rows: int = 0
    files_merged: int = 0
    skipped_files: list[str] = field(default_factory=list)
    atomic_swap: bool = True


def _libc_renameat2() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    fn = getattr(ctypes.CDLL(name, use_errno=True), "renameat2", None)
    if fn is not None:
        fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
        fn.restype = ctypes.c_int
    return fn


_RENAMEAT2 = _libc_renameat2()


def exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths; False (after a two-rename swap) where not supported."""
    if _RENAMEAT2 is not None:
        rc = _RENAMEAT2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
        if rc == 0:
            return True
        err = ctypes.get_errno()
        if err not in (22, 38, 95):  # EINVAL, ENOSYS, EOPNOTSUPP: not supported here
            raise OSError(err, os.strerror(err), str(a))
    parked = a.with_name(a.name + ".swap")
    b.rename(parked)
    a.rename(b)
    parked.rename(a)
    return False


def empty_trash(data_dir: Path, now: float | None = None) -> None:
    trash = state_dir(data_dir) / TRASH
    if not trash.is_dir():
        return
    now = time.time() if now is None else now
    for entry in trash.iterdir():
        if now - entry.stat().st_mtime > TRASH_GRACE.total_seconds():
            shutil.rmtree(entry, ignore_errors=True)


def read_manifest(data_dir: Path) -> dict[str, dict[str, int]]:
    try:
        doc = json.loads((state_dir(data_dir) / MANIFEST).read_text())
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def compact_hour(folder: Path, schema: pa.Schema, data_dir: Path, report: CompactionReport) -> None:
    """Merge one hour folder's files into one, swapping the folder atomically."""
    names = sorted(p.name for p in folder.glob("*.parquet"))
    good = [n for n in names if file_info(folder / n, schema).problem is None]
    bad = [n for n in names if n not in good]
    if len(good) <= 1 and all(n.startswith(COMPACTED_PREFIX) for n in good):
        return
    before = folder.stat().st_mtime_ns
    table = pa.concat_tables([pq.read_table(folder / n, schema=schema) for n in good])
    table = table.sort_by([("ts", "ascending"), ("device_id", "ascending")])
    staging = folder.with_name(f".{folder.name}.{uuid.uuid4().hex[:8]}{TMP_SUFFIX}")
    staging.mkdir()
    atomic_write_parquet(table, staging / f"{COMPACTED_PREFIX}{uuid.uuid4().hex[:12]}.parquet")
    for name in bad:  # keep what we could not read where the next scan reports it again
        os.link(folder / name, staging / name)
    report.atomic_swap &= exchange(staging, folder)
    fsync_dir(folder.parent)
    late = [p.name for p in staging.iterdir() if p.name not in good and p.name not in bad]
    for name in late:
        if not name.endswith(TMP_SUFFIX):
            (staging / name).rename(folder / name)
    trash = state_dir(data_dir) / TRASH
    trash.mkdir(parents=True, exist_ok=True)
    staging.rename(trash / f"{folder.parent.name}-{folder.name}-{uuid.uuid4().hex[:8]}")
    after = folder.stat().st_mtime_ns
    manifest = read_manifest(data_dir)
    rel = str(folder.relative_to(data_dir))
    manifest[rel] = {"before": before, "after": after}
    atomic_write_json(state_dir(data_dir) / MANIFEST, manifest)
    report.compacted.append(rel)
    report.rows += table.num_rows
    report.files_merged += len(good)
    report.skipped_files += [f"{folder / n}: unreadable or foreign, kept" for n in bad]


def compact(
    data_dir: Path, table: str, schema: pa.Schema, sealed_before: datetime
) -> CompactionReport:
    """Compact every hour folder of `table` that ended before `sealed_before`."""
    report = CompactionReport()
    empty_trash(data_dir)
    for hour, folder in hour_folders(data_dir, table):
        if hour + timedelta(hours=1) <= sealed_before:
            compact_hour(folder, schema, data_dir, report)
    if not report.atomic_swap:
        log.warning("renameat2 unavailable: compaction swapped folders with two renames")
    return report


def prune_days(data_dir: Path, table: str, before: date) -> list[Path]:
    """Delete the `date=` folders of `table` older than `before` (UTC dates)."""
    removed = []
    for folder in sorted(table_dir(data_dir, table).glob("date=*")):
        try:
            day = date.fromisoformat(folder.name.removeprefix("date="))
        except ValueError:
            continue
        if day < before:
            shutil.rmtree(folder)
            removed.append(folder)
    return removed


def migrate_daily_layout(data_dir: Path, table: str) -> list[Path]:
    """Move a daily table's files from the old hive layout (`date=/hour=/data.parquet`, the UTC
    hour of local midnight) to `<table>/YYYY-MM-DD.parquet`, the day read from the file's own
    `day` column. Idempotent; a day already in the new layout wins over its old file."""
    folder = table_dir(data_dir, table)
    moved: list[Path] = []
    for old in sorted(folder.glob("date=*/hour=*/*.parquet")):
        days = pq.read_table(old, columns=["day"]).column("day").unique().to_pylist()
        if len(days) == 1:
            new = day_path(data_dir, table, days[0])
            if new.exists():
                old.unlink()
            else:
                os.replace(old, new)
                moved.append(new)
    for hive in sorted(folder.glob("date=*/hour=*")) + sorted(folder.glob("date=*")):
        with contextlib.suppress(OSError):
            hive.rmdir()
    if moved:
        fsync_dir(folder)
    return moved


def migrate_daily_tables(data_dir: Path) -> list[Path]:
    """`migrate_daily_layout` for every daily table, each under its table lock."""
    moved: list[Path] = []
    for table in DAILY_TABLES:
        if any(table_dir(data_dir, table).glob("date=*")):
            with table_lock(data_dir, table):
                moved += migrate_daily_layout(data_dir, table)
    return moved
