"""Words <-> values for Modbus points: one definition of byte orders, scale, offset and validity.

Registers arrive as 16-bit words. A value's bytes are the words' big-endian bytes, rearranged by
the point's byte order, then read as a big-endian number:

- ABCD: high word first, high byte first (Modbus' own convention, Janitza, most devices)
- CDAB: low word first ("word swap", NIBE's `word_swap`)
- BADC: bytes swapped inside each word
- DCBA: fully little-endian

The same rule extends to 64-bit values and strings (CDAB reverses the word order, BADC swaps
inside each word), so every order round-trips for every width.

`decode_point`/`encode_point` handle one point (simulators and tests use them); `BlockDecoder`
decodes a whole poll's words at once with numpy gathers, which is what the driver runs per poll.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from energy_pipeline.profiles.model import BIT_TYPES, REGISTER_WIDTH, Point

_STRUCT_CODE = {
    "int16": "h",
    "uint16": "H",
    "int32": "i",
    "uint32": "I",
    "int64": "q",
    "uint64": "Q",
    "float32": "f",
    "float64": "d",
}
_NUMPY_DTYPE = {name: np.dtype(">" + code) for name, code in _STRUCT_CODE.items()}
_INT_RANGE = {
    name: (
        int(np.iinfo(_NUMPY_DTYPE[name]).min),
        int(np.iinfo(_NUMPY_DTYPE[name]).max),
    )
    for name in ("int16", "uint16", "int32", "uint32", "int64", "uint64")
}


def byte_permutation(width: int, byte_order: str) -> list[int]:
    """For each byte of the big-endian value, the index of the wire byte it comes from."""
    words = list(range(width))
    if byte_order in ("CDAB", "DCBA"):
        words.reverse()
    swap = byte_order in ("BADC", "DCBA")
    order: list[int] = []
    for w in words:
        order.extend((2 * w + 1, 2 * w) if swap else (2 * w, 2 * w + 1))
    return order


def _value_bytes(words: Sequence[int], byte_order: str) -> bytes:
    wire = struct.pack(f">{len(words)}H", *words)
    return bytes(wire[i] for i in byte_permutation(len(words), byte_order))


def _words_from_value_bytes(data: bytes, byte_order: str) -> list[int]:
    width = len(data) // 2
    wire = bytearray(len(data))
    for value_index, wire_index in enumerate(byte_permutation(width, byte_order)):
        wire[wire_index] = data[value_index]
    return list(struct.unpack(f">{width}H", bytes(wire)))


def decode_raw(words: Sequence[int], point: Point) -> float | str:
    """The number (or text) the device holds, before scale, offset and validity."""
    if point.register_type in BIT_TYPES or point.data_type == "bool":
        return 1.0 if words[0] else 0.0
    if point.data_type == "string":
        data = _value_bytes(words[: point.width], point.byte_order)
        return data.split(b"\x00", 1)[0].decode("latin-1").strip()
    data = _value_bytes(words[: point.width], point.byte_order)
    return float(struct.unpack(">" + _STRUCT_CODE[point.data_type], data)[0])


def is_valid(raw: float, value: float, point: Point) -> bool:
    """Profile rules for 'no reading': the device's sentinel, NaN, or outside min/max."""
    if math.isnan(value) or math.isinf(value):
        return False
    if point.nan_value is not None and raw == point.nan_value:
        return False
    if point.min is not None and value < point.min:
        return False
    return not (point.max is not None and value > point.max)


def decode_point(words: Sequence[int], point: Point) -> float | str:
    """Engineering value of one point from its words (or bit); NaN when invalid."""
    raw = decode_raw(words, point)
    if isinstance(raw, str):
        return raw
    if point.data_type == "bool":
        return raw
    value = raw * point.scale + point.offset
    return value if is_valid(raw, value, point) else math.nan


def encode_point(value: float | str | bool, point: Point) -> list[int]:
    """Words (or one bit) a device would hold for `value`; the inverse of `decode_point`.

    Integer types round to the nearest raw step; values the type cannot hold raise ValueError.
    """
    if point.register_type in BIT_TYPES or point.data_type == "bool":
        return [1 if value else 0]
    if point.data_type == "string":
        text = str(value).encode("latin-1")
        size = 2 * point.width
        if len(text) > size:
            raise ValueError(f"{point.name}: {value!r} does not fit in {point.width} registers")
        return _words_from_value_bytes(text.ljust(size, b"\x00"), point.byte_order)
    if isinstance(value, str):
        raise ValueError(f"{point.name}: expected a number, got {value!r}")
    raw = (float(value) - point.offset) / point.scale
    code = _STRUCT_CODE[point.data_type]
    if point.data_type in _INT_RANGE:
        if not math.isfinite(raw):
            raise ValueError(f"{point.name}: {value!r} has no {point.data_type} representation")
        raw_int = round(raw)
        low, high = _INT_RANGE[point.data_type]
        if not low <= raw_int <= high:
            raise ValueError(
                f"{point.name}: {value!r} is outside the {point.data_type} range "
                f"after scale {point.scale} and offset {point.offset}"
            )
        data = struct.pack(">" + code, raw_int)
    else:
        try:
            data = struct.pack(">" + code, raw)
        except OverflowError:
            raise ValueError(f"{point.name}: {value!r} overflows {point.data_type}") from None
    return _words_from_value_bytes(data, point.byte_order)


