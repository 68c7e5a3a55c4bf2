"""The catalog as Arrow tables: the SQL views `devices` and `metrics`, and the bounds the
cleaning SQL joins. Apart from `model` so that holding a catalog (the collector does, for its
whole life) never imports Arrow."""

from __future__ import annotations

from collections.abc import Iterable

import pyarrow as pa

from energy_pipeline.catalog.model import Catalog, display_name

BOUNDS_SCHEMA = pa.schema(
    [
        pa.field("device_id", pa.string()),
        pa.field("metric", pa.string()),
        pa.field("lo", pa.float64()),
        pa.field("hi", pa.float64()),
        pa.field("is_counter", pa.bool_()),
        pa.field("wrap", pa.float64()),
    ]
)
"""What the cleaning and resampling SQL joins to each (device, metric)."""

DEVICES_SCHEMA = pa.schema(
    [
        pa.field("device_id", pa.string(), nullable=False),
        pa.field("driver", pa.string(), nullable=False),
        pa.field("profile", pa.string()),
        pa.field("name", pa.string()),
        pa.field("manufacturer", pa.string()),
        pa.field("model", pa.string()),
        pa.field("interval_s", pa.float64()),
        pa.field("tags", pa.map_(pa.string(), pa.string())),
        pa.field("vpn", pa.string()),
    ]
)
METRICS_SCHEMA = pa.schema(
    [
        pa.field("device_id", pa.string(), nullable=False),
        pa.field("metric", pa.string(), nullable=False),
        pa.field("unit", pa.string()),
        pa.field("kind", pa.string()),
        pa.field("description", pa.string()),
        pa.field("display_name", pa.string()),
    ]
)


def devices_table(catalog: Catalog) -> pa.Table:
    rows = [
        {
            "device_id": d.device_id,
            "driver": d.driver,
            "profile": d.profile or None,
            "name": d.name,
            "manufacturer": d.manufacturer,
            "model": d.model,
            "interval_s": d.interval,
            "tags": list(d.tags.items()),
            "vpn": d.vpn or None,
        }
        for d in catalog.devices.values()
    ]
    return pa.Table.from_pylist(rows, schema=DEVICES_SCHEMA)


def metrics_table(catalog: Catalog) -> pa.Table:
    columns: dict[str, list] = {name: [] for name in METRICS_SCHEMA.names}
    for device_id, device in catalog.devices.items():
        for name, meaning in device.metrics.items():
            columns["device_id"].append(device_id)
            columns["metric"].append(name)
            columns["unit"].append(meaning.unit or None)
            columns["kind"].append(meaning.kind)
            columns["description"].append(meaning.description or None)
            columns["display_name"].append(meaning.display_name or display_name(name))
    return pa.table(columns, schema=METRICS_SCHEMA)


def sql_tables(catalog: Catalog) -> dict[str, pa.Table]:
    return {"devices": devices_table(catalog), "metrics": metrics_table(catalog)}


def bounds_table(catalog: Catalog, series: Iterable[tuple[str, str]]) -> pa.Table:
    """One row per (device, metric) seen or known: the SQL joins this to clean and resample."""
    known = {(d, m) for d, device in catalog.devices.items() for m in device.metrics}
    rows: dict[str, list] = {name: [] for name in BOUNDS_SCHEMA.names}
    for device_id, name in sorted(set(series) | known):
        meaning = catalog.metric(device_id, name)
        rows["device_id"].append(device_id)
        rows["metric"].append(name)
        rows["lo"].append(meaning.lo)
        rows["hi"].append(meaning.hi)
        rows["is_counter"].append(meaning.counter)
        rows["wrap"].append(meaning.wrap)
    return pa.table(rows, schema=BOUNDS_SCHEMA)
