"""The quality checks as plain outcomes, without Dagster: each one can fail."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa

from energy_pipeline.catalog import build_catalog
from energy_pipeline.lake.layout import MINUTE_READINGS
from energy_pipeline.lake.scan import hourly_files
from energy_pipeline.lake.schemas import TS_TYPE
from energy_pipeline.lake.tables import write_hourly
from energy_pipeline.transforms import quality
from energy_pipeline.transforms.minute import connect
from energy_pipeline.transforms.quality import Outcome
from energy_pipeline.transforms.schemas import MINUTE_SCHEMA
from energy_pipeline_tests.lakedata import site

T0 = datetime(2025, 1, 15, tzinfo=UTC)


def _grid(minutes: int) -> pa.Table:
    ts = [T0 + timedelta(minutes=i) for i in range(minutes)]
    return pa.table(
        {
            "ts": pa.array(ts, TS_TYPE),
            "device_id": ["m1"] * minutes,
            "metric": ["p"] * minutes,
        }
    )


def test_full_grid_fails_on_a_missing_minute() -> None:
    assert quality.full_grid(_grid(1440), 1440)[0].passed
    outcome = quality.full_grid(_grid(1439), 1440)[0]
    assert not outcome.passed
    assert outcome.metadata["series_with_wrong_grid"] == 1


def test_completeness_warns_then_errors() -> None:
    def summary(pct: float) -> pa.Table:
        return pa.table({"device_id": ["m1"], "completeness_pct": [pct]})

    assert quality.completeness(summary(100.0))[0].passed
    warn = quality.completeness(summary(95.0))[0]
    assert (warn.passed, warn.severity) == (False, "WARN")
    error = quality.completeness(summary(50.0))[0]
    assert (error.passed, error.severity) == (False, "ERROR")
    assert error.metadata["devices_below_99_pct"] == {"m1": 50.0}


def test_null_rates_bound_the_target() -> None:
    table = pa.table({"target": pa.array([1.0, None, None, 4.0], pa.float64())})
    outcome = quality.null_rates(table)[0]
    assert not outcome.passed
    assert outcome.metadata["null_rates"] == {"target": 0.5}


E = "energy_active_import_total"
V = "voltage_l1_n"
MinuteRow = tuple[int, str, float, float, int]
"""Minute index after T0, metric, min, max (also its last), resets; all on device m1."""


def _write_minutes(config, rows: list[MinuteRow], start: int, end: int) -> list[Outcome]:
    """Store rows as a run over minutes [start, end) after T0 does, then check that window."""
    ordered = sorted(rows, key=lambda r: (r[0], r[1]))
    table = pa.table(
        {
            "ts": pa.array([T0 + timedelta(minutes=r[0]) for r in ordered], TS_TYPE),
            "device_id": ["m1"] * len(ordered),
            "metric": [r[1] for r in ordered],
            "avg": [r[2] for r in ordered],
            "min": [r[2] for r in ordered],
            "max": [r[3] for r in ordered],
            "last": [r[3] for r in ordered],
            "count": pa.array([1] * len(ordered), pa.int32()),
            "delta": pa.array([None] * len(ordered), pa.float64()),
            "resets": pa.array([r[4] for r in ordered], pa.int32()),
        },
        schema=MINUTE_SCHEMA,
    )
    window = T0 + timedelta(minutes=start), T0 + timedelta(minutes=end)
    write_hourly(config.data_dir, MINUTE_READINGS, table, *window, MINUTE_SCHEMA)
    files = hourly_files(config.data_dir, MINUTE_READINGS, *window)
    us = [int(t.timestamp() * 1_000_000) for t in window]
    return quality.minute_quality(connect(), files, us[0], us[1], build_catalog(config))


def _verdicts(outcomes: list[Outcome]) -> dict[str, tuple[bool, str, object]]:
    return {o.name: (o.passed, o.severity, next(iter(o.metadata.values()))) for o in outcomes}


def test_minute_checks_fail_on_duplicates_and_bounds_and_warn_on_counter_drops(
    tmp_path: Path,
) -> None:
    config = site(tmp_path)
    clean: list[MinuteRow] = [(0, V, 229.0, 231.0, 0), (0, E, 100.0, 100.0, 0)]
    clean += [(1, E, 110.0, 110.0, 0), (2, E, 5.0, 5.0, 1)]  # a drop on a detected reset
    assert _verdicts(_write_minutes(config, clean, 0, 10)) == {
        quality.NO_DUPLICATES: (True, "ERROR", 0),
        quality.WITHIN_BOUNDS: (True, "ERROR", 0),
        quality.COUNTERS_MONOTONIC: (True, "WARN", 0),
    }
    broken = [*clean, (0, V, 229.0, 231.0, 0), (3, V, -5.0, 450.0, 0), (4, E, 3.0, 3.0, 0)]
    assert _verdicts(_write_minutes(config, broken, 0, 10)) == {
        quality.NO_DUPLICATES: (False, "ERROR", 1),
        quality.WITHIN_BOUNDS: (False, "ERROR", 1),  # the profile's 0..400 V
        quality.COUNTERS_MONOTONIC: (False, "WARN", 1),
    }


def test_counter_check_compares_with_the_stored_minute_before_a_mid_hour_window(
    tmp_path: Path,
) -> None:
    config = site(tmp_path)
    _write_minutes(config, [(9, E, 100.0, 100.0, 0)], 0, 10)
    after = _verdicts(_write_minutes(config, [(10, E, 50.0, 50.0, 0)], 10, 20))
    assert after[quality.COUNTERS_MONOTONIC] == (False, "WARN", 1)
    # a window on the hour is not compared with the hour before it, which it does not touch
    _write_minutes(config, [(59, E, 100.0, 100.0, 0)], 50, 60)
    on_the_hour = _verdicts(_write_minutes(config, [(60, E, 50.0, 50.0, 0)], 60, 70))
    assert on_the_hour[quality.COUNTERS_MONOTONIC] == (True, "WARN", 0)