@dataclass(frozen=True, slots=True)
class _Group:
    """Points of one numeric type and byte order: decoded by one gather and one view."""

    out: np.ndarray  # indices into the output array
    byte_index: np.ndarray  # (k, 2 * width) indices into the poll's wire bytes
    dtype: np.dtype
    run: slice | None  # the same bytes as one contiguous slice, when they are (no gather)


class BlockDecoder:
    """Decodes all points of one device from the poll's words in a handful of numpy operations.

    `positions[i]` is where point i's first word sits in the word array the driver assembles
    per poll (all blocks of the plan, in order; bits of coil/discrete blocks as 0/1 words).
    Built once per device; `decode` does no per-point Python work except for strings.
    """

    def __init__(self, points: Sequence[Point], positions: Sequence[int]):
        if len(points) != len(positions):
            raise ValueError("one position per point")
        numeric = [i for i, p in enumerate(points) if p.data_type != "string"]
        self.names: tuple[str, ...] = tuple(points[i].name for i in numeric)
        self.text: tuple[tuple[str, Point, int], ...] = tuple(
            (p.name, p, pos)
            for p, pos in zip(points, positions, strict=True)
            if p.data_type == "string"
        )
        chosen = [points[i] for i in numeric]
        where = [positions[i] for i in numeric]
        self.size = len(chosen)
        self._bools = np.array([i for i, p in enumerate(chosen) if p.data_type == "bool"], int)
        self._bool_pos = np.array(
            [where[i] for i, p in enumerate(chosen) if p.data_type == "bool"], int
        )
        groups: dict[tuple[str, str], list[int]] = {}
        for i, p in enumerate(chosen):
            if p.data_type != "bool":
                groups.setdefault((p.data_type, p.byte_order), []).append(i)
        self._groups: list[_Group] = []
        for (data_type, byte_order), members in groups.items():
            width = REGISTER_WIDTH[data_type]
            perm = np.array(byte_permutation(width, byte_order), int)
            starts = np.array([2 * where[i] for i in members], int)
            byte_index = starts[:, None] + perm[None, :]
            flat = byte_index.ravel()
            contiguous = bool(np.array_equal(flat, np.arange(flat[0], flat[0] + flat.size)))
            self._groups.append(
                _Group(
                    out=np.array(members, int),
                    byte_index=byte_index,
                    dtype=_NUMPY_DTYPE[data_type],
                    run=slice(int(flat[0]), int(flat[0]) + flat.size) if contiguous else None,
                )
            )
        nan = np.array([np.nan if p.nan_value is None else p.nan_value for p in chosen], float)
        self._nan_value = nan
        self._check_nan = bool(np.any(~np.isnan(nan)))
        self._scale = np.array([1.0 if p.data_type == "bool" else p.scale for p in chosen])
        self._offset = np.array([0.0 if p.data_type == "bool" else p.offset for p in chosen])
        self._affine = bool(np.any(self._scale != 1.0) or np.any(self._offset != 0.0))
        # One pair of comparisons rejects NaN, the infinities and values outside min/max:
        # open bounds are the largest finite floats, and bools have no range.
        big = float(np.finfo(np.float64).max)
        self._low = np.array(
            [-big if p.data_type == "bool" or p.min is None else p.min for p in chosen]
        )
        self._high = np.array(
            [big if p.data_type == "bool" or p.max is None else p.max for p in chosen]
        )
        only = self._groups[0] if len(self._groups) == 1 and not self._bools.size else None
        in_order = only is not None and np.array_equal(only.out, np.arange(self.size))
        self._whole: tuple[slice, np.dtype] | None = None
        if only is not None and only.run is not None and in_order:
            self._whole = (only.run, only.dtype)

    def decode(self, words: np.ndarray) -> np.ndarray:
        """float64 values in `names` order; NaN where the profile says a reading is invalid.

        `words` as big-endian (">u2") saves a byte-swapping copy; any integer dtype works.
        """
        wire = words.astype(">u2", copy=False).view(np.uint8)
        if self._whole is not None:  # one type, one run, in order: Janitza-like maps
            run, dtype = self._whole
            raw = wire[run].view(dtype).astype(np.float64)
        else:
            raw = np.empty(self.size, dtype=np.float64)
            for g in self._groups:
                if g.run is not None:
                    raw[g.out] = wire[g.run].view(g.dtype)
                else:
                    raw[g.out] = wire[g.byte_index].view(g.dtype)[:, 0]
            if self._bools.size:
                raw[self._bools] = words[self._bool_pos] != 0
        values = raw * self._scale + self._offset if self._affine else raw
        ok = (values >= self._low) & (values <= self._high)
        if self._check_nan:
            ok &= raw != self._nan_value
        if not ok.all():
            values[~ok] = np.nan
        return values

    def decode_text(self, words: np.ndarray) -> dict[str, str]:
        """String points (firmware, model) for Sample.attributes."""
        out: dict[str, str] = {}
        for name, point, pos in self.text:
            text = decode_raw([int(w) for w in words[pos : pos + point.width]], point)
            out[name] = str(text)
        return out
