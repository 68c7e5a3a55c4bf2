"""The JSON forms of a poll outcome shared by the API, MQTT, webhook and file outputs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from energy_pipeline.catalog import DeviceMeaning
from energy_pipeline.readings import PollOutcome


def iso(ts: datetime) -> str:
    """UTC ISO 8601 with a Z, the HEMS record's timestamp form."""
    return ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def values_of(outcome: PollOutcome) -> dict[str, float]:
    """Valid values by name; `tolist` first, since iterating a numpy array boxes each value."""
    sample = outcome.sample
    if sample is None:
        return {}
    return {n: v for n, v in zip(sample.names, sample.values.tolist(), strict=True) if v == v}


def shown_values(outcome: PollOutcome, meta: DeviceMeaning | None) -> dict[str, float | str]:
    """Values as a person reads them: a state by its label (`online`), a number rounded to its
    metric's precision (`1.4`, not the `1.4000000000000001` that x0.1 scaling gives)."""
    values = values_of(outcome)
    if meta is None:
        return dict(values)
    shown: dict[str, float | str] = {}
    for name, value in values.items():
        m = meta.metric(name)
        if m.labels:
            shown[name] = m.labels.get(int(value), value)
        else:
            decimals = m.decimals()
            shown[name] = round(value, decimals) if decimals else round(value)
    return shown


def flat_record(outcome: PollOutcome) -> dict[str, Any]:
    """`timestamp` (UTC ISO), `device_id`, then the metrics: the file and stdout lines."""
    return {"timestamp": iso(outcome.ts), "device_id": outcome.device_id, **values_of(outcome)}


def outcome_record(outcome: PollOutcome) -> dict[str, Any]:
    record: dict[str, Any] = {
        "type": "reading",
        "device_id": outcome.device_id,
        "timestamp": iso(outcome.ts),
        "ok": outcome.ok,
        "latency_ms": round(outcome.latency_ms, 3),
        "attempts": outcome.attempts,
    }
    if outcome.ok:
        record["values"] = values_of(outcome)
    else:
        record["error"] = outcome.error
        record["error_kind"] = outcome.error_kind
    return record
