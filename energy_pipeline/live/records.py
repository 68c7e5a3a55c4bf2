"""The JSON forms of a poll outcome shared by the API, MQTT, webhook and file outputs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

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
