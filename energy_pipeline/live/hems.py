"""The HEMS seed's record (cc-hems-data-collector): one flat document per smart-meter reading
with the seed's keys in its order, ISO 8601 UTC timestamps where this product stores epoch
seconds, and null for what the meter did not report (a single-phase meter's `current_t_a`).
Made for the devices whose metric catalog holds the seed's metrics; others have no record."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from energy_pipeline.catalog import DeviceMeaning
from energy_pipeline.live.records import iso, shown_values
from energy_pipeline.readings import PollOutcome

HEMS_KEYS = (
    "timestamp",
    "cumulative_power_kwh",
    "instant_power_w",
    "current_a",
    "current_r_a",
    "current_t_a",
    "historical_timestamp",
    "historical_cumulative_power_kwh",
    "recent_30min_timestamp",
    "recent_30min_consumption_kwh",
)
_VALUE_KEYS = HEMS_KEYS[1:]
_INSTANTS = frozenset({"historical_timestamp", "recent_30min_timestamp"})


class HemsRecords:
    def __init__(self, meta: dict[str, DeviceMeaning]):
        self.meta = meta
        self.devices = frozenset(
            device for device, m in meta.items() if any(k in m.metrics for k in _VALUE_KEYS)
        )

    def record(self, outcome: PollOutcome) -> dict[str, Any] | None:
        """The flat record of a successful poll of a smart meter, else None."""
        if not outcome.ok or outcome.device_id not in self.devices:
            return None
        values = shown_values(outcome, self.meta[outcome.device_id])
        record: dict[str, Any] = {"timestamp": iso(outcome.ts)}
        for key in _VALUE_KEYS:
            value = values.get(key)
            if key in _INSTANTS and isinstance(value, int | float):
                value = iso(datetime.fromtimestamp(value, UTC))
            record[key] = value
        return record
