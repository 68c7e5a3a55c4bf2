"""Alert rules: pure evaluation (`AlertEngine`, every instant passed in) apart from the sink
that feeds it poll outcomes and a periodic tick from an injectable clock.

A threshold rule raises once its condition has held for `for_seconds` and clears only when the
value is past the `clear` threshold (hysteresis), so a value hovering at the limit raises once,
not every poll. Stale rules raise when a device has not answered for `after` seconds;
device-down rules after `failures` failed polls in a row. Every transition is one event.
Built in: the data directory's free space against `alerts.disk` (source `data_dir`)."""

from __future__ import annotations

import asyncio
import logging
import operator
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from energy_pipeline.catalog import DeviceMeaning
from energy_pipeline.config import AlertRule, Config, DiskAlert
from energy_pipeline.lake.disk import DiskSpace, human_bytes, low_space
from energy_pipeline.live.records import iso
from energy_pipeline.readings import PollOutcome

log = logging.getLogger("energy_pipeline.alerts")

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}
Listener = Callable[["AlertEvent"], None]
DiskReading = Callable[[], tuple[int | None, int | None]]
"""(free bytes, total bytes) of the data directory as the collector last measured them."""
DISK_SOURCE = "data_dir"
DISK_RULE = "disk free space"


@dataclass(frozen=True)
class AlertEvent:
    device_id: str
    rule: str
    kind: str
    state: Literal["raised", "cleared"]
    severity: str
    at: datetime
    message: str
    metric: str | None = None
    value: float | None = None
    threshold: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "alert",
            "device_id": self.device_id,
            "rule": self.rule,
            "kind": self.kind,
            "state": self.state,
            "severity": self.severity,
            "timestamp": iso(self.at),
            "message": self.message,
            "metric": self.metric,
            "value": self.value,
            "threshold": self.threshold,
        }


@dataclass
class _Tracker:
    """One rule applied to one device, and where it stands."""

    rule: AlertRule
    device_id: str
    name: str
    active: bool = False
    since: datetime | None = None
    pending_since: datetime | None = None
    value: float | None = None
    failures: int = 0
    last_ok: datetime | None = None
    _names: tuple[str, ...] | None = field(default=None, repr=False)
    _index: int | None = field(default=None, repr=False)

    def metric_value(self, outcome: PollOutcome) -> float | None:
        sample = outcome.sample
        if sample is None:
            return None
        if sample.names is not self._names:
            self._names = sample.names
            metric = self.rule.metric
            self._index = sample.names.index(metric) if metric in sample.names else None
        if self._index is None:
            return None
        value = float(sample.values[self._index])
        return value if value == value else None


def rule_name(rule: AlertRule) -> str:
    if rule.kind == "threshold":
        return f"{rule.metric} {rule.op} {rule.threshold:g}"
    return "stale" if rule.kind == "stale" else "down"


def site_rules(config: Config, meta: dict[str, DeviceMeaning]) -> list[tuple[str, AlertRule]]:
    """(device id, rule) for every device: config rules (`*` expanded), then the profile's
    defaults for metrics the config does not cover itself."""
    pairs: list[tuple[str, AlertRule]] = []
    for rule in config.alerts.rules:
        devices = list(meta) if rule.device == "*" else [rule.device]
        pairs += [(d, rule) for d in devices]
    if config.alerts.profile_defaults:
        covered = {(d, r.metric) for d, r in pairs if r.kind == "threshold"}
        for device_id, m in meta.items():
            for default in m.alert_defaults:
                if (device_id, default.metric) in covered:
                    continue
                rule = AlertRule(device=device_id, **default.model_dump())
                pairs.append((device_id, rule))
    return pairs


@dataclass
class DiskWatch:
    """The built-in low-space alert: raised below either threshold, cleared a margin above."""

    limits: DiskAlert
    severity: Literal["info", "warning", "critical"] = "critical"
    active: bool = False
    since: datetime | None = None
    free_bytes: int | None = None
    reason: str | None = None

    def observe(self, free: int, total: int, now: datetime) -> list[AlertEvent]:
        self.free_bytes = free
        space = DiskSpace(free, total)
        reason = low_space(
            space, self.limits.min_free_percent, self.limits.min_free_gb, was_low=self.active
        )
        if (reason is not None) == self.active:
            if reason is not None:
                self.reason = reason
            return []
        self.active, self.since = reason is not None, now if reason is not None else None
        self.reason = reason
        detail = reason or f"{human_bytes(free)} free ({space.free_ratio:.1%}) again"
        return [
            AlertEvent(
                device_id=DISK_SOURCE,
                rule=DISK_RULE,
                kind="disk",
                state="raised" if self.active else "cleared",
                severity=self.severity,
                at=now,
                message=detail,
                metric="disk_free_bytes",
                value=float(free),
            )
        ]

    def active_doc(self) -> dict[str, Any]:
        return {
            "device_id": DISK_SOURCE,
            "rule": DISK_RULE,
            "kind": "disk",
            "severity": self.severity,
            "since": iso(self.since) if self.since else None,
            "metric": "disk_free_bytes",
            "value": self.free_bytes,
            "threshold": None,
            "message": self.reason or DISK_RULE,
        }


