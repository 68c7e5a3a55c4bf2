"""The metrics of an ECHONET Lite low-voltage smart meter (class 0x0288), as device facts.

Each metric names the property (EPC) it is read from, its unit and whether it only grows. The
driver names its readings from this table and the metric catalog reads their meaning from it,
so neither imports the other. The cumulative energies, also those read at the last :00/:30
boundary (EA/EB), are unwrapped past 10^D7 by the driver and so are counters; the half-hour
consumption from the E2 history is an amount per slot, a gauge.
"""

from __future__ import annotations

from dataclasses import dataclass

from energy_pipeline.profiles.model import Kind


@dataclass(frozen=True, slots=True)
class EchonetMetric:
    name: str
    unit: str
    kind: Kind
    epc: int
    description: str
    publish: bool = False


TABLE: tuple[EchonetMetric, ...] = (
    EchonetMetric("instant_power_w", "W", "gauge", 0xE7, "instantaneous power", True),
    EchonetMetric("current_r_a", "A", "gauge", 0xE8, "instantaneous current, R phase", True),
    EchonetMetric("current_t_a", "A", "gauge", 0xE8, "instantaneous current, T phase", True),
    EchonetMetric(
        "current_a", "A", "gauge", 0xE8, "R + T current (R alone on a single-phase meter)"
    ),
    EchonetMetric(
        "cumulative_power_kwh", "kWh", "counter", 0xE0, "cumulative energy, import", True
    ),
    EchonetMetric(
        "cumulative_power_export_kwh", "kWh", "counter", 0xE3, "cumulative energy, export", True
    ),
    EchonetMetric(
        "historical_timestamp", "s", "gauge", 0xEA, "instant of the last :00/:30 reading"
    ),
    EchonetMetric(
        "historical_cumulative_power_kwh",
        "kWh",
        "counter",
        0xEA,
        "cumulative energy, import, at the last :00/:30",
    ),
    EchonetMetric(
        "historical_cumulative_power_export_kwh",
        "kWh",
        "counter",
        0xEB,
        "cumulative energy, export, at the last :00/:30",
    ),
    EchonetMetric(
        "recent_30min_timestamp", "s", "gauge", 0xE2, "end of the newest complete half hour"
    ),
    EchonetMetric(
        "recent_30min_consumption_kwh", "kWh", "gauge", 0xE2, "energy used in that half hour"
    ),
)

METRICS: tuple[str, ...] = tuple(metric.name for metric in TABLE)
"""The driver's names tuple, in this order on every poll."""
