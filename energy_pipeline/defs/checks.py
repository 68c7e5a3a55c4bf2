"""Asset checks: their specs, and the results of `transforms.quality` as Dagster results.

Evaluated inside the asset on the files it just wrote (so a partitioned run checks exactly its
own window). Blocking checks stop downstream assets in the same run. Dagster 1.13's check
results carry no partition, so one result covers a run's whole partition range: a check fails
when any day (or minute) of the range fails, and its metadata names the days.
"""

from __future__ import annotations

import dagster as dg

from energy_pipeline.lake.layout import (
    DAILY_DEVICE_SUMMARY,
    DAILY_READINGS,
    FORECAST_ACCURACY,
    FORECAST_FEATURES,
    MINUTE_READINGS,
)
from energy_pipeline.transforms import quality as q

RANGE = " (covers the run's whole partition range; failed days listed)"


def results(outcomes: list[q.Outcome], asset: str | None = None) -> list[dg.AssetCheckResult]:
    return [
        dg.AssetCheckResult(
            asset_key=asset,
            check_name=o.name,
            passed=bool(o.passed),
            severity=dg.AssetCheckSeverity(o.severity),
            metadata={
                k: dg.MetadataValue.json(v) if isinstance(v, dict | list) else v
                for k, v in o.metadata.items()
            },
        )
        for o in outcomes
    ]


def minute_specs() -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(
            q.NO_DUPLICATES,
            asset=MINUTE_READINGS,
            blocking=True,
            description="no (device, metric, ts) twice in the window just written" + RANGE,
        ),
        dg.AssetCheckSpec(
            q.WITHIN_BOUNDS,
            asset=MINUTE_READINGS,
            blocking=True,
            description="every min/max inside the profile's valid range" + RANGE,
        ),
        dg.AssetCheckSpec(
            q.COUNTERS_MONOTONIC,
            asset=MINUTE_READINGS,
            description="counter readings only fall where a reset/rollover was detected" + RANGE,
        ),
    ]


def daily_readings_specs() -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(
            q.FULL_GRID,
            asset=DAILY_READINGS,
            blocking=True,
            description="every (device, metric) has exactly one row per minute of the local "
            "day (1,380 or 1,500 on DST days)" + RANGE,
        )
    ]


def summary_specs() -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(
            q.COMPLETENESS,
            asset=DAILY_DEVICE_SUMMARY,
            description=f"every device has ≥ {q.COMPLETENESS_WARN:g} % of its expected minutes "
            f"(warning below, error below {q.COMPLETENESS_ERROR:g} %)" + RANGE,
        )
    ]


def feature_specs() -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(
            q.NULL_RATES,
            asset=FORECAST_FEATURES,
            description=f"target null in ≤ {q.TARGET_NULL_WARN:.0%} of slots; "
            "null rates of every feature reported" + RANGE,
        )
    ]


def accuracy_specs() -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(
            q.MODEL_BEATS_BASELINE,
            asset=FORECAST_ACCURACY,
            description="the gradient-boosted model's backtest MAE is below the seasonal "
            "naive's for every device (skill_vs_naive > 0); a warning, as the baseline's "
            "forecast is still published" + RANGE,
        )
    ]
