"""What each device's metrics mean for the live outputs: unit, kind (gauge, counter, state),
state labels, and whether a profile marks the metric for publishing. Modbus devices take this
from their profile; the other families have fixed metric sets described here."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache

from energy_pipeline.config import Config, Device, EchonetDevice, LuxtronikDevice, ModbusDevice
from energy_pipeline.profiles import load_profile
from energy_pipeline.profiles.model import AlertDefault


@dataclass(frozen=True, slots=True)
class MetricMeta:
    unit: str = ""
    kind: str = "gauge"
    labels: dict[int, str] = field(default_factory=dict)
    publish: bool = False


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
    "instant_power_w": MetricMeta("W", "gauge", publish=True),
    "current_r_a": MetricMeta("A", "gauge", publish=True),
    "current_t_a": MetricMeta("A", "gauge", publish=True),
    "current_a": MetricMeta("A", "gauge"),
    "cumulative_power_kwh": MetricMeta("kWh", "counter", publish=True),
    "cumulative_power_export_kwh": MetricMeta("kWh", "counter", publish=True),
    "historical_cumulative_power_kwh": MetricMeta("kWh", "counter"),
    "historical_cumulative_power_export_kwh": MetricMeta("kWh", "counter"),
    "historical_timestamp": MetricMeta("s", "gauge"),
    "recent_30min_consumption_kwh": MetricMeta("kWh", "gauge"),
    "recent_30min_timestamp": MetricMeta("s", "gauge"),
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
_LUXTRONIK_PUBLISH = frozenset(
    {
        "ID_WEB_Temperatur_TVL",
        "ID_WEB_Temperatur_TRL",
        "ID_WEB_Temperatur_TA",
        "ID_WEB_Temperatur_TBW",
        "ID_WEB_WMZ_Heizung",
        "ID_WEB_WMZ_Brauchwasser",
        "Heat_Output",
    }
)
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
            metrics[item.name] = MetricMeta(unit, kind, publish=item.name in _LUXTRONIK_PUBLISH)
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
            p.name: MetricMeta(p.unit or "", p.kind, dict(p.labels), p.publish)
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
