"""Words <-> values: exact round trips for every type and byte order, and the block decoder
agreeing with the one-point decoder on any map."""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from energy_pipeline.drivers.modbus.codec import BlockDecoder, decode_point, encode_point
from energy_pipeline.profiles.model import REGISTER_WIDTH, Point

ORDERS = ("ABCD", "DCBA", "BADC", "CDAB")
NUMERIC = tuple(REGISTER_WIDTH)
SCALES = (1.0, 0.1, 0.01, 10.0, 0.5)


def point(data_type: str = "float32", **kw: object) -> Point:
    return Point(name="p", address=0, data_type=data_type, **kw)


@given(
    data_type=st.sampled_from(NUMERIC),
    order=st.sampled_from(ORDERS),
    seed=st.binary(min_size=8, max_size=8),
)
def test_words_decode_and_encode_back_exactly(data_type: str, order: str, seed: bytes) -> None:
    p = point(data_type, byte_order=order)
    words = list(struct.unpack(">4H", seed))[: p.width]
    if data_type == "bool":
        words = [words[0] & 1]
    value = decode_point(words, p)
    assert isinstance(value, float)
    if math.isnan(value):  # a NaN float pattern decodes as invalid by definition
        assert data_type.startswith("float")
        return
    if data_type in ("int64", "uint64") and abs(value) > 2**53:
        return  # float64 readings carry 53 bits; beyond that the raw integer is not kept
    assert encode_point(value, p) == words


@given(
    data_type=st.sampled_from(("int16", "uint16", "int32", "uint32", "int64", "uint64")),
    order=st.sampled_from(ORDERS),
    scale=st.sampled_from(SCALES),
    offset=st.sampled_from((0.0, -40.0, 273.15)),
    raw=st.integers(-(2**31), 2**32 - 1),
)
def test_scaled_integers_round_trip(
    data_type: str, order: str, scale: float, offset: float, raw: int
) -> None:
    p = point(data_type, byte_order=order, scale=scale, offset=offset)
    lo, hi = np.iinfo(np.dtype(data_type)).min, np.iinfo(np.dtype(data_type)).max
    raw = int(min(max(raw, lo), hi))
    value = raw * scale + offset
    words = encode_point(value, p)
    assert len(words) == p.width and all(0 <= w <= 0xFFFF for w in words)
    assert decode_point(words, p) == pytest.approx(value, rel=1e-12, abs=1e-9)
    assert encode_point(decode_point(words, p), p) == words


@given(
    data_type=st.sampled_from(("float32", "float64")),
    order=st.sampled_from(ORDERS),
    value=st.floats(allow_nan=False, allow_infinity=False, width=32),
)
def test_floats_round_trip_exactly(data_type: str, order: str, value: float) -> None:
    p = point(data_type, byte_order=order)
    assert decode_point(encode_point(value, p), p) == value


PRINTABLE = st.characters(min_codepoint=0x20, max_codepoint=0x7E)


@given(order=st.sampled_from(ORDERS), text=st.text(PRINTABLE, max_size=12))
def test_strings_round_trip(order: str, text: str) -> None:
    p = point("string", count=6, byte_order=order)
    assert decode_point(encode_point(text, p), p) == text.strip()


def test_known_frames_from_the_manuals() -> None:
    """PROTOCOLS.md: Janitza floats are ABCD; 229.7 V is 43 65 B3 33."""
    f = point("float32")
    assert encode_point(229.7, f) == [0x4365, 0xB333]
    assert decode_point([0x4366, 0x0000], f) == 230.0
    assert encode_point(229.7, point("float32", byte_order="CDAB")) == [0xB333, 0x4365]
    assert encode_point(229.7, point("float32", byte_order="BADC")) == [0x6543, 0x33B3]
    assert encode_point(229.7, point("float32", byte_order="DCBA")) == [0x33B3, 0x6543]
    # MUST EP20 battery current: 0xFFAA signed x0.1 = -8.6 A
    assert decode_point([0xFFAA], point("int16", scale=0.1)) == pytest.approx(-8.6)


def test_invalid_readings_become_nan() -> None:
    sentinel = point("int16", nan_value=32767, scale=0.1)
    assert math.isnan(decode_point([0x7FFF], sentinel))
    limited = point("int16", scale=0.1, min=-50, max=100)
    assert math.isnan(decode_point(encode_point(-60, point("int16", scale=0.1)), limited))
    assert decode_point(encode_point(20.5, limited), limited) == pytest.approx(20.5)
    assert math.isnan(decode_point([0x7FC0, 0], point("float32")))


def test_encode_rejects_what_the_type_cannot_hold() -> None:
    with pytest.raises(ValueError, match="outside the uint16 range"):
        encode_point(-1, point("uint16"))
    with pytest.raises(ValueError, match="does not fit"):
        encode_point("x" * 5, point("string", count=2))


@st.composite
def point_maps(draw: st.DrawFn) -> tuple[list[Point], list[int], list[object]]:
    n = draw(st.integers(1, 12))
    points, positions, values = [], [], []
    pos = 0
    for i in range(n):
        data_type = draw(st.sampled_from((*NUMERIC, "string")))
        kw: dict[str, object] = {"byte_order": draw(st.sampled_from(ORDERS))}
        if data_type == "string":
            kw["count"] = draw(st.integers(1, 4))
        elif data_type != "bool":
            kw["scale"] = draw(st.sampled_from(SCALES))
            kw["offset"] = draw(st.sampled_from((0.0, -10.0)))
            if draw(st.booleans()):
                kw["nan_value"] = 0.0
            if draw(st.booleans()):
                kw["max"] = 100.0
        p = Point(name=f"p{i}", address=pos, data_type=data_type, **kw)
        pos += draw(st.integers(0, 3))
        positions.append(pos)
        pos += p.width
        points.append(p)
        seed = draw(st.binary(min_size=2 * p.width, max_size=2 * p.width))
        values.append(list(struct.unpack(f">{p.width}H", seed)))
    return points, positions, values


@pytest.mark.slow
@settings(max_examples=200)
@given(point_maps())
def test_block_decoder_matches_point_decoder(case: tuple[list[Point], list[int], list]) -> None:
    points, positions, chunks = case
    total = max(pos + p.width for p, pos in zip(points, positions, strict=True))
    words = np.zeros(total, dtype=np.uint16)
    for p, pos, chunk in zip(points, positions, chunks, strict=True):
        words[pos : pos + p.width] = chunk if p.data_type != "bool" else [chunk[0] & 1]
    decoder = BlockDecoder(points, positions)
    values = decoder.decode(words)
    np.testing.assert_array_equal(decoder.decode(words.astype(">u2")), values)
    text = decoder.decode_text(words)
    by_name = dict(zip(decoder.names, values, strict=True))
    for p, pos in zip(points, positions, strict=True):
        expected = decode_point([int(w) for w in words[pos : pos + p.width]], p)
        if p.data_type == "string":
            assert text[p.name] == expected
        elif isinstance(expected, float) and math.isnan(expected):
            assert math.isnan(by_name[p.name])
        else:
            assert by_name[p.name] == expected
