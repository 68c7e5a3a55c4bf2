"""Arrow schemas of the tables the pipeline writes, defined once.

The same schema is written to Parquet, shown in Dagster's column metadata and used to create an
empty, correctly typed view when a table has no files yet. Tables are long (one row per device,
metric and time), so a metric that appears or disappears mid-day never changes a schema.
"""

from __future__ import annotations

import pyarrow as pa

from energy_pipeline.readings import TS_TYPE

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
