"""Arrow schemas of the tables the pipeline writes, defined once.

The same schema is written to Parquet, shown in Dagster's column metadata and used to create an
empty, correctly typed view when a table has no files yet. Tables are long (one row per device,
metric and time), so a metric that appears or disappears mid-day never changes a schema.
"""

from __future__ import annotations

import pyarrow as pa

from energy_pipeline.lake.schemas import TS_TYPE

LOCAL_TS = pa.timestamp("us")

# Per device, metric and minute; daily_readings carries the same aggregate columns.
MINUTE_AGGREGATES = (
    pa.field("avg", pa.float64()),
    pa.field("min", pa.float64()),
    pa.field("max", pa.float64()),
    pa.field("last", pa.float64()),
    pa.field("count", pa.int32(), nullable=False),
    pa.field("delta", pa.float64()),
    pa.field("resets", pa.int32(), nullable=False),
)

MINUTE_SCHEMA = pa.schema(
    [
        pa.field("ts", TS_TYPE, nullable=False),
        pa.field("device_id", pa.string(), nullable=False),
        pa.field("metric", pa.string(), nullable=False),
        *MINUTE_AGGREGATES,
    ]
)

MARKER_COLUMNS = ("marker_5min", "marker_10min", "marker_15min", "marker_30min", "marker_60min")

GRID_SCHEMA = pa.schema(
    [
        pa.field("ts", TS_TYPE, nullable=False),
        pa.field("local_ts", LOCAL_TS, nullable=False),
        pa.field("minute_of_day", pa.int16(), nullable=False),
        *(pa.field(name, pa.bool_(), nullable=False) for name in MARKER_COLUMNS),
        pa.field("hour", pa.int8(), nullable=False),
        pa.field("day_of_week", pa.int8(), nullable=False),
        pa.field("is_weekend", pa.bool_(), nullable=False),
    ]
)

DAILY_READINGS_SCHEMA = pa.schema(
    [
        pa.field("day", pa.date32(), nullable=False),
        pa.field("device_id", pa.string(), nullable=False),
        pa.field("metric", pa.string(), nullable=False),
        *GRID_SCHEMA,
        pa.field("minutes_elapsed", pa.int32()),
        *MINUTE_AGGREGATES,
    ]
)

METRIC_STATS_TYPE = pa.list_(
    pa.struct(
        [
            pa.field("metric", pa.string()),
            pa.field("min", pa.float64()),
            pa.field("max", pa.float64()),
            pa.field("avg", pa.float64()),
            pa.field("last", pa.float64()),
            pa.field("delta", pa.float64()),
            pa.field("minutes", pa.int32()),
        ]
    )
)

SUMMARY_SCHEMA = pa.schema(
    [
        pa.field("day", pa.date32(), nullable=False),
        pa.field("device_id", pa.string(), nullable=False),
        pa.field("minutes_in_day", pa.int32(), nullable=False),
        pa.field("minutes_expected", pa.int32(), nullable=False),
        pa.field("minutes_present", pa.int32(), nullable=False),
        pa.field("completeness_pct", pa.float64(), nullable=False),
        pa.field("readings", pa.int64(), nullable=False),
        pa.field("energy_metric", pa.string()),
        pa.field("energy", pa.float64()),
        pa.field("energy_resets", pa.int32()),
        pa.field("power_metric", pa.string()),
        pa.field("power_min", pa.float64()),
        pa.field("power_max", pa.float64()),
        pa.field("power_avg", pa.float64()),
        pa.field("peak_15min_power", pa.float64()),
        pa.field("peak_15min_start", TS_TYPE),
        pa.field("metric_stats", METRIC_STATS_TYPE),
    ]
)

FEATURES_SCHEMA = pa.schema(
    [
        pa.field("day", pa.date32(), nullable=False),
        pa.field("ts", TS_TYPE, nullable=False),
        pa.field("local_ts", LOCAL_TS, nullable=False),
        pa.field("device_id", pa.string(), nullable=False),
        pa.field("target_metric", pa.string(), nullable=False),
        pa.field("target_kind", pa.string(), nullable=False),
        pa.field("target", pa.float64()),
        pa.field("minutes_present", pa.int16(), nullable=False),
        pa.field("lag_1d", pa.float64()),
        pa.field("lag_7d", pa.float64()),
        pa.field("rolling_mean_1h", pa.float64()),
        pa.field("rolling_mean_24h", pa.float64()),
        pa.field("same_slot_mean_4w", pa.float64()),
        pa.field("slot_of_day", pa.int16(), nullable=False),
        pa.field("hour", pa.int8(), nullable=False),
        pa.field("day_of_week", pa.int8(), nullable=False),
        pa.field("is_weekend", pa.bool_(), nullable=False),
        pa.field("is_holiday", pa.bool_(), nullable=False),
        pa.field("outdoor_temp_c", pa.float64()),
    ]
)

LOAD_FORECAST_SCHEMA = pa.schema(
    [
        pa.field("day", pa.date32(), nullable=False),
        pa.field("device_id", pa.string(), nullable=False),
        pa.field("target_metric", pa.string(), nullable=False),
        pa.field("ts", TS_TYPE, nullable=False),
        pa.field("local_ts", LOCAL_TS, nullable=False),
        pa.field("model", pa.string(), nullable=False),
        pa.field("forecast", pa.float64()),
        pa.field("lower", pa.float64()),
        pa.field("upper", pa.float64()),
    ]
)

