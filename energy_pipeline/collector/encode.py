"""Poll outcomes to a write-ahead-log payload (`frames`), vectorised: per device, never per
reading.

Metric names and device ids are dictionary-encoded against dictionaries that only grow, so a
tick's payload is a few `numpy.concatenate`/`repeat` calls however many readings it holds. NaN
values (invalid readings) are dropped here, with a count per device.

A sample's backfill rows (readings of earlier instants) join the same batch, so they reach the
lake through the same WAL acknowledgement and sealing. A backfill row at the poll's own instant
is dropped: that instant's readings are the poll's, and a commit never holds a key twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from energy_pipeline.collector.frames import PackedNames, PollColumns, RawColumns, pack
from energy_pipeline.readings import Dictionary, PollOutcome


def to_us(ts: float) -> int:
    return round(ts * 1_000_000)


@dataclass(slots=True)
class Encoded:
    """One commit's payload, with what the collector counts and the WAL's bookkeeping needs."""

    payload: bytes
    raw_rows: int
    poll_rows: int
    invalid: dict[str, int]
    first_us: int
    """Its oldest row's instant: a backfilled reading may be older than every poll."""


class OutcomeEncoder:
    def __init__(self) -> None:
        self.devices = Dictionary()
        self.metrics = Dictionary()
        self._packed = (PackedNames(), PackedNames())
        self._names: dict[int, tuple[tuple[str, ...], np.ndarray]] = {}

    def _metric_codes(self, names: tuple[str, ...]) -> np.ndarray:
        """Codes of a driver's names tuple, cached by identity (drivers reuse the tuple)."""
        hit = self._names.get(id(names))
        if hit is not None and hit[0] is names:
            return hit[1]
        codes = self.metrics.codes(names)
        self._names[id(names)] = (names, codes)
        return codes

    def encode(self, outcomes: Sequence[PollOutcome]) -> Encoded:
        oks = [o for o in outcomes if o.sample is not None and len(o.sample.names)]
        values_parts = [o.sample.values for o in oks]  # type: ignore[union-attr]
        if oks:
            values = np.concatenate(values_parts).astype(np.float64, copy=False)
            metric = np.concatenate([self._metric_codes(o.sample.names) for o in oks])  # type: ignore[union-attr]
            lengths = np.fromiter((len(v) for v in values_parts), dtype=np.int64, count=len(oks))
            device = np.repeat(
                np.fromiter((self.devices.code(o.device_id) for o in oks), np.int32, len(oks)),
                lengths,
            )
            ts = np.repeat(
                np.fromiter((to_us(o.ts.timestamp()) for o in oks), np.int64, len(oks)), lengths
            )
            nan = np.isnan(values)
            invalid: dict[str, int] = {}
            if nan.any():
                starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
                per_device = np.add.reduceat(nan, starts)
                invalid = {o.device_id: int(n) for o, n in zip(oks, per_device, strict=True) if n}
                keep = ~nan
                values, metric, device, ts = values[keep], metric[keep], device[keep], ts[keep]
        else:
            values = np.empty(0, np.float64)
            metric = device = np.empty(0, np.int32)
            ts = np.empty(0, np.int64)
            invalid = {}
        extra = [self._backfill(o) for o in oks if o.sample.backfill is not None]  # type: ignore[union-attr]
        if extra:
            ts = np.concatenate([ts, *(e[0] for e in extra)])
            device = np.concatenate([device, *(e[1] for e in extra)])
            metric = np.concatenate([metric, *(e[2] for e in extra)])
            values = np.concatenate([values, *(e[3] for e in extra)])
        polls = self._polls(outcomes)  # may code a device that failed: before the refresh
        devices, metrics = self._packed
        devices.refresh(self.devices.values)
        metrics.refresh(self.metrics.values)
        raw = RawColumns(ts, device, metric, values)
        first = min([int(polls.ts_us.min()), *(int(e[0].min()) for e in extra if len(e[0]))])
        return Encoded(pack(devices, metrics, raw, polls), len(ts), len(outcomes), invalid, first)

    def _polls(self, outcomes: Sequence[PollOutcome]) -> PollColumns:
        """One row per poll: per device, so a plain Python pass is cheap enough."""
        n = len(outcomes)
        return PollColumns(
            np.fromiter((to_us(o.ts.timestamp()) for o in outcomes), np.int64, n),
            np.fromiter((self.devices.code(o.device_id) for o in outcomes), np.int32, n),
            np.fromiter((o.ok for o in outcomes), np.uint8, n),
            np.fromiter((to_us(o.started_at.timestamp()) for o in outcomes), np.int64, n),
            np.fromiter((to_us(o.finished_at.timestamp()) for o in outcomes), np.int64, n),
            np.fromiter((o.latency_ms for o in outcomes), np.float64, n),
            np.fromiter((o.attempts for o in outcomes), np.int32, n),
            [o.error for o in outcomes],
        )

    def _backfill(self, o: PollOutcome) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(ts µs, device, metric, value) arrays of one sample's backfill rows."""
        rows = o.sample.backfill  # type: ignore[union-attr]
        values = rows.values.astype(np.float64, copy=False)
        metric = self.metrics.codes(rows.metrics)
        keep = (rows.ts_us != to_us(o.ts.timestamp())) & ~np.isnan(values)
        device = np.full(int(keep.sum()), self.devices.code(o.device_id), np.int32)
        return rows.ts_us[keep], device, metric[keep], values[keep]
