"""The JSON documents of the HTTP API, built from the latest values, the alert engine and the
collector's state. Pure reads: no I/O, so the routes stay thin and the shapes testable."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from energy_pipeline.catalog import DeviceMeaning, MetricMeaning
from energy_pipeline.live.alerts import AlertSink
from energy_pipeline.live.changes import ChangeFeed
from energy_pipeline.live.records import iso, shown_values, values_of
from energy_pipeline.live.state import CollectorView
from energy_pipeline.live.store import LatestStore
from energy_pipeline.readings import PollOutcome

HEALTHY_STATES = ("up",)
ON_LINE_LABELS = ("line", "online")
ON_BATTERY_LABELS = ("backup", "battery")
"""A UPS's work state: the profile's labels, or the UPS monitor's names for them."""
UPS_ROLES = ("load_percent", "load_power", "input_voltage", "output_voltage", "battery_voltage")
_LABEL_LIMIT = 40


def friendly(name: str, meaning: MetricMeaning) -> str:
    """A label for people: the profile's short description, else the display name. A
    description with a trailing register note, "(EPC E0)", loses the note."""
    text = meaning.description.strip()
    if text.endswith(")") and " (" in text:
        text = text[: text.rindex(" (")]
    if text and len(text) <= _LABEL_LIMIT and not text.split(" ")[0].islower():
        return text
    shown = (meaning.display_name or name.replace("_", " ")).removeprefix("ID WEB ")
    return shown[:1].upper() + shown[1:]


def ups_panel(meta: DeviceMeaning) -> dict[str, Any] | None:
    """The metrics of a UPS panel, found by meaning: a state metric whose labels name line
    power and battery power, and a battery level."""
    for name, m in meta.metrics.items():
        labels = set(m.labels.values())
        if m.kind == "state" and labels & set(ON_LINE_LABELS) and labels & set(ON_BATTERY_LABELS):
            if "battery_level" not in meta.metrics:
                return None
            roles = {r: r for r in UPS_ROLES if r in meta.metrics}
            return {
                "status": name,
                "battery": "battery_level",
                "on_line": list(ON_LINE_LABELS),
                "on_battery": list(ON_BATTERY_LABELS),
                **roles,
            }
    return None


