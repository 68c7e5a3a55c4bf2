"""Day-ahead load forecast per device target, and its rolling-origin backtest.

For local day D every quarter-hour (96; 92 or 100 on DST days) is forecast from data up to the
end of D-1 only, so past days can be backfilled and compared with what happened:

- `seasonal_naive`: the same instant 7 days earlier (1 day while the history is shorter).
- `gradient_boosting`: scikit-learn's `HistGradientBoostingRegressor`, trained per device on
  the `forecast_features` target history. The stored features' rolling means and outdoor
  temperature of D are not known the evening before, so the model builds its own day-ahead
  inputs from the target series: the same instant 1, 2, 7 and 14 days earlier, the mean of the
  last 7 days at that instant, the previous day's mean, and the calendar (slot, local hour,
  weekday, weekend, holiday). Missing lags stay NaN, which the model handles natively.

Why HistGradientBoosting: a pip wheel with no compiler or OpenMP runtime to install (LightGBM
needs libgomp), native NaN handling, and on ~3,000 rows a fit takes tens of milliseconds with
fixed hyper-parameters and a fixed seed, so reruns are identical. Fits run on one thread: on a
small, shared machine OpenMP's spinning threads made a fit 20x slower, and devices are many
small problems, not one big one. Prediction intervals are
cheap and honest: the 10th and 90th percentiles of the model's backtest errors are added to
its forecast (split-conformal, 80 %), no second model.

The backtest is rolling-origin: for each of the `BACKTEST_DAYS` days before D, the model is
trained only on days before that one and scored on it against the seasonal naive, over the
slots where both forecasts and the actual exist. `forecast_accuracy` holds one row per model
with MAE, RMSE, MAPE (slots with a non-zero actual; null if none) and skill_vs_naive.

Pure: Arrow in, Arrow out; no files, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
from sklearn.ensemble import HistGradientBoostingRegressor
from threadpoolctl import threadpool_limits

from energy_pipeline.transforms.features import is_holiday
from energy_pipeline.transforms.schemas import FORECAST_ACCURACY_SCHEMA, LOAD_FORECAST_SCHEMA
from energy_pipeline.transforms.timegrid import day_window

SLOT_US = 15 * 60 * 1_000_000
DAY_SLOTS = 96
"""Quarter-hours in 24 h: lags are in absolute time, so a lag of k days is k x 96 slots."""
NAIVE = "seasonal_naive"
MODEL = "gradient_boosting"
HORIZON = "day-ahead"
BACKTEST_DAYS = 7
HISTORY_DAYS = 42
"""Days of forecast_features the asset reads before D: 28 to train on, 14 for the lags."""
MIN_TRAIN_ROWS = 2 * DAY_SLOTS
INTERVAL = (10, 90)
LAGS = (1, 2, 7, 14)
FEATURES = (
    *(f"lag_{k}d" for k in LAGS),
    "mean_7d",
    "prev_day_mean",
    "slot_of_day",
    "local_hour",
    "day_of_week",
    "is_weekend",
    "is_holiday",
)


def model() -> HistGradientBoostingRegressor:
    return HistGradientBoostingRegressor(
        max_iter=40,
        learning_rate=0.15,
        max_leaf_nodes=15,
        min_samples_leaf=12,
        l2_regularization=1.0,
        early_stopping=False,
        random_state=0,
    )


@dataclass
class Series:
    """One device's target on a regular 15-minute UTC grid (NaN where missing)."""

    device_id: str
    target_metric: str
    energy: bool
    first_us: int
    values: np.ndarray

    def index(self, ts_us: np.ndarray) -> np.ndarray:
        return (ts_us - self.first_us) // SLOT_US

    def at(self, ts_us: np.ndarray) -> np.ndarray:
        idx = self.index(ts_us)
        ok = (idx >= 0) & (idx < len(self.values))
        out = np.full(len(ts_us), np.nan)
        out[ok] = self.values[idx[ok]]
        return out

    def has_day(self, start_us: int) -> bool:
        return bool(np.isfinite(self.at(np.arange(DAY_SLOTS) * SLOT_US + start_us)).any())


