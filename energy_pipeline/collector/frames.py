"""One commit as a write-ahead-log payload: little-endian columns packed with numpy, no Arrow.

The 24/7 collector writes these and never loads Arrow (~40 MB of mapped libraries and heap);
only the short-lived seal process reads them back and builds Parquet. A payload is whole by
itself: it carries the device and metric dictionaries its codes refer to, so any frame of any
segment decodes alone. The dictionaries only grow, so the encoder packs them once per growth and
a tick pays one bytes join for them (a few kB against the readings' 24 bytes each).

Layout: `_COUNTS` (raw rows, poll rows, devices, metrics, then the byte lengths of the device,
metric and error strings), the device and metric dictionaries (int32 lengths, then UTF-8), the
raw columns (ts µs int64, device int32, metric int32, value float64), then the poll columns (ts,
device, ok uint8, started and finished µs, latency ms float64, attempts int32, error lengths
int32 with -1 for none, then the errors' UTF-8).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

_COUNTS = struct.Struct("<7I")
_I32, _I64, _F64, _U8 = np.dtype("<i4"), np.dtype("<i8"), np.dtype("<f8"), np.dtype("u1")


def pack_strings(values: Sequence[str | None]) -> tuple[bytes, bytes]:
    """(int32 lengths, -1 for None; the UTF-8 bytes joined)."""
    encoded = [None if v is None else v.encode() for v in values]
    lengths = np.fromiter((-1 if e is None else len(e) for e in encoded), _I32, len(encoded))
    return lengths.tobytes(), b"".join(e for e in encoded if e is not None)


def unpack_strings(lengths: np.ndarray, blob: bytes) -> list[str | None]:
    ends = np.cumsum(np.maximum(lengths, 0))
    starts = ends - np.maximum(lengths, 0)
    return [
        None if n < 0 else blob[s:e].decode()
        for n, s, e in zip(lengths.tolist(), starts.tolist(), ends.tolist(), strict=True)
    ]


@dataclass(slots=True)
class RawColumns:
    ts_us: np.ndarray
    device: np.ndarray
    metric: np.ndarray
    value: np.ndarray


@dataclass(slots=True)
class PollColumns:
    ts_us: np.ndarray
    device: np.ndarray
    ok: np.ndarray
    started_us: np.ndarray
    finished_us: np.ndarray
    latency_ms: np.ndarray
    attempts: np.ndarray
    error: list[str | None]


@dataclass(slots=True)
class Payload:
    """A decoded frame: codes index `devices` and `metrics`."""

    devices: list[str]
    metrics: list[str]
    raw: RawColumns
    polls: PollColumns


@dataclass(slots=True)
class PackedNames:
    """A dictionary's strings as packed into every payload, rebuilt only when it grows."""

    count: int = 0
    lengths: bytes = b""
    blob: bytes = b""

    def refresh(self, values: list[str]) -> None:
        if len(values) != self.count:
            self.lengths, self.blob = pack_strings(values)
            self.count = len(values)


def pack(devices: PackedNames, metrics: PackedNames, raw: RawColumns, polls: PollColumns) -> bytes:
    error_lengths, error_blob = pack_strings(polls.error)
    parts = [
        _COUNTS.pack(
            len(raw.ts_us),
            len(polls.ts_us),
            devices.count,
            metrics.count,
            len(devices.blob),
            len(metrics.blob),
            len(error_blob),
        ),
        devices.lengths,
        devices.blob,
        metrics.lengths,
        metrics.blob,
    ]
    parts += [
        np.ascontiguousarray(a, dtype).tobytes()
        for a, dtype in (
            (raw.ts_us, _I64),
            (raw.device, _I32),
            (raw.metric, _I32),
            (raw.value, _F64),
            (polls.ts_us, _I64),
            (polls.device, _I32),
            (polls.ok, _U8),
            (polls.started_us, _I64),
            (polls.finished_us, _I64),
            (polls.latency_ms, _F64),
            (polls.attempts, _I32),
        )
    ]
    parts += [error_lengths, error_blob]
    return b"".join(parts)


class _Reader:
    def __init__(self, data: bytes, pos: int):
        self.data, self.pos = data, pos

    def array(self, dtype: np.dtype, count: int) -> np.ndarray:
        out = np.frombuffer(self.data, dtype, count, self.pos)
        self.pos += count * dtype.itemsize
        return out

    def blob(self, size: int) -> bytes:
        out = self.data[self.pos : self.pos + size]
        self.pos += size
        return out


def unpack(data: bytes) -> Payload:
    """Raises ValueError if `data` is not one whole payload."""
    try:
        n_raw, n_polls, n_dev, n_met, dev_len, met_len, err_len = _COUNTS.unpack_from(data)
        r = _Reader(data, _COUNTS.size)
        devices = unpack_strings(r.array(_I32, n_dev), r.blob(dev_len))
        metrics = unpack_strings(r.array(_I32, n_met), r.blob(met_len))
        raw = RawColumns(*(r.array(t, n_raw) for t in (_I64, _I32, _I32, _F64)))
        cols = [r.array(t, n_polls) for t in (_I64, _I32, _U8, _I64, _I64, _F64, _I32)]
        errors = unpack_strings(r.array(_I32, n_polls), r.blob(err_len))
        if r.pos != len(data):
            raise ValueError(f"{len(data) - r.pos} bytes past the payload's columns")
    except (struct.error, UnicodeDecodeError) as exc:
        raise ValueError(f"not a frame payload: {exc}") from None
    return Payload(devices, metrics, raw, PollColumns(*cols, errors))  # type: ignore[arg-type]
