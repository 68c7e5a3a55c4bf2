"""/metrics in Prometheus exposition. Readings are a few labelled families — every gauge in
`energy_reading{device,metric,unit}`, every counter in `energy_cumulative_total` — so a Luxtronik's
1,800 values are 1,800 series of one family, not 1,800 families. Poll figures are observed as
outcomes arrive; collector figures are read from its live state at scrape time."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from energy_pipeline.live.alerts import AlertEngine
from energy_pipeline.live.meta import DeviceMeta
from energy_pipeline.live.state import CollectorView
from energy_pipeline.live.store import LatestStore
from energy_pipeline.readings import PollOutcome

POLL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass(frozen=True)
class _Snapshot:
    """What a scrape reads, taken on the event loop so rendering can run in a thread."""

    readings: list[tuple[str, PollOutcome]]
    meta: dict[str, DeviceMeta]
    states: list[tuple[str, str, int]]
    wal_bytes: int
    wal_rows: int
    started: float
    dropped: dict[str, int]
    alerts: dict[str, int]


class _Families:
    def __init__(self, snap: _Snapshot):
        self.snap = snap

    def collect(self) -> Iterator[Metric]:
        s = self.snap
        gauges = GaugeMetricFamily(
            "energy_reading",
            "Latest value of a device metric (gauges and states)",
            labels=["device", "metric", "unit"],
        )
        counters = CounterMetricFamily(
            "energy_cumulative",
            "Latest value of a monotonic device counter (energy and the like)",
            labels=["device", "metric", "unit"],
        )
        stamps = GaugeMetricFamily(
            "energy_reading_timestamp_seconds",
            "Instant of the latest successful poll",
            labels=["device"],
        )
        for device, outcome in s.readings:
            sample = outcome.sample
            assert sample is not None
            meta = s.meta.get(device)
            for name, value in zip(sample.names, sample.values.tolist(), strict=True):
                if value != value:
                    continue
                m = meta.metric(name) if meta else None
                unit = m.unit if m else ""
                family = counters if m is not None and m.kind == "counter" else gauges
                family.add_metric([device, name, unit], value)
            stamps.add_metric([device], outcome.ts.timestamp())
        yield gauges
        yield counters
        yield stamps

        up = GaugeMetricFamily("energy_device_up", "1 if the device answers", labels=["device"])
        missed = CounterMetricFamily(
            "energy_missed_ticks", "Scheduled polls that could not start", labels=["device"]
        )
        for device, state, missed_ticks in s.states:
            up.add_metric([device], 1.0 if state == "up" else 0.0)
            missed.add_metric([device], missed_ticks)
        yield up
        yield missed
        yield GaugeMetricFamily(
            "energy_wal_backlog_bytes", "Bytes in the write-ahead log not yet sealed", s.wal_bytes
        )
        yield GaugeMetricFamily(
            "energy_wal_backlog_rows", "Readings in the write-ahead log not yet sealed", s.wal_rows
        )
        yield GaugeMetricFamily(
            "energy_collector_start_time_seconds", "Unix time the collector started", s.started
        )
        dropped = CounterMetricFamily(
            "energy_output_dropped", "Items a full live-output queue dropped", labels=["output"]
        )
        for output, count in s.dropped.items():
            dropped.add_metric([output], count)
        yield dropped
        alerts = GaugeMetricFamily(
            "energy_alerts_active", "Alerts currently raised", labels=["severity"]
        )
        for severity, count in s.alerts.items():
            alerts.add_metric([severity], count)
        yield alerts


class MetricsSink:
    def __init__(
        self,
        store: LatestStore,
        state: CollectorView,
        engine: AlertEngine | None,
        dropped: Callable[[], dict[str, int]],
    ):
        self.store = store
        self.state = state
        self.engine = engine
        self.dropped = dropped
        self.registry = CollectorRegistry(auto_describe=False)
        self._duration = Histogram(
            "energy_poll_duration_seconds",
            "Time one poll of a device took, retries included",
            ["device"],
            buckets=POLL_BUCKETS,
            registry=self.registry,
        )
        self._polls = Counter(
            "energy_polls", "Polls finished", ["device", "result"], registry=self.registry
        )
        self._errors = Counter(
            "energy_poll_errors",
            "Failed polls by error kind",
            ["device", "kind"],
            registry=self.registry,
        )
        for device in store.meta:
            self._duration.labels(device)
            self._polls.labels(device, "ok")
            self._polls.labels(device, "error")

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def offer(self, outcomes: Sequence[PollOutcome]) -> None:
        for o in outcomes:
            self._duration.labels(o.device_id).observe(o.latency_ms / 1000.0)
            if o.ok:
                self._polls.labels(o.device_id, "ok").inc()
            else:
                self._polls.labels(o.device_id, "error").inc()
                self._errors.labels(o.device_id, o.error_kind or "error").inc()

    def snapshot(self) -> _Snapshot:
        severities = {"info": 0, "warning": 0, "critical": 0}
        for alert in self.engine.active() if self.engine else ():
            severities[alert["severity"]] += 1
        return _Snapshot(
            readings=list(self.store.last_ok.items()),
            meta=self.store.meta,
            states=[(d, v.state, v.missed_ticks) for d, v in self.state.devices.items()],
            wal_bytes=self.state.wal_backlog_bytes,
            wal_rows=self.state.wal_backlog_rows,
            started=self.state.started_at.timestamp(),
            dropped=self.dropped(),
            alerts=severities,
        )

    async def render(self) -> bytes:
        """Exposition text; formatting 1,800 values takes milliseconds, so it runs off-loop."""
        snap = self.snapshot()
        return await asyncio.to_thread(_render, self.registry, snap)


class _Both:
    def __init__(self, registry: CollectorRegistry, snap: _Snapshot):
        self.registry = registry
        self.families = _Families(snap)

    def collect(self) -> Iterator[Metric]:
        yield from self.registry.collect()
        yield from self.families.collect()


def _render(registry: CollectorRegistry, snap: _Snapshot) -> bytes:
    return generate_latest(_Both(registry, snap))  # type: ignore[arg-type]
