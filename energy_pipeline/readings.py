"""The reading record and the Arrow schemas of the lake's landing tables, defined once.

A driver hands back one `Sample` per poll: metric names as a tuple that stays the same object
from poll to poll, and values as a float64 array in the same order. Invalid values are NaN in
the array; the lake writer drops them vectorised and counts them, so the hot path never loops
over readings in Python.

A driver that can recover readings it missed (a smart meter's 30-minute history after an
outage) hands them back in `Sample.backfill`: rows stamped at their own past instants, which the
collector lands through the same write-ahead log and sealing as the poll's own readings. They
are a table rather than more names and values because each row has its own instant.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pyarrow as pa

TS_TYPE = pa.timestamp("us", tz="UTC")

RAW_SCHEMA = pa.schema(
    [
        pa.field("ts", TS_TYPE, nullable=False),
        pa.field("device_id", pa.string(), nullable=False),
        pa.field("metric", pa.string(), nullable=False),
        pa.field("value", pa.float64(), nullable=False),
    ]
)

BACKFILL_SCHEMA = pa.schema([RAW_SCHEMA.field(name) for name in ("ts", "metric", "value")])
"""`Sample.backfill`: RAW_SCHEMA without the device, which the collector adds."""

_DICT = pa.dictionary(pa.int32(), pa.string())
WAL_RAW_SCHEMA = pa.schema(
    [
        pa.field("ts", TS_TYPE, nullable=False),
        pa.field("device_id", _DICT, nullable=False),
        pa.field("metric", _DICT, nullable=False),
        pa.field("value", pa.float64(), nullable=False),
    ]
)
"""RAW_SCHEMA with dictionary-encoded strings: what the WAL, the collector's buffer and
simulated history hand to the lake writer."""

POLLS_SCHEMA = pa.schema(
    [
        pa.field("ts", TS_TYPE, nullable=False),
        pa.field("device_id", pa.string(), nullable=False),
        pa.field("ok", pa.bool_(), nullable=False),
        pa.field("started_at", TS_TYPE, nullable=False),
        pa.field("finished_at", TS_TYPE, nullable=False),
        pa.field("latency_ms", pa.float64(), nullable=False),
        pa.field("attempts", pa.int32(), nullable=False),
        pa.field("error", pa.string(), nullable=True),
    ]
)


def plain_raw(table: pa.Table) -> pa.Table:
    """The lake's RAW_SCHEMA (plain strings) from the dictionary-encoded form."""
    return table.cast(RAW_SCHEMA)


class Dictionary:
    """A string dictionary that only grows; codes stay valid for the process's life, so a
    batch of readings is a few array calls however many readings it holds."""

    def __init__(self) -> None:
        self._codes: dict[str, int] = {}
        self._values: list[str] = []
        self._array: pa.Array | None = None

    def code(self, value: str) -> int:
        code = self._codes.get(value)
        if code is None:
            code = self._codes[value] = len(self._values)
            self._values.append(value)
            self._array = None
        return code

    def codes(self, values: Sequence[str]) -> np.ndarray:
        return np.fromiter((self.code(v) for v in values), dtype=np.int32, count=len(values))

    @property
    def array(self) -> pa.Array:
        if self._array is None:
            self._array = pa.array(self._values, type=pa.string())
        return self._array


@dataclass(slots=True)
class Sample:
    """One poll's values. `names` and `values` line up; NaN marks an invalid reading.

    `backfill` (BACKFILL_SCHEMA) holds readings of earlier instants the device still had; live
    outputs ignore it, the lake keeps it.
    """

    names: tuple[str, ...]
    values: np.ndarray
    attributes: dict[str, str] = field(default_factory=dict)
    backfill: pa.Table | None = None

    def valid_values(self) -> dict[str, float]:
        """The readable form for people and JSON (not used on the collector's hot path)."""
        return {name: float(v) for name, v in zip(self.names, self.values, strict=True) if v == v}

    @property
    def invalid_count(self) -> int:
        return int(np.isnan(self.values).sum())


@dataclass(slots=True)
class PollOutcome:
    """What one scheduled poll of one device produced; fanned out to the lake and live outputs."""

    device_id: str
    ts: datetime
    started_at: datetime
    finished_at: datetime
    attempts: int
    sample: Sample | None = None
    error: str | None = None
    error_kind: str | None = None

    @property
    def ok(self) -> bool:
        return self.sample is not None

    @property
    def latency_ms(self) -> float:
        return (self.finished_at - self.started_at).total_seconds() * 1000.0
