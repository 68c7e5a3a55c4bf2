"""What each device's metrics mean to the pipeline: counter or not, valid range, role.

Modbus devices take this from their register-map profile (`kind`, `min`, `max`, and the raw
type's range for counter rollover). Luxtronik and ECHONET devices have fixed metric names, so
their counters are known by name. Roles (the energy counter, the power metric, an outdoor
temperature) pick what daily summaries and forecast features are built from.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import pyarrow as pa

from energy_pipeline.config import Config, ModbusDevice
from energy_pipeline.profiles import ProfileNotFound, resolve_profile
from energy_pipeline.profiles.model import load_profile_cached

# Counters of the fixed-name families: ECHONET cumulative energy, Luxtronik heat quantities
# (WMZ) and operating-hour/impulse counters (Zaehler).
_NAMED_COUNTERS = re.compile(r"^(cumulative_.*_kwh|cumulative_power_kwh|ID_WEB_(WMZ_|Zaehler_).*)$")
# Unsigned integer registers wrap at 2**bits; float counters do not wrap, they only reset.
_WRAP_BITS = {"uint16": 16, "uint32": 32, "uint64": 64}

ENERGY_NAMES = (
    "energy_active_import_total",
    "energy_active_total",
    "cumulative_power_kwh",
    "ID_WEB_WMZ_seit",
)
POWER_NAMES = (
    "power_active_total",
    "instant_power_w",
    "load_power",
    "power_active",
    "electric_power",
)
OUTDOOR_NAMES = (
    "outdoor_temperature",
    "outdoor_temp",
    "temperature_outdoor",
    "ID_WEB_Temperatur_TA",
)

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


@dataclass(frozen=True)
class MetricInfo:
    counter: bool = False
    lo: float | None = None
    hi: float | None = None
    wrap: float | None = None


@dataclass
class Catalog:
    """Known metrics per device, plus the polling interval that sets expected minutes."""

    metrics: dict[tuple[str, str], MetricInfo] = field(default_factory=dict)
    intervals: dict[str, float] = field(default_factory=dict)
    targets: dict[str, str] = field(default_factory=dict)
    order: dict[str, list[str]] = field(default_factory=dict)
    """Metric names per device in register-map order, where a profile gives one."""

    def column_order(self, device_id: str, metrics: Iterable[str]) -> list[str]:
        """`metrics` in the profile's register order (what PROGNOZA's CSVs had), any the
        profile does not name after them by name."""
        present = set(metrics)
        known = [m for m in self.order.get(device_id, ()) if m in present]
        return known + sorted(present.difference(known))

    def info(self, device_id: str, metric: str) -> MetricInfo:
        known = self.metrics.get((device_id, metric))
        if known is not None:
            return known
        return MetricInfo(counter=metric in ENERGY_NAMES or bool(_NAMED_COUNTERS.match(metric)))

    def is_counter(self, device_id: str, metric: str) -> bool:
        return self.info(device_id, metric).counter

    def bounds_table(self, series: Iterable[tuple[str, str]]) -> pa.Table:
        """One row per (device, metric) seen: the SQL joins this to clean and resample."""
        rows = {"device_id": [], "metric": [], "lo": [], "hi": [], "is_counter": [], "wrap": []}
        for device_id, metric in sorted(set(series) | set(self.metrics)):
            info = self.info(device_id, metric)
            rows["device_id"].append(device_id)
            rows["metric"].append(metric)
            rows["lo"].append(info.lo)
            rows["hi"].append(info.hi)
            rows["is_counter"].append(info.counter)
            rows["wrap"].append(info.wrap)
        return pa.table(rows, schema=BOUNDS_SCHEMA)

    def expected_minutes(self, device_id: str, minutes_in_day: int) -> int:
        """Minutes that should hold a reading: all of them, unless the device polls slower."""
        interval = self.intervals.get(device_id, 60.0)
        if interval <= 60:
            return minutes_in_day
        return max(1, -(-minutes_in_day * 60 // int(interval)))

    def energy_metric(self, device_id: str, metrics: Iterable[str]) -> str | None:
        present = set(metrics)
        for name in ENERGY_NAMES:
            if name in present:
                return name
        counters = sorted(m for m in present if self.is_counter(device_id, m))
        energy = [m for m in counters if "energy" in m.lower() or "kwh" in m.lower()]
        return energy[0] if energy else None

    def power_metric(self, device_id: str, metrics: Iterable[str]) -> str | None:
        present = set(metrics)
        return next((name for name in POWER_NAMES if name in present), None)

    def outdoor_metric(self, metrics: Iterable[str]) -> str | None:
        present = set(metrics)
        return next((name for name in OUTDOOR_NAMES if name in present), None)

    def target(self, device_id: str, metrics: Iterable[str]) -> tuple[str, str] | None:
        """(metric, kind) forecast for a device: configured, else energy, else mean power."""
        present = set(metrics)
        chosen = self.targets.get(device_id)
        if chosen is not None:
            if chosen not in present:
                return None
            return chosen, "energy" if self.is_counter(device_id, chosen) else "power"
        energy = self.energy_metric(device_id, present)
        if energy is not None:
            return energy, "energy"
        power = self.power_metric(device_id, present)
        return (power, "power") if power is not None else None


def build_catalog(config: Config) -> Catalog:
    catalog = Catalog(targets=dict(config.pipeline.forecast_targets))
    for dev in config.devices:
        catalog.intervals[dev.id] = dev.interval
        if not isinstance(dev, ModbusDevice):
            continue
        try:
            profile = load_profile_cached(resolve_profile(dev.profile, config.base_dir))
        except ProfileNotFound:
            continue
        catalog.order[dev.id] = [p.name for p in profile.points]
        for point in profile.points:
            wrap = None
            counter = point.kind == "counter" or point.name in ENERGY_NAMES
            if counter and point.data_type in _WRAP_BITS:
                wrap = float(2 ** _WRAP_BITS[point.data_type]) * point.scale
            catalog.metrics[(dev.id, point.name)] = MetricInfo(
                counter=counter, lo=point.min, hi=point.max, wrap=wrap
            )
    return catalog
