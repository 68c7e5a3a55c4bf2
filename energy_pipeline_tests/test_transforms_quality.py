"""The quality checks as plain outcomes, without Dagster: each one can fail."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa

from energy_pipeline.lake.schemas import TS_TYPE
from energy_pipeline.transforms import quality

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
