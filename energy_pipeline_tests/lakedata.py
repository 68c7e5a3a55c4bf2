"""Raw lake test data in the collector's contracted layout, written with the real helpers
(`readings.RAW_SCHEMA`, `lake.files.atomic_write_parquet`, `lake/status` format)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa

from energy_pipeline.config import Config
from energy_pipeline.lake.files import atomic_write_json, atomic_write_parquet
from energy_pipeline.lake.layout import RAW_READINGS, hour_dir, status_path
from energy_pipeline.lake.schemas import RAW_SCHEMA
from energy_pipeline_tests.kit.sites import load_site

Row = tuple[datetime, str, str, float]

PROFILE = """\
manufacturer: Test
model: Meter
points:
  - {name: voltage_l1_n, address: 0, data_type: float32, unit: V, min: 0, max: 400}
  - {name: power_active_total, address: 2, data_type: float32, unit: W, min: -50000, max: 50000}
  - {name: energy_active_import_total, address: 4, data_type: uint32, unit: Wh, kind: counter}
  - {name: outdoor_temperature, address: 6, data_type: int16, scale: 0.1, unit: degC}
"""


def site(tmp_path: Path, tz: str = "Europe/Berlin", extra: str = "", interval: int = 60) -> Config:
    """A site with two metered devices on the test profile, data under tmp_path/data."""
    devices = [
        {
            "id": dev,
            "driver": "modbus",
            "profile": "meter.yaml",
            "connection": {"transport": "tcp", "host": "127.0.0.1", "port": 15020},
            "interval": interval,
        }
        for dev in ("m1", "m2")
    ]
    return load_site(
        tmp_path,
        devices,
        site={"name": "test", "timezone": tz, "country": "DE"},
        profiles={"meter.yaml": PROFILE},
        extra=extra,
    )


def table(rows: Iterable[Row]) -> pa.Table:
    rows = list(rows)
    return pa.table(
        {
            "ts": pa.array([r[0] for r in rows], RAW_SCHEMA.field("ts").type),
            "device_id": [r[1] for r in rows],
            "metric": [r[2] for r in rows],
            "value": pa.array([r[3] for r in rows], pa.float64()),
        },
        schema=RAW_SCHEMA,
    )


def write_raw(
    data_dir: Path, rows: Iterable[Row], collector: str = "c1", per_minute: bool = True
) -> list[Path]:
    """One file per collector and minute in the UTC hour folder, as the collector seals them
    (or one per hour, as after compaction, which keeps day-sized test data fast to write)."""
    by_minute: dict[datetime, list[Row]] = defaultdict(list)
    for row in rows:
        key = row[0].astimezone(UTC).replace(second=0, microsecond=0)
        by_minute[key if per_minute else key.replace(minute=0)].append(row)
    paths = []
    for minute, part in sorted(by_minute.items()):
        path = (
            hour_dir(data_dir, RAW_READINGS, minute) / f"{collector}-{minute:%Y%m%dT%H%M}.parquet"
        )
        atomic_write_parquet(table(part), path)
        paths.append(path)
    return paths


def write_status(data_dir: Path, sealed: datetime, collector: str = "c1") -> None:
    atomic_write_json(
        status_path(data_dir, collector),
        {
            "collector_id": collector,
            "pid": 1,
            "updated_at": sealed.isoformat(),
            "sealed_watermark": sealed.isoformat(),
            "devices": {},
        },
    )
