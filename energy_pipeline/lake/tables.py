"""Writing the lake's derived tables: hour-partitioned windows and one file per local day.

Writers replace exactly their own window: an hour fully inside the window is rewritten, an hour
the window only partly covers keeps its rows outside the window (under a lock, so two runs never
lose each other's minutes), and every file is swapped in atomically.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from energy_pipeline.lake.files import atomic_write_parquet
from energy_pipeline.lake.layout import day_path, hours_of, partition_path, state_dir


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
            path = partition_path(data_dir, table_name, hour)
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


def write_day(
    data_dir: Path, table_name: str, day: date, table: pa.Table, schema: pa.Schema
) -> Path:
    """Replace a daily table's file of `day` (cast to its schema, so types never vary)."""
    path = day_path(data_dir, table_name, day)
    atomic_write_parquet(table.select(schema.names).cast(schema), path)
    return path