def series_of(features: pa.Table) -> list[Series]:
    """Per device, its target series from forecast_features rows (any days, any order)."""
    if features.num_rows == 0:
        return []
    ts = features.column("ts").cast(pa.int64()).to_numpy()
    devices = np.asarray(features.column("device_id").to_pylist(), dtype=object)
    metrics = features.column("target_metric").to_pylist()
    kinds = features.column("target_kind").to_pylist()
    target = features.column("target").to_numpy(zero_copy_only=False).astype(float)
    out = []
    for device_id in sorted(set(devices.tolist())):
        rows = np.flatnonzero(devices == device_id)
        first = int(ts[rows].min())
        values = np.full(int((ts[rows].max() - first) // SLOT_US) + 1, np.nan)
        values[(ts[rows] - first) // SLOT_US] = target[rows]
        last = rows[np.argmax(ts[rows])]
        out.append(Series(device_id, metrics[last], kinds[last] == "energy", first, values))
    return out


def day_slots(day: date, tz: ZoneInfo) -> np.ndarray:
    start, end = day_window(day, tz)
    return np.arange(_us(start), _us(end), SLOT_US, dtype=np.int64)


def _us(instant: datetime) -> int:
    return int(instant.timestamp() * 1_000_000)


def design(series: Series, day: date, tz: ZoneInfo, country: str | None) -> np.ndarray:
    """The model's inputs for every slot of `day`, from data before the day only."""
    slots = day_slots(day, tz)
    lags = {k: series.at(slots - k * DAY_SLOTS * SLOT_US) for k in LAGS}
    week = np.vstack([series.at(slots - k * DAY_SLOTS * SLOT_US) for k in range(1, 8)])
    prev = series.at(slots[0] - np.arange(1, DAY_SLOTS + 1) * SLOT_US)
    n = len(slots)
    local = [datetime.fromtimestamp(t / 1e6, UTC).astimezone(tz) for t in slots.tolist()]
    weekday = day.weekday()
    columns = [
        *(lags[k] for k in LAGS),
        _nanmean(week),
        np.full(n, np.nanmean(prev) if np.isfinite(prev).any() else np.nan),
        np.arange(n, dtype=float),
        np.array([t.hour + t.minute / 60 for t in local]),
        np.full(n, weekday, dtype=float),
        np.full(n, float(weekday >= 5)),
        np.full(n, float(is_holiday(day, country))),
    ]
    return np.column_stack(columns)


def _nanmean(rows: np.ndarray) -> np.ndarray:
    present = np.isfinite(rows)
    count = present.sum(axis=0)
    total = np.where(present, rows, 0.0).sum(axis=0)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def naive(series: Series, day: date, tz: ZoneInfo) -> np.ndarray:
    """The same instant 7 days earlier; 1 day earlier while the history is shorter."""
    slots = day_slots(day, tz)
    week_start = _us(day_window(day - timedelta(days=7), tz)[0])
    lag = 7 if series.has_day(week_start) else 1
    return series.at(slots - lag * DAY_SLOTS * SLOT_US)


def actual(series: Series, day: date, tz: ZoneInfo) -> np.ndarray:
    return series.at(day_slots(day, tz))


def learned(
    series: Series, day: date, tz: ZoneInfo, country: str | None, train_days: list[date]
) -> np.ndarray | None:
    """The model's forecast of `day`, trained on `train_days` (all before it); None when the
    history is too short to learn from."""
    xs, ys = [], []
    for d in train_days:
        y = actual(series, d, tz)
        x = design(series, d, tz, country)
        keep = np.isfinite(y) & np.isfinite(x[:, 0])
        xs.append(x[keep])
        ys.append(y[keep])
    if not xs or sum(len(y) for y in ys) < MIN_TRAIN_ROWS:
        return None
    train = np.vstack(xs)
    known = np.isfinite(train).any(axis=0)  # a lag longer than the history is left out
    with threadpool_limits(1):
        fitted = model().fit(train[:, known], np.concatenate(ys))
        out = fitted.predict(design(series, day, tz, country)[:, known])
    return np.maximum(out, 0.0) if series.energy else out


@dataclass(frozen=True)
class Scores:
    mae: float | None
    rmse: float | None
    mape: float | None


def scores(forecast: np.ndarray, truth: np.ndarray) -> Scores:
    if len(truth) == 0:
        return Scores(None, None, None)
    err = forecast - truth
    nonzero = truth != 0
    mape = float(np.mean(np.abs(err[nonzero] / truth[nonzero]))) * 100 if nonzero.any() else None
    return Scores(float(np.mean(np.abs(err))), float(np.sqrt(np.mean(err**2))), mape)


@dataclass
class Backtest:
    """Per model, the backtest's paired forecasts and actuals, and the model's errors."""

    days: list[date]
    forecasts: dict[str, list[np.ndarray]]
    truth: list[np.ndarray]

    def score(self, name: str) -> Scores:
        if not self.truth:
            return Scores(None, None, None)
        return scores(np.concatenate(self.forecasts[name]), np.concatenate(self.truth))

    def residual_band(self) -> tuple[float, float] | None:
        if not self.truth:
            return None
        errors = np.concatenate(self.forecasts[MODEL]) - np.concatenate(self.truth)
        lo, hi = np.percentile(errors, INTERVAL)
        return float(lo), float(hi)


def backtest(
    series: Series, day: date, tz: ZoneInfo, country: str | None, history: list[date]
) -> Backtest:
    """Rolling origin over the `BACKTEST_DAYS` days before `day`: each is forecast by models
    that saw only the days before it; scored where the actual and both forecasts exist."""
    result = Backtest([], {NAIVE: [], MODEL: []}, [])
    for origin in [d for d in history if d < day][-BACKTEST_DAYS:]:
        earlier = [d for d in history if d < origin]
        truth = actual(series, origin, tz)
        base = naive(series, origin, tz)
        fit = learned(series, origin, tz, country, earlier)
        if fit is None:
            continue
        keep = np.isfinite(truth) & np.isfinite(base) & np.isfinite(fit)
        if not keep.any():
            continue
        result.days.append(origin)
        result.truth.append(truth[keep])
        result.forecasts[NAIVE].append(base[keep])
        result.forecasts[MODEL].append(fit[keep])
    return result


def forecast_day(
    features: pa.Table, day: date, tz: ZoneInfo, country: str | None
) -> tuple[pa.Table, pa.Table]:
    """(load_forecast, forecast_accuracy) rows of `day` from forecast_features rows of the
    days before it (rows of `day` or later are ignored, so nothing leaks)."""
    start_us = _us(day_window(day, tz)[0])
    ts = features.column("ts").cast(pa.int64()).to_numpy()
    before = features.filter(pa.array(ts < start_us))
    history = sorted(set(before.column("day").to_pylist()))
    forecast_rows: list[dict] = []
    accuracy_rows: list[dict] = []
    slots = day_slots(day, tz)
    ts_col = [datetime.fromtimestamp(t / 1e6, UTC) for t in slots.tolist()]
    local_col = [t.astimezone(tz).replace(tzinfo=None) for t in ts_col]
    for series in series_of(before):
        tested = backtest(series, day, tz, country, history)
        band = tested.residual_band()
        fit = learned(series, day, tz, country, history)
        for name, values in ((NAIVE, naive(series, day, tz)), (MODEL, fit)):
            if values is None:
                continue
            for i, value in enumerate(values.tolist()):
                finite = bool(np.isfinite(value))
                with_band = finite and band is not None and name == MODEL
                forecast_rows.append(
                    {
                        "day": day,
                        "device_id": series.device_id,
                        "target_metric": series.target_metric,
                        "ts": ts_col[i],
                        "local_ts": local_col[i],
                        "model": name,
                        "forecast": value if finite else None,
                        "lower": _bound(value + band[0], series) if with_band else None,
                        "upper": _bound(value + band[1], series) if with_band else None,
                    }
                )
        naive_mae = tested.score(NAIVE).mae
        for name in (NAIVE, MODEL):
            got = tested.score(name)
            skill = None
            if got.mae is not None and naive_mae:
                skill = 1.0 - got.mae / naive_mae
            accuracy_rows.append(
                {
                    "day": day,
                    "device_id": series.device_id,
                    "target_metric": series.target_metric,
                    "model": name,
                    "horizon": HORIZON,
                    "window_start": tested.days[0] if tested.days else None,
                    "window_end": tested.days[-1] if tested.days else None,
                    "mae": got.mae,
                    "rmse": got.rmse,
                    "mape": got.mape,
                    "skill_vs_naive": skill,
                }
            )
    return (
        pa.Table.from_pylist(forecast_rows, schema=LOAD_FORECAST_SCHEMA),
        pa.Table.from_pylist(accuracy_rows, schema=FORECAST_ACCURACY_SCHEMA),
    )


def _bound(value: float, series: Series) -> float:
    return max(value, 0.0) if series.energy else value
