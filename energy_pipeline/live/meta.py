"""What each device's metrics mean for the live outputs: unit, kind (gauge, counter, state),
state labels, a display name and precision, names other tools know the metric by, and whether
a profile marks the metric for publishing. Modbus devices take this from their profile; the
other families have fixed metric sets described here."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cache

from energy_pipeline.config import Config, Device, EchonetDevice, LuxtronikDevice, ModbusDevice
from energy_pipeline.profiles import load_profile
from energy_pipeline.profiles.model import AlertDefault, Point

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
INTEGER_TYPES = ("int16", "uint16", "int32", "uint32", "int64", "uint64")


@dataclass(frozen=True, slots=True)
class MetricMeta:
    unit: str = ""
    kind: str = "gauge"
    labels: dict[int, str] = field(default_factory=dict)
    publish: bool = False
    description: str = ""
    precision: int | None = None
    prometheus: tuple[str, dict[int, float] | None] | None = None
    """Another /metrics gauge name, with state code -> value for a mapped state."""

    def display_name(self, name: str) -> str:
        """The profile's description, else the metric id in words."""
        return self.description or name.replace("_", " ")

    def decimals(self) -> int:
        """Decimals a value is shown and published with."""
        if self.kind == "state":
            return 0
        if self.precision is not None:
            return self.precision
        return _UNIT_PRECISION.get(self.unit, 2)


def point_precision(point: Point) -> int | None:
    """An integer register's scale fixes its resolution (x0.1 -> 1 decimal); floats have none."""
    if point.data_type not in INTEGER_TYPES or point.scale == 0:
        return None
    return max(0, math.ceil(-math.log10(abs(point.scale)) - 1e-9))


@dataclass(frozen=True)
class DeviceMeta:
    device_id: str
    driver: str
    name: str
    manufacturer: str
    model: str
    metrics: dict[str, MetricMeta]
    alert_defaults: tuple[AlertDefault, ...] = ()

    def metric(self, name: str) -> MetricMeta:
        return self.metrics.get(name) or _guess(name)

    def published(self) -> list[str]:
        return [name for name, m in self.metrics.items() if m.publish]


_ECHONET = {
    "instant_power_w": MetricMeta("W", "gauge", publish=True, description="Instantaneous power"),
    "current_r_a": MetricMeta(
        "A", "gauge", publish=True, description="Current R phase", precision=1
    ),
    "current_t_a": MetricMeta(
        "A", "gauge", publish=True, description="Current T phase", precision=1
    ),
    "current_a": MetricMeta("A", "gauge", description="Current", precision=1),
    "cumulative_power_kwh": MetricMeta(
        "kWh", "counter", publish=True, description="Energy imported", precision=3
    ),
    "cumulative_power_export_kwh": MetricMeta(
        "kWh", "counter", publish=True, description="Energy exported", precision=3
    ),
    "historical_cumulative_power_kwh": MetricMeta(
        "kWh", "counter", description="Energy imported at the last half hour", precision=3
    ),
    "historical_cumulative_power_export_kwh": MetricMeta(
        "kWh", "counter", description="Energy exported at the last half hour", precision=3
    ),
    "historical_timestamp": MetricMeta("s", "gauge", description="Last half-hour reading time"),
    "recent_30min_consumption_kwh": MetricMeta(
        "kWh", "gauge", description="Consumption in the last half hour", precision=3
    ),
    "recent_30min_timestamp": MetricMeta("s", "gauge", description="Last half-hour slot time"),
}

# python-luxtronik datatypes (as the Luxtronik driver keeps them) to units.
_LUXTRONIK_UNITS = {
    "Celsius": "°C",
    "Kelvin": "K",
    "Voltage": "V",
    "Pressure": "bar",
    "Flow": "l/h",
    "Speed": "rpm",
    "Power": "W",
    "Frequency": "Hz",
    "Percent2": "%",
    "Seconds": "s",
    "Hours": "h",
    "Energy": "kWh",
}
# The published values, with the words the Luxtronik web interface uses for them.
_LUXTRONIK_PUBLISH = {
    "ID_WEB_Temperatur_TVL": "Flow temperature",
    "ID_WEB_Temperatur_TRL": "Return temperature",
    "ID_WEB_Temperatur_TA": "Outdoor temperature",
    "ID_WEB_Temperatur_TBW": "Hot water temperature",
    "ID_WEB_WMZ_Heizung": "Heat quantity, heating",
    "ID_WEB_WMZ_Brauchwasser": "Heat quantity, hot water",
    "Heat_Output": "Heat output",
}
_SUFFIX_UNITS = (("_kwh", "kWh"), ("_wh", "Wh"), ("_w", "W"), ("_a", "A"), ("_v", "V"))


@cache
def _luxtronik_metrics() -> dict[str, MetricMeta]:
    """Units from python-luxtronik's datatypes; heat quantities (WMZ) and operating hours only
    ever grow, so they are counters."""
    from energy_pipeline.drivers.luxtronik.names import DEFINITIONS

    metrics = {}
    for table in DEFINITIONS.values():
        for item in table.values():
            unit = _LUXTRONIK_UNITS.get(item.datatype)
            if unit is None:
                continue
            grows = item.datatype == "Hours" or item.name.startswith("ID_WEB_WMZ_")
            kind = "counter" if grows else "gauge"
            described = _LUXTRONIK_PUBLISH.get(item.name)
            metrics[item.name] = MetricMeta(
                unit, kind, publish=described is not None, description=described or ""
            )
    return metrics


def _guess(name: str) -> MetricMeta:
    for suffix, unit in _SUFFIX_UNITS:
        if name.endswith(suffix):
            return MetricMeta(unit)
    return MetricMeta()


def device_meta(config: Config, device: Device) -> DeviceMeta:
    name = device.tags.get("name", device.id)
    if isinstance(device, ModbusDevice):
        profile = load_profile(device.profile, config.base_dir)
        metrics = {
            p.name: MetricMeta(
                p.unit or "",
                p.kind,
                dict(p.labels),
                p.publish,
                p.description or "",
                point_precision(p),
                p.prometheus_alias(),
            )
            for p in profile.points
            if p.data_type != "string"
        }
        return DeviceMeta(
            device.id,
            device.driver,
            name,
            profile.manufacturer,
            profile.model,
            metrics,
            tuple(profile.alerts),
        )
    if isinstance(device, EchonetDevice):
        return DeviceMeta(device.id, device.driver, name, "ECHONET Lite", "smart meter", _ECHONET)
    assert isinstance(device, LuxtronikDevice)
    return DeviceMeta(
        device.id, device.driver, name, "Luxtronik", "heat pump 2.x", _luxtronik_metrics()
    )


def site_meta(config: Config) -> dict[str, DeviceMeta]:
    return {dev.id: device_meta(config, dev) for dev in config.devices}
