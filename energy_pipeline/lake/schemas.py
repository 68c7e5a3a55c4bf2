"""The Arrow schemas of the raw lake's landing tables, `raw_readings` and `polls`, defined once.

Only what writes or reads Parquet imports this: the collector's seal process, simulated
history, the transforms. The long-running collector lands through its write-ahead log and
never loads Arrow.
"""

from __future__ import annotations

import pyarrow as pa

TS_TYPE = pa.timestamp("us", tz="UTC")

RAW_SCHEMA = pa.schema(
    [
        pa.field("ts", TS_TYPE, nullable=False),
        pa.field("device_id", pa.string(), nullable=False),
        pa.field("metric", pa.string(), nullable=False),
        pa.field("value", pa.float64(), nullable=False),
    ]
)

_DICT = pa.dictionary(pa.int32(), pa.string())
RAW_DICT_SCHEMA = pa.schema(
    [
        pa.field("ts", TS_TYPE, nullable=False),
        pa.field("device_id", _DICT, nullable=False),
        pa.field("metric", _DICT, nullable=False),
        pa.field("value", pa.float64(), nullable=False),
    ]
)
"""RAW_SCHEMA with dictionary-encoded strings: what the seal process and simulated history
hand to the lake writer."""

POLLS_SCHEMA = pa.schema(
    [
        pa.field("ts", TS_TYPE, nullable=False),
        pa.field("device_id", pa.string(), nullable=False),
        pa.field("ok", pa.bool_(), nullable=False),
        pa.field("started_at", TS_TYPE, nullable=False),
        pa.field("finished_at", TS_TYPE, nullable=False),
        pa.field("latency_ms", pa.float64(), nullable=False),
        pa.field("attempts", pa.int32(), nullable=False),
        pa.field("error", pa.string(), nullable=True),
    ]
)


def plain_raw(table: pa.Table) -> pa.Table:
    """The lake's RAW_SCHEMA (plain strings) from the dictionary-encoded form."""
    return table.cast(RAW_SCHEMA)