FORECAST_ACCURACY_SCHEMA = pa.schema(
    [
        pa.field("day", pa.date32(), nullable=False),
        pa.field("device_id", pa.string(), nullable=False),
        pa.field("target_metric", pa.string(), nullable=False),
        pa.field("model", pa.string(), nullable=False),
        pa.field("horizon", pa.string(), nullable=False),
        pa.field("window_start", pa.date32()),
        pa.field("window_end", pa.date32()),
        pa.field("mae", pa.float64()),
        pa.field("rmse", pa.float64()),
        pa.field("mape", pa.float64()),
        pa.field("skill_vs_naive", pa.float64()),
    ]
)

COLUMN_DOCS: dict[str, str] = {
    "ts": "UTC instant: the minute, slot or sample start",
    "device_id": "the device's id in the site config",
    "metric": "the point's name in its profile or name table (see the `metrics` table)",
    "value": "the reading in the metric's unit, after the profile's scale",
    "ok": "the poll returned values",
    "started_at": "UTC instant the poll's first request was sent",
    "finished_at": "UTC instant the poll's last answer arrived",
    "latency_ms": "finished_at - started_at in milliseconds",
    "attempts": "requests the poll needed (retries + 1)",
    "error": "why the poll failed (typed error message); null when ok",
    "avg": "mean of the readings in the minute",
    "min": "lowest reading in the minute",
    "max": "highest reading in the minute",
    "last": "last reading in the minute",
    "count": "readings in the minute (0: a gap)",
    "delta": "counters: increase over the minute, resets and rollovers accounted",
    "resets": "counter resets or rollovers detected in the minute",
    "day": "the local day (site time zone) the row belongs to; one file per day",
    "local_ts": "wall-clock time in the site time zone, without zone",
    "minute_of_day": "minutes since local midnight (unique on DST days: 0..1379/1439/1499)",
    "marker_5min": "first minute of a 5-minute block of the local clock",
    "marker_10min": "first minute of a 10-minute block of the local clock",
    "marker_15min": "first minute of a 15-minute block of the local clock",
    "marker_30min": "first minute of a 30-minute block of the local clock",
    "marker_60min": "first minute of a local hour",
    "hour": "local hour of the day (0..23)",
    "day_of_week": "local weekday, Monday = 0",
    "is_weekend": "Saturday or Sunday",
    "minutes_elapsed": "minutes since the device's first reading of the day",
    "minutes_in_day": "minutes of the local day (1,380 / 1,440 / 1,500)",
    "minutes_expected": "minutes that should hold a reading given the poll interval",
    "minutes_present": "minutes (of the day or slot) holding at least one reading",
    "completeness_pct": "minutes_present / minutes_expected in percent",
    "readings": "raw readings that went into the day",
    "energy_metric": "the counter used for energy",
    "energy": "sum of the energy counter's deltas over the day, in its unit",
    "energy_resets": "energy counter resets or rollovers in the day",
    "power_metric": "the metric used for power",
    "power_min": "lowest minute mean of the power metric",
    "power_max": "highest minute mean of the power metric",
    "power_avg": "mean of the power metric over the day",
    "peak_15min_power": "highest 15-minute mean power",
    "peak_15min_start": "UTC start of the peak 15 minutes",
    "metric_stats": "per metric: min, max, avg, last, delta and minutes present",
    "target_metric": "the forecast target: pipeline.forecast_targets, else energy, else power",
    "target_kind": "'energy' (sum of counter deltas per slot) or 'power' (mean)",
    "target": "the slot's value of the target",
    "lag_1d": "target of the same instant 24 h earlier",
    "lag_7d": "target of the same instant 7 x 24 h earlier",
    "rolling_mean_1h": "mean target of the 4 slots before",
    "rolling_mean_24h": "mean target of the 96 slots before",
    "same_slot_mean_4w": "mean target of the same instant 7, 14, 21 and 28 days earlier",
    "slot_of_day": "15-minute slot since local midnight",
    "is_holiday": "a public holiday of site.country",
    "outdoor_temp_c": "outdoor temperature of the slot where a device reports one",
    "model": "'seasonal_naive' or 'gradient_boosting'",
    "forecast": "forecast target of the slot, made with data up to the end of day - 1",
    "lower": "lower bound of the 80 % prediction interval (null: none)",
    "upper": "upper bound of the 80 % prediction interval (null: none)",
    "horizon": "'day-ahead': every slot of the day, from data up to the day before",
    "window_start": "first day of the rolling-origin backtest",
    "window_end": "last day of the rolling-origin backtest (the day before `day`)",
    "mae": "mean absolute error over the backtest's slots",
    "rmse": "root mean squared error over the backtest's slots",
    "mape": "mean absolute percentage error over slots with a non-zero actual (null: none)",
    "skill_vs_naive": "1 - MAE / MAE of the seasonal naive (> 0: better than the baseline)",
}
"""Every column's meaning, by name: a name means the same thing in every table."""
