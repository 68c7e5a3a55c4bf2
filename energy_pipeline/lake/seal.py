"""The sealing writer: acknowledged rows become Parquet files of the raw lake, exactly once.

A file holds one period (a minute for the collector, an hour for simulated history) of one
collector: `<table>/date=YYYY-MM-DD/hour=HH/<collector_id>-<YYYYMMDDTHHMM>.parquet`, written by
`atomic_write_parquet` (temp, fsync, rename). The name is a function of collector and period,
so sealing is idempotent: if the file is already there (a WAL replay after a crash that came
between sealing and deleting the segment, a poll that finished after its minute was sealed, or
readings a device backfilled into a past minute), the new rows are merged in, minus every key
the file already has, and the file is replaced atomically. The key of a reading is (device_id,
ts, metric), not the poll's (device_id, ts): a backfilled reading may share its instant with a
poll's other readings and must still land. No reading ever lands twice and readers never see a
half file.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from energy_pipeline.lake.files import atomic_write_parquet
from energy_pipeline.lake.layout import (
    MINUTE_US,
    POLLS,
    RAW_READINGS,
    SEALED_STAMP,
    hour_dir,
    sealed_name,
)
from energy_pipeline.lake.schemas import POLLS_SCHEMA, RAW_SCHEMA, plain_raw

_KEYS = {RAW_READINGS: ["device_id", "ts", "metric"], POLLS: ["device_id", "ts"]}


def _ts_us(table: pa.Table) -> np.ndarray:
    return table.column("ts").cast(pa.int64()).to_numpy()


def split_periods(table: pa.Table, period_us: int) -> list[tuple[int, pa.Table]]:
    """(period start in µs, rows of that period), vectorised; rows keep their order."""
    if table.num_rows == 0:
        return []
    index = _ts_us(table) // period_us
    if index[0] == index[-1] and (index == index[0]).all():
        return [(int(index[0]) * period_us, table)]
    order = np.argsort(index, kind="stable")
    sorted_index = index[order]
    starts = np.flatnonzero(np.r_[True, sorted_index[1:] != sorted_index[:-1]])
    ends = np.r_[starts[1:], len(order)]
    taken = table.take(pa.array(order))
    return [
        (int(sorted_index[s]) * period_us, taken.slice(s, e - s))
        for s, e in zip(starts, ends, strict=True)
    ]


class LakeWriter:
    """Writes the raw lake's Parquet files of one collector id."""

    def __init__(self, data_dir: Path, collector_id: str):
        self.data_dir = data_dir
        self.collector_id = collector_id

    def path(self, table: str, period_start_us: int) -> Path:
        start = datetime.fromtimestamp(period_start_us / 1_000_000, tz=UTC)
        return hour_dir(self.data_dir, table, start) / sealed_name(self.collector_id, start)

    def write(self, raw: pa.Table, polls: pa.Table, period_us: int = MINUTE_US) -> int:
        """Land rows (raw in RAW_SCHEMA or its dictionary form, polls in POLLS_SCHEMA)."""
        files = 0
        for table, rows, schema in (
            (RAW_READINGS, plain_raw(raw), RAW_SCHEMA),
            (POLLS, polls.cast(POLLS_SCHEMA), POLLS_SCHEMA),
        ):
            for start, part in split_periods(rows, period_us):
                self._write_file(self.path(table, start), part, schema, _KEYS[table])
                files += 1
        return files

    def _write_file(self, path: Path, rows: pa.Table, schema: pa.Schema, key: list[str]) -> None:
        if path.exists():
            existing = pq.read_table(path, schema=schema)
            fresh = rows.join(
                existing.select(key).group_by(key).aggregate([]), key, join_type="left anti"
            )
            if fresh.num_rows == 0:
                return
            rows = pa.concat_tables([existing, fresh.select(schema.names).cast(schema)])
        atomic_write_parquet(rows.cast(schema), path)


def earliest_other_minute(data_dir: Path, collector_id: str) -> datetime | None:
    """The first minute any other collector sealed, read from file names (no data is opened)."""
    first: str | None = None
    for path in (data_dir / POLLS).glob("date=*/hour=*/*.parquet"):
        owner, _, stamp = path.stem.rpartition("-")
        if owner and owner != collector_id and (first is None or stamp < first):
            first = stamp
    if first is None:
        return None
    return datetime.strptime(first, SEALED_STAMP).replace(tzinfo=UTC)
