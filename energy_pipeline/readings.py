"""The reading record: what a driver hands back and the collector lands and publishes.

A driver hands back one `Sample` per poll: metric names as a tuple that stays the same object
from poll to poll, and values as a float64 array in the same order. Invalid values are NaN in
the array; the lake writer drops them vectorised and counts them, so the hot path never loops
over readings in Python.

A driver that can recover readings it missed (a smart meter's 30-minute history after an
outage) hands them back in `Sample.backfill`: rows stamped at their own past instants, which the
collector lands through the same write-ahead log and sealing as the poll's own readings. They
are rows rather than more names and values because each row has its own instant.

Nothing here is Arrow: the long-running collector holds these and never imports it. The lake's
Arrow schemas are in `lake.schemas`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np


class Dictionary:
    """A string dictionary that only grows; codes stay valid for the process's life, so a
    batch of readings is a few array calls however many readings it holds."""

    def __init__(self) -> None:
        self._codes: dict[str, int] = {}
        self.values: list[str] = []

    def code(self, value: str) -> int:
        code = self._codes.get(value)
        if code is None:
            code = self._codes[value] = len(self.values)
            self.values.append(value)
        return code

    def codes(self, values: Sequence[str]) -> np.ndarray:
        return np.fromiter((self.code(v) for v in values), dtype=np.int32, count=len(values))


@dataclass(slots=True)
class Backfill:
    """Readings of earlier instants, one row each: `ts_us` (int64 µs since the epoch, UTC),
    `metrics` (a name per row) and `values` (float64) line up."""

    ts_us: np.ndarray
    metrics: tuple[str, ...]
    values: np.ndarray

    def __len__(self) -> int:
        return len(self.metrics)


@dataclass(slots=True)
class Sample:
    """One poll's values. `names` and `values` line up; NaN marks an invalid reading.

    `backfill` holds readings of earlier instants the device still had; live
    outputs ignore it, the lake keeps it.
    """

    names: tuple[str, ...]
    values: np.ndarray
    attributes: dict[str, str] = field(default_factory=dict)
    backfill: Backfill | None = None

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