class LiveApi:
    def __init__(
        self,
        store: LatestStore,
        state: CollectorView,
        alerts: AlertSink | None,
        intervals: dict[str, float],
        cards: dict[str, list[str]],
    ):
        self.store = store
        self.state = state
        self.alerts = alerts
        self.intervals = intervals
        self.cards = cards
        self._telemetry: tuple[int, bytes] | None = None
        self.changes = ChangeFeed()
        self._deltas: tuple[int, dict[tuple[int, bool], bytes]] = (-1, {})

    def uptime(self, now: datetime) -> float:
        return round((now - self.state.started_at).total_seconds(), 3)

    def device_state(self, device: str) -> str:
        view = self.state.devices.get(device)
        if view is not None:
            return view.state
        latest = self.store.latest.get(device)
        if latest is None:
            return "starting"
        return "up" if latest.ok else "down"

    def _alarms(self, device: str | None = None) -> list[dict[str, Any]]:
        active = self.alerts.engine.active() if self.alerts else []
        return [a for a in active if device is None or a["device_id"] == device]

    def devices(self) -> list[dict[str, Any]]:
        out = []
        for device, meta in self.store.meta.items():
            latest = self.store.latest.get(device)
            last_ok = self.store.last_ok.get(device)
            cards = self._card_metrics(device, last_ok)
            out.append(
                {
                    "device_id": device,
                    "name": meta.name,
                    "driver": meta.driver,
                    "manufacturer": meta.manufacturer,
                    "model": meta.model,
                    "interval": self.intervals.get(device),
                    "state": self.device_state(device),
                    "last_poll": iso(latest.ts) if latest else None,
                    "last_ok": iso(last_ok.ts) if last_ok else None,
                    "consecutive_failures": self.store.failures.get(device, 0),
                    "last_error": latest.error if latest and not latest.ok else None,
                    "cards": cards,
                    "units": {name: meta.metric(name).unit for name in cards},
                    "labels": {
                        name: meta.metric(name).labels for name in cards if meta.metric(name).labels
                    },
                    "names": {name: friendly(name, meta.metric(name)) for name in cards},
                    "descriptions": {name: meta.metric(name).description for name in cards},
                    "kinds": {name: meta.metric(name).kind for name in cards},
                    "ups": ups_panel(meta),
                }
            )
        return out

    def _card_metrics(self, device: str, last_ok: PollOutcome | None) -> list[str]:
        chosen = self.cards.get(device) or self.store.meta[device].published()
        if chosen:
            return chosen
        if last_ok is not None and last_ok.sample is not None:
            return list(last_ok.sample.names[:8])
        return []

    def device_telemetry(self, device: str, now: datetime) -> dict[str, Any]:
        """The UPS monitor's flat shape: values at the top level beside timestamp, status,
        uptime and alarms. A state metric with labels shows its label (online, battery)."""
        last_ok = self.store.last_ok.get(device)
        doc: dict[str, Any] = {"device_id": device}
        if last_ok is not None:
            doc.update(shown_values(last_ok, self.store.meta[device]))
        doc["timestamp"] = iso(last_ok.ts) if last_ok else None
        doc["health"] = self.device_state(device)
        doc["uptime"] = self.uptime(now)
        doc["alarms"] = self._alarms(device)
        return doc

    def _snapshot(self) -> dict[str, tuple[str | None, str, dict[str, float]]]:
        out = {}
        for device in self.store.meta:
            last_ok = self.store.last_ok.get(device)
            out[device] = (
                iso(last_ok.ts) if last_ok else None,
                self.device_state(device),
                values_of(last_ok) if last_ok else {},
            )
        return out

    def telemetry_since(self, since: int, cards: bool) -> bytes:
        """The values changed after `since` (see ChangeFeed); with `cards`, only the metrics
        the dashboard's cards show. Bodies are kept per tick and (since, cards)."""
        version = self.store.version
        if self._deltas[0] != version:
            self.changes.update(version, self._snapshot())
            self._deltas = (version, {})
        bodies = self._deltas[1]
        body = bodies.get((since, cards))
        if body is None:
            chosen = None
            if cards:
                chosen = {
                    d: self._card_metrics(d, self.store.last_ok.get(d)) for d in self.store.meta
                }
            doc = self.changes.since(since, chosen)
            body = json.dumps(doc, separators=(",", ":")).encode()
            if len(bodies) < 64:
                bodies[(since, cards)] = body
        return body

    def telemetry(self, now: datetime) -> bytes:
        """All devices' latest values. Serialised once per collector tick and reused, since a
        dashboard and scrapers ask far more often than values change."""
        cached = self._telemetry
        if cached is not None and cached[0] == self.store.version:
            return cached[1]
        devices = {
            device: {"timestamp": ts, "state": state, "values": values}
            for device, (ts, state, values) in self._snapshot().items()
        }
        body = json.dumps(
            {"generated_at": iso(now), "devices": devices}, separators=(",", ":")
        ).encode()
        self._telemetry = (self.store.version, body)
        return body

    def alerts_doc(self) -> dict[str, Any]:
        recent: Sequence[Any] = self.alerts.recent if self.alerts else ()
        return {
            "active": self._alarms(),
            "recent": [e.to_json() for e in reversed(recent)],
        }

    def health(self, now: datetime) -> tuple[int, dict[str, Any]]:
        """200 while polling goes on and some device answers; 503 when the collector has not
        ticked for three of its shortest intervals, or no device answers."""
        states = {d: self.device_state(d) for d in self.store.meta}
        shortest = min(self.intervals.values(), default=60.0)
        grace = max(3 * shortest, 10.0)
        last = self.store.last_offer
        if last is None:
            status = "starting" if self.uptime(now) < grace else "stalled"
        elif (now - last).total_seconds() > grace:
            status = "stalled"
        elif states and not any(s in HEALTHY_STATES for s in states.values()):
            status = "down"
        elif any(s not in HEALTHY_STATES for s in states.values()):
            status = "degraded"
        else:
            status = "ok"
        code = 200 if status in ("ok", "degraded") else 503
        return code, {
            "status": status,
            "uptime": self.uptime(now),
            "timestamp": iso(now),
            "last_poll": iso(last) if last else None,
            "devices": states,
            "vpn": {name: t.state for name, t in self.state.vpn.items()},
            "disk": self._disk(),
        }

    def _disk(self) -> dict[str, Any] | None:
        """Free space of the data directory; `low` says why the built-in alert is raised."""
        free, total = self.state.disk_free_bytes, self.state.disk_total_bytes
        if free is None or not total:
            return None
        watch = self.alerts.engine.disk if self.alerts else None
        return {
            "free_bytes": free,
            "total_bytes": total,
            "free_ratio": round(free / total, 6),
            "low": watch.reason if watch is not None and watch.active else None,
        }