class AlertEngine:
    def __init__(
        self,
        rules: Iterable[tuple[str, AlertRule]],
        started: datetime,
        disk: DiskWatch | None = None,
    ):
        self.disk = disk
        self._by_device: dict[str, list[_Tracker]] = {}
        self._all: list[_Tracker] = []
        for device_id, rule in rules:
            tracker = _Tracker(rule, device_id, rule_name(rule), last_ok=started)
            self._by_device.setdefault(device_id, []).append(tracker)
            self._all.append(tracker)

    def observe(self, outcome: PollOutcome, now: datetime) -> list[AlertEvent]:
        events: list[AlertEvent] = []
        for t in self._by_device.get(outcome.device_id, ()):
            kind = t.rule.kind
            if kind == "threshold":
                value = t.metric_value(outcome)
                if value is not None:
                    t.value = value
                    self._threshold(t, value, now, events)
            elif kind == "stale":
                if outcome.ok:
                    t.last_ok = now
                    if t.active:
                        self._clear(t, now, events, "answering again")
            elif outcome.ok:
                t.failures = 0
                if t.active:
                    self._clear(t, now, events, "answering again")
            else:
                t.failures += 1
                if not t.active and t.failures >= t.rule.failures:
                    self._raise(t, now, events, f"{t.failures} polls failed in a row")
        return events

    def evaluate(self, now: datetime) -> list[AlertEvent]:
        """Time-driven transitions between polls: for-durations running out, stale data."""
        events: list[AlertEvent] = []
        for t in self._all:
            rule = t.rule
            if rule.kind == "threshold" and not t.active and t.pending_since is not None:
                if (now - t.pending_since).total_seconds() >= rule.for_seconds:
                    self._raise(t, now, events, self._threshold_text(t))
            elif rule.kind == "stale" and not t.active and t.last_ok is not None:
                silent = (now - t.last_ok).total_seconds()
                if rule.after is not None and silent >= rule.after:
                    self._raise(t, now, events, f"no reading for {silent:.0f} s")
        return events

    def observe_disk(self, free: int | None, total: int | None, now: datetime) -> list[AlertEvent]:
        if self.disk is None or free is None or total is None:
            return []
        return self.disk.observe(free, total, now)

    def active(self) -> list[dict[str, Any]]:
        disk = [self.disk.active_doc()] if self.disk is not None and self.disk.active else []
        return disk + [
            {
                "device_id": t.device_id,
                "rule": t.name,
                "kind": t.rule.kind,
                "severity": t.rule.severity,
                "since": iso(t.since) if t.since else None,
                "metric": t.rule.metric,
                "value": t.value,
                "threshold": t.rule.threshold,
                "message": t.rule.message or t.name,
            }
            for t in self._all
            if t.active
        ]

    def _threshold(
        self, t: _Tracker, value: float, now: datetime, events: list[AlertEvent]
    ) -> None:
        rule = t.rule
        assert rule.op is not None and rule.threshold is not None
        compare = _OPS[rule.op]
        if t.active:
            limit = rule.clear if rule.clear is not None else rule.threshold
            if not compare(value, limit):
                self._clear(t, now, events, f"{rule.metric} = {value:g}")
            return
        if not compare(value, rule.threshold):
            t.pending_since = None
            return
        if t.pending_since is None:
            t.pending_since = now
        if (now - t.pending_since).total_seconds() >= rule.for_seconds:
            self._raise(t, now, events, self._threshold_text(t))

    @staticmethod
    def _threshold_text(t: _Tracker) -> str:
        return f"{t.rule.metric} = {t.value:g} ({t.name})"

    def _raise(self, t: _Tracker, now: datetime, events: list[AlertEvent], detail: str) -> None:
        t.active, t.since, t.pending_since = True, now, None
        events.append(self._event(t, "raised", now, detail))

    def _clear(self, t: _Tracker, now: datetime, events: list[AlertEvent], detail: str) -> None:
        t.active, t.since, t.pending_since = False, None, None
        events.append(self._event(t, "cleared", now, detail))

    @staticmethod
    def _event(
        t: _Tracker, state: Literal["raised", "cleared"], now: datetime, detail: str
    ) -> AlertEvent:
        text = f"{t.rule.message}: {detail}" if t.rule.message else detail
        return AlertEvent(
            device_id=t.device_id,
            rule=t.name,
            kind=t.rule.kind,
            state=state,
            severity=t.rule.severity,
            at=now,
            message=text,
            metric=t.rule.metric,
            value=t.value if t.rule.kind == "threshold" else None,
            threshold=t.rule.threshold,
        )


class AlertSink:
    """Feeds the engine from the collector and a periodic tick; hands each event once to every
    listener (log, API/dashboard history, MQTT, webhook)."""

    def __init__(
        self,
        engine: AlertEngine,
        clock: Callable[[], datetime],
        listeners: Sequence[Listener] = (),
        tick_seconds: float = 1.0,
        history: int = 200,
        disk: DiskReading | None = None,
    ):
        self.engine = engine
        self.disk = disk
        self.clock = clock
        self.listeners: list[Listener] = [_log_event, *listeners]
        self.recent: deque[AlertEvent] = deque(maxlen=history)
        self._tick = tick_seconds
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="alerts-tick")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def offer(self, outcomes: Sequence[PollOutcome]) -> None:
        now = self.clock()
        events: list[AlertEvent] = []
        for outcome in outcomes:
            events += self.engine.observe(outcome, now)
        self._dispatch(events)

    def tick(self) -> None:
        now = self.clock()
        events = self.engine.evaluate(now)
        if self.disk is not None:
            events += self.engine.observe_disk(*self.disk(), now)
        self._dispatch(events)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._tick)
            self.tick()

    def _dispatch(self, events: list[AlertEvent]) -> None:
        for event in events:
            self.recent.append(event)
            for listener in self.listeners:
                try:
                    listener(event)
                except Exception:
                    log.exception("alert listener failed", extra={"fields": {"rule": event.rule}})


def _log_event(event: AlertEvent) -> None:
    level = logging.WARNING if event.state == "raised" else logging.INFO
    log.log(
        level,
        f"alert {event.state}: {event.device_id} {event.rule}",
        extra={"fields": {"severity": event.severity, "message": event.message}},
    )
