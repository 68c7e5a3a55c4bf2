"""Vectorised quantisation agrees with the codec: what a model reports is what a driver decodes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from energy_pipeline.drivers.modbus.codec import decode_point, encode_point
from energy_pipeline.profiles.model import Point
from energy_pipeline.simulators.quantize import Quantizer

POINTS = [
    Point(name="f32", address=0, data_type="float32"),
    Point(name="f64", address=2, data_type="float64", scale=0.5, offset=-3),
    Point(name="i16", address=6, data_type="int16", scale=0.1, nan_value=-32768),
    Point(name="u16", address=7, data_type="uint16", scale=0.01, min=0, max=100),
    Point(name="i32", address=8, data_type="int32", scale=0.1, byte_order="CDAB"),
    Point(name="u32", address=10, data_type="uint32", offset=-40, scale=0.5),
    Point(name="u64", address=12, data_type="uint64", scale=0.001),
    Point(name="pct", address=16, data_type="float32", min=0, max=100),
    Point(name="flag", address=0, register_type="coil", data_type="bool"),
]

values = st.floats(allow_nan=True, allow_infinity=True, width=64) | st.floats(-5000, 5000)


@settings(max_examples=300, deadline=None)
@given(st.lists(values, min_size=len(POINTS), max_size=len(POINTS)))
def test_quantised_values_round_trip_through_the_codec_and_are_valid(raw: list[float]) -> None:
    out = Quantizer(POINTS)(np.array(raw))
    for point, value in zip(POINTS, out.tolist(), strict=True):
        assert math.isfinite(value), point.name
        words = encode_point(bool(value) if point.data_type == "bool" else value, point)
        assert decode_point(words, point) == value, point.name


def test_limits_sentinels_and_missing_values() -> None:
    q = Quantizer(POINTS)
    nan = float("nan")
    out = dict(
        zip(
            (p.name for p in POINTS),
            q(np.array([nan, 1e300, -3276.8, 250.0, 0.04, -100.0, -1.0, 100.00001, 0.0])),
            strict=True,
        )
    )
    assert out["f32"] == 0.0  # no reading -> the low end of its range
    assert out["i16"] == pytest.approx(-3276.7)  # never the device's "no sensor" sentinel
    assert out["u16"] == 100.0 and out["pct"] == 100.0
    assert out["i32"] == 0.0
    assert out["u32"] == -40.0 and out["u64"] == 0.0
    assert out["flag"] == 0.0
