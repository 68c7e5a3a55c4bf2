"""The demo's table: key metrics first, units and state labels from the profile, errors shown."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from energy_pipeline.config import Config
from energy_pipeline.demo.table import Row, key_values, render
from energy_pipeline.profiles import load_profile
from energy_pipeline.readings import Sample

EP20 = load_profile("must_ep20", Path())


def sample(values: dict[str, float]) -> Sample:
    return Sample(tuple(values), np.array(list(values.values()), dtype=np.float64))


def test_key_metrics_come_first_with_units_and_labels() -> None:
    s = sample({"machine_type": 2, "status": 3, "battery_level": 81, "load_power": 240.5})
    shown = key_values(s, EP20, limit=3)
    assert shown == [
        ("status", "3 (battery)"),
        ("battery_level", "81 %"),
        ("load_power", "240.5 W"),
    ]


def test_without_a_profile_values_are_plain_and_invalid_ones_are_left_out() -> None:
    s = sample({"ID_WEB_Temperatur_TVL": 35.25, "x": float("nan"), "y": 1.0})
    assert key_values(s) == [("ID_WEB_Temperatur_TVL", "35.25"), ("y", "1")]


def test_render_shows_every_device_and_failures_with_their_error() -> None:
    rows = [
        Row("ups1", "modbus", 4.2, sample=sample({"status": 4}), profile=EP20),
        Row("lux1", "luxtronik", 2000.0, error="lux1: timed out (read 3004)"),
    ]
    text = render(Config(), rows, datetime(2026, 1, 14, 12, 0, tzinfo=UTC))
    assert "2026-01-14 12:00:00 UTC" in text
    assert "ups1 (modbus)  ok  4.2 ms" in text and "4 (online)" in text
    assert "lux1 (luxtronik)  FAILED  2000.0 ms\n    lux1: timed out (read 3004)" in text
