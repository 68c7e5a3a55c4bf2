"""Rounding model values to what a device's registers can hold, vectorised.

A simulated reading must be exactly what a driver decodes from the registers, so the history a
model generates (`values_at`) and a live poll agree. Encoding and decoding each point through the
codec costs ~20 µs a point; this does the same arithmetic for all points in a few numpy steps
(clamp to the type's range and the profile's min/max, round to the raw step or to float32, then
`raw * scale + offset` exactly as the codec decodes) and leaves only rare edge cases — a value
that rounding pushed past min/max, or onto the device's "no reading" sentinel — to a slow path.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from energy_pipeline.drivers.modbus.codec import decode_point, encode_point
from energy_pipeline.profiles.model import BIT_TYPES, Point

_INT_BITS = {"int16": 16, "int32": 32, "int64": 64, "uint16": 16, "uint32": 32, "uint64": 64}


def _raw_range(point: Point) -> tuple[float, float]:
    bits = _INT_BITS.get(point.data_type)
    if bits is None:
        limit = float(np.finfo(np.float32 if point.data_type == "float32" else np.float64).max)
        return -limit, limit
    if point.data_type.startswith("uint"):
        low, high = 0, 2**bits - 1
    else:
        low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    # 2**63 - 1 and 2**64 - 1 are not floats: round the top down to the nearest one below.
    top = float(high)
    return float(low), top if int(top) <= high else float(np.nextafter(top, 0.0))


class Quantizer:
    """Built once per profile for its numeric points (strings are attributes, not readings)."""

    def __init__(self, points: Sequence[Point]):
        self.points = list(points)
        is_bool = [p.data_type == "bool" or p.register_type in BIT_TYPES for p in self.points]
        self._bool = np.array(is_bool, dtype=bool)
        self._int = np.array([p.data_type in _INT_BITS for p in self.points], dtype=bool)
        self._f32 = np.array([p.data_type == "float32" for p in self.points], dtype=bool)
        self._scale = np.array([p.scale for p in self.points], dtype=np.float64)
        self._offset = np.array([p.offset for p in self.points], dtype=np.float64)
        raw = np.array([_raw_range(p) for p in self.points], dtype=np.float64).reshape(-1, 2)
        self._raw_lo, self._raw_hi = raw[:, 0], raw[:, 1]
        self._min = np.array([-np.inf if p.min is None else p.min for p in self.points])
        self._max = np.array([np.inf if p.max is None else p.max for p in self.points])
        self._nan = np.array([np.nan if p.nan_value is None else p.nan_value for p in self.points])

    def __call__(self, values: np.ndarray) -> np.ndarray:
        """Engineering values (points on the last axis) -> the values the registers decode to."""
        fallback = np.where(np.isfinite(self._min), self._min, 0.0)
        v = np.where(np.isfinite(values), values, fallback)
        v = np.clip(v, self._min, self._max)
        with np.errstate(over="ignore", invalid="ignore"):
            raw = (v - self._offset) / self._scale
            raw = np.where(self._int, np.rint(raw), raw)
            raw = np.clip(raw, np.minimum(self._raw_lo, self._raw_hi), self._raw_hi)
            raw = np.where(self._f32, raw.astype(np.float32).astype(np.float64), raw)
        out = raw * self._scale + self._offset
        out = np.where(self._bool, (values != 0).astype(np.float64), out)
        bad = ~self._bool & ((out < self._min) | (out > self._max) | (raw == self._nan))
        for where in zip(*np.nonzero(bad), strict=True):
            out[where] = self._inward(float(out[where]), self.points[where[-1]])
        return out

    @staticmethod
    def _inward(value: float, point: Point) -> float:
        """One raw step (or float32 ulp) towards the valid range, then decoded by the codec."""
        centre = 0.0
        if point.min is not None and point.max is not None:
            centre = (point.min + point.max) / 2
        elif point.min is not None:
            centre = point.min + abs(point.scale)
        elif point.max is not None:
            centre = point.max - abs(point.scale)
        step = abs(point.scale) if point.data_type in _INT_BITS else abs(value) * 1e-6 + 1e-6
        nudged = value + math.copysign(step, centre - value)
        return float(decode_point(encode_point(nudged, point), point))
