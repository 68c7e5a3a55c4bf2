"""The day-ahead forecast transform: slots of the local day, nothing from the day itself, the
seasonal-naive rule, a backtest that beats the baseline on a patterned load, and the asset on
the simulated lake."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from energy_pipeline.lake.layout import FORECAST_ACCURACY, LOAD_FORECAST, day_path
from energy_pipeline.transforms import forecast as fc
from energy_pipeline.transforms.schemas import FEATURES_SCHEMA
from energy_pipeline.transforms.timegrid import day_window

BERLIN = ZoneInfo("Europe/Berlin")


def _features(first: date, days: int, seed: int = 0, kind: str = "energy") -> pa.Table:
    """A load with a daily profile, lower weekends and noise, as forecast_features rows."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(days):
        day = first + timedelta(days=i)
        start, end = day_window(day, BERLIN)
        t = start
        while t < end:
            local = t.astimezone(BERLIN)
            hour = local.hour + local.minute / 60
            level = 0.6 if day.weekday() >= 5 else 1.0
            target = level * (50 + 40 * np.sin((hour - 6) / 24 * 2 * np.pi)) + rng.normal(0, 6)
            rows.append(
                {
                    "day": day,
                    "ts": t,
                    "local_ts": local.replace(tzinfo=None),
                    "device_id": "m1",
                    "target_metric": "energy_active_import_total",
                    "target_kind": kind,
                    "target": max(target, 0.0),
                    "minutes_present": 15,
                    "slot_of_day": 0,
                    "hour": local.hour,
                    "day_of_week": day.weekday(),
                    "is_weekend": day.weekday() >= 5,
                    "is_holiday": False,
                }
            )
            t += timedelta(minutes=15)
    return pa.Table.from_pylist(rows, schema=FEATURES_SCHEMA)


def test_forecast_covers_the_local_day_and_beats_the_naive_on_a_pattern() -> None:
    day = date(2025, 3, 30)  # spring forward: 92 quarter-hours
    features = _features(day - timedelta(days=28), 28)
    predicted, accuracy = fc.forecast_day(features, day, BERLIN, "DE")
    models = predicted.group_by("model").aggregate([("forecast", "count")]).to_pylist()
    assert {m["model"]: m["forecast_count"] for m in models} == {fc.NAIVE: 92, fc.MODEL: 92}
    rows = predicted.to_pylist()
    assert rows[0]["ts"] == day_window(day, BERLIN)[0]
    learned = [r for r in rows if r["model"] == fc.MODEL]
    assert all(r["lower"] <= r["forecast"] <= r["upper"] for r in learned)
    naive = [r for r in rows if r["model"] == fc.NAIVE]
    assert all(r["lower"] is None for r in naive)
    acc = {r["model"]: r for r in accuracy.to_pylist()}
    assert acc[fc.NAIVE]["skill_vs_naive"] == 0.0
    assert acc[fc.MODEL]["skill_vs_naive"] > 0.1
    assert acc[fc.MODEL]["window_end"] == day - timedelta(days=1)
    assert acc[fc.MODEL]["window_start"] == day - timedelta(days=fc.BACKTEST_DAYS)
    assert acc[fc.MODEL]["horizon"] == "day-ahead" and acc[fc.MODEL]["mape"] > 0


def test_nothing_from_the_day_itself_is_used() -> None:
    day = date(2025, 1, 20)
    history = _features(day - timedelta(days=14), 14)
    with_day = pa.concat_tables([history, _features(day, 2, seed=9)])
    assert fc.forecast_day(history, day, BERLIN, None)[0].equals(
        fc.forecast_day(with_day, day, BERLIN, None)[0]
    )


def test_seasonal_naive_takes_a_week_back_or_a_day_while_shorter() -> None:
    day = date(2025, 1, 20)
    for days, lag in ((9, 7), (3, 1)):
        features = _features(day - timedelta(days=days), days)
        (series,) = fc.series_of(features)
        got = fc.naive(series, day, BERLIN)
        start = day_window(day, BERLIN)[0] - timedelta(days=lag)
        rows = features.filter(
            pa.compute.equal(features.column("ts"), pa.scalar(start, features.column("ts").type))
        )
        assert got[0] == rows.column("target")[0].as_py()


def test_too_little_history_leaves_the_model_out() -> None:
    day = date(2025, 1, 20)
    predicted, accuracy = fc.forecast_day(_features(day - timedelta(days=1), 1), day, BERLIN, None)
    assert set(predicted.column("model").to_pylist()) == {fc.NAIVE}
    assert {r["skill_vs_naive"] for r in accuracy.to_pylist()} == {None}


def test_forecast_tables_of_the_simulated_lake(simulated_lake) -> None:
    config, days = simulated_lake
    last = days[-1]
    predicted = pq.read_table(day_path(config.data_dir, LOAD_FORECAST, last))
    assert set(predicted.column("device_id").to_pylist()) == {"umg509", "heatpump1"}
    accuracy = pq.read_table(day_path(config.data_dir, FORECAST_ACCURACY, last)).to_pylist()
    assert {(r["device_id"], r["model"]) for r in accuracy} == {
        (d, m) for d in ("umg509", "heatpump1") for m in (fc.NAIVE, fc.MODEL)
    }
    assert all(r["mae"] is not None for r in accuracy)
    assert datetime.now(UTC) > day_window(last, BERLIN)[1]
