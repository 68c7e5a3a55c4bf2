"""The site's catalog from its config: Modbus devices from their profiles (loaded the one way
profiles load, `#model` included), Luxtronik and ECHONET devices from their name tables."""

from __future__ import annotations

import math
from functools import cache
from types import MappingProxyType

from energy_pipeline.catalog.model import (
    Catalog,
    DeviceMeaning,
    MetricMeaning,
    display_name,
)
from energy_pipeline.config import Config, Device, EchonetDevice, LuxtronikDevice, ModbusDevice
from energy_pipeline.profiles import echonet_names, load_profile, luxtronik_names
from energy_pipeline.profiles.model import Point

# Unsigned integer registers wrap at 2**bits; float counters do not wrap, they only reset.
_WRAP_BITS = {"uint16": 16, "uint32": 32, "uint64": 64}
_INTEGER_TYPES = ("int16", "uint16", "int32", "uint32", "int64", "uint64")
# The smart meter's resolution: currents in 0.1 A (E8); energy down to 0.001 kWh (E1 code 3).
_ECHONET_PRECISION = {"A": 1, "kWh": 3}


def point_precision(point: Point) -> int | None:
    """An integer register's scale fixes its resolution (x0.1 -> 1 decimal); floats have none."""
    if point.data_type not in _INTEGER_TYPES or point.scale == 0:
        return None
    return max(0, math.ceil(-math.log10(abs(point.scale)) - 1e-9))


def point_meaning(point: Point) -> MetricMeaning:
    """The profile says what a point is: its `kind` wins over any name, so a net energy
    register that falls while exporting stays a gauge even though it is called energy."""
    wrap = None
    if point.kind == "counter" and point.data_type in _WRAP_BITS:
        wrap = float(2 ** _WRAP_BITS[point.data_type]) * point.scale
    return MetricMeaning(
        unit=point.unit or "",
        kind=point.kind,
        labels=dict(point.labels),
        description=point.description or "",
        publish=point.publish,
        display_name=point.description or display_name(point.name),
        lo=point.min,
        hi=point.max,
        wrap=wrap,
        precision=point_precision(point),
        prometheus=point.prometheus_alias(),
    )


@cache
def echonet_metrics() -> MappingProxyType[str, MetricMeaning]:
    return MappingProxyType(
        {
            m.name: MetricMeaning(
                unit=m.unit,
                kind=m.kind,
                description=f"{m.description} (EPC {m.epc:02X})",
                publish=m.publish,
                display_name=m.description[:1].upper() + m.description[1:],
                precision=_ECHONET_PRECISION.get(m.unit),
            )
            for m in echonet_names.TABLE
        }
    )


@cache
def luxtronik_metrics() -> MappingProxyType[str, MetricMeaning]:
    metrics: dict[str, MetricMeaning] = {}
    for vector, table in luxtronik_names.DEFINITIONS.items():
        for index, item in table.items():
            metrics[item.name] = MetricMeaning(
                unit=luxtronik_names.UNITS.get(item.datatype, ""),
                kind=luxtronik_names.kind(item.name),
                description=f"{vector.value} {index} ({item.datatype})",
                publish=item.name in luxtronik_names.PUBLISH,
                display_name=luxtronik_names.PUBLISH.get(item.name) or display_name(item.name),
            )
    return MappingProxyType(metrics)


@cache
def family_metrics() -> MappingProxyType[str, MetricMeaning]:
    """Fixed-name metrics by name alone, for lake series of devices no longer configured."""
    return MappingProxyType({**luxtronik_metrics(), **echonet_metrics()})


def device_meaning(config: Config, device: Device) -> DeviceMeaning:
    name = device.tags.get("name", device.id)
    if isinstance(device, ModbusDevice):
        profile = load_profile(device.profile, config.base_dir)
        return DeviceMeaning(
            device.id,
            device.driver,
            name,
            profile.manufacturer,
            profile.model,
            MappingProxyType(
                {p.name: point_meaning(p) for p in profile.points if p.data_type != "string"}
            ),
            device.interval,
            tuple(profile.alerts),
            device.profile,
            dict(device.tags),
            vpn=device.vpn or "",
        )
    if isinstance(device, EchonetDevice):
        return DeviceMeaning(
            device.id,
            device.driver,
            name,
            "ECHONET Lite",
            "smart meter",
            echonet_metrics(),
            device.interval,
            tags=dict(device.tags),
            vpn=device.vpn or "",
        )
    assert isinstance(device, LuxtronikDevice)
    return DeviceMeaning(
        device.id,
        device.driver,
        name,
        "Luxtronik",
        "heat pump 2.x",
        luxtronik_metrics(),
        device.interval,
        tags=dict(device.tags),
        vpn=device.vpn or "",
    )


def build_catalog(config: Config) -> Catalog:
    return Catalog(
        devices={dev.id: device_meaning(config, dev) for dev in config.devices},
        targets=dict(config.pipeline.forecast_targets),
        families=family_metrics(),
    )
