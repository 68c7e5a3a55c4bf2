"""The catalog's data: pure, no files and no config, so it can be built by hand in a test.

A metric a device reports but its profile or name table does not list (an old lake series, a
device removed from the config) gets `guess(name)`: the meaning of that name in the fixed-name
families if it is one, else a unit from its suffix and a counter only for the common energy
names. Both live outputs and transforms fall back to this same guess.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from energy_pipeline.profiles.model import AlertDefault, Kind

ENERGY_NAMES = (
    "energy_active_import_total",
    "energy_active_total",
    "cumulative_power_kwh",
    "ID_WEB_WMZ_seit",
)
"""The energy role by name, first match wins; by name alone (no profile) also a counter."""
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
_SUFFIX_UNITS = (("_kwh", "kWh"), ("_wh", "Wh"), ("_w", "W"), ("_a", "A"), ("_v", "V"))

"""The catalog as SQL tables (`devices`, `metrics`), so units and meanings are queryable."""

_NO_MEANINGS: Mapping[str, MetricMeaning] = MappingProxyType({})

# Decimals worth showing per unit, where the register's scale does not say (floats, fixed sets).
_UNIT_PRECISION = {
    "V": 1,
    "A": 2,
    "W": 0,
    "kW": 3,
    "VA": 0,
    "var": 0,
    "Hz": 2,
    "°C": 1,
    "K": 1,
    "%": 0,
    "Wh": 0,
    "kWh": 2,
    "VAh": 0,
    "varh": 0,
    "bar": 2,
    "l/h": 0,
    "rpm": 0,
    "s": 0,
    "h": 0,
    "": 2,
}


@dataclass(frozen=True, slots=True)
class MetricMeaning:
    unit: str = ""
    kind: Kind = "gauge"
    labels: Mapping[int, str] = field(default_factory=dict)
    description: str = ""
    publish: bool = False
    display_name: str = ""
    lo: float | None = None
    hi: float | None = None
    wrap: float | None = None
    """Unsigned counters wrap at 2**bits x scale; float and family counters only reset."""
    precision: int | None = None
    """Decimals the value is good to, where known (an integer register's scale)."""
    prometheus: tuple[str, Mapping[int, float] | None] | None = None
    """Another /metrics gauge name (a profile's `aliases.prometheus`), with state code ->
    value for a mapped state."""

    @property
    def counter(self) -> bool:
        return self.kind == "counter"

    def decimals(self) -> int:
        """Decimals a value is shown and published with."""
        if self.kind == "state":
            return 0
        if self.precision is not None:
            return self.precision
        return _UNIT_PRECISION.get(self.unit, 2)


def guess(name: str, families: Mapping[str, MetricMeaning]) -> MetricMeaning:
    known = families.get(name)
    if known is not None:
        return known
    kind: Kind = "counter" if name in ENERGY_NAMES else "gauge"
    unit = next((unit for suffix, unit in _SUFFIX_UNITS if name.endswith(suffix)), "")
    return MetricMeaning(unit, kind, display_name=display_name(name))


def display_name(name: str) -> str:
    return name.replace("_", " ")


@dataclass(frozen=True)
class DeviceMeaning:
    device_id: str
    driver: str
    name: str
    manufacturer: str
    model: str
    metrics: Mapping[str, MetricMeaning]
    interval: float = 60.0
    alert_defaults: tuple[AlertDefault, ...] = ()
    profile: str = ""
    """The Modbus profile as configured (a built-in name or a path); empty for other drivers."""
    tags: Mapping[str, str] = field(default_factory=dict)
    vpn: str = ""
    """The `vpn:` tunnel the device is reached through; empty when it needs none."""

    def metric(self, name: str) -> MetricMeaning:
        return self.metrics.get(name) or guess(name, _NO_MEANINGS)

    def published(self) -> list[str]:
        return [name for name, m in self.metrics.items() if m.publish]

    def column_order(self, metrics: Iterable[str]) -> list[str]:
        """`metrics` in this device's order (a profile's register order, what PROGNOZA's CSVs
        had), any it does not list after them by name."""
        present = set(metrics)
        known = [m for m in self.metrics if m in present]
        return known + sorted(present.difference(known))


@dataclass
class Catalog:
    """The site's devices by id, the configured forecast targets, and the fixed-name families'
    metrics for series of devices the config no longer lists."""

    devices: dict[str, DeviceMeaning] = field(default_factory=dict)
    targets: dict[str, str] = field(default_factory=dict)
    families: Mapping[str, MetricMeaning] = field(default_factory=dict)

    def metric(self, device_id: str, name: str) -> MetricMeaning:
        device = self.devices.get(device_id)
        return device.metric(name) if device is not None else guess(name, self.families)

    def is_counter(self, device_id: str, name: str) -> bool:
        return self.metric(device_id, name).counter

    def column_order(self, device_id: str, metrics: Iterable[str]) -> list[str]:
        device = self.devices.get(device_id)
        return device.column_order(metrics) if device is not None else sorted(set(metrics))

    @property
    def intervals(self) -> dict[str, float]:
        return {device_id: d.interval for device_id, d in self.devices.items()}

    def expected_minutes(self, device_id: str, minutes_in_day: int) -> int:
        """Minutes that should hold a reading: all of them, unless the device polls slower."""
        device = self.devices.get(device_id)
        interval = device.interval if device is not None else 60.0
        if interval <= 60:
            return minutes_in_day
        return max(1, -(-minutes_in_day * 60 // int(interval)))

    def energy_metric(self, device_id: str, metrics: Iterable[str]) -> str | None:
        present = set(metrics)
        for name in ENERGY_NAMES:
            if name in present and self.is_counter(device_id, name):
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
