"""/metrics in Prometheus exposition. Readings are a few labelled families — every gauge in
`energy_reading{device,metric,unit}`, every counter in `energy_cumulative_total` — so a Luxtronik's
1,800 values are 1,800 series of one family, not 1,800 families. A profile point with
`aliases.prometheus` is also a plain gauge of that name (`ups_input_voltage{device}`), so the
UPS monitor's alerts and panels keep working. Poll figures are observed as outcomes arrive;
collector figures are read from its live state at scrape time."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from energy_pipeline.catalog import DeviceMeaning
from energy_pipeline.live.alerts import AlertEngine
from energy_pipeline.live.state import CollectorView
from energy_pipeline.live.store import LatestStore
from energy_pipeline.readings import PollOutcome

POLL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    text = repr(value)
    if text[-1] in "fn":  # inf, -inf, nan
        return {"inf": "+Inf", "-inf": "-Inf"}.get(text, "NaN")
    return text


@dataclass(frozen=True, slots=True)
class _Alias:
    index: int
    family: str
    help: str
    prefix: str
    values: dict[int, float] | None

    def line(self, value: float) -> str | None:
        if self.values is None:
            return self.prefix + _number(value)
        mapped = self.values.get(int(value))
        return None if mapped is None else self.prefix + _number(mapped)


class _DeviceLines:
    """One device's series prefixes (`name{labels} `), built once per names tuple: the
    per-scrape cost is then one string concatenation per value."""

    __slots__ = ("aliases", "counters", "gauges", "names")

    def __init__(self, device: str, names: tuple[str, ...], meta: DeviceMeaning | None):
        self.names = names
        self.gauges: list[tuple[int, str]] = []
        self.counters: list[tuple[int, str]] = []
        self.aliases: list[_Alias] = []
        dev = _escape(device)
        for i, name in enumerate(names):
            m = meta.metric(name) if meta else None
            unit = _escape(m.unit) if m else ""
            labels = f'{{device="{dev}",metric="{_escape(name)}",unit="{unit}"}} '
            if m is not None and m.kind == "counter":
                self.counters.append((i, f"energy_cumulative_total{labels}"))
            else:
                self.gauges.append((i, f"energy_reading{labels}"))
            if m is not None and m.prometheus is not None:
                family, values = m.prometheus
                help_text = m.display_name.replace("\\", "\\\\").replace("\n", "\\n")
                prefix = f'{family}{{device="{dev}"}} '
                self.aliases.append(_Alias(i, family, help_text, prefix, values))


class ReadingsText:
    """The readings families as exposition text, rendered at most once per collector tick."""

    def __init__(self, store: LatestStore):
        self.store = store
        self._lines: dict[str, _DeviceLines] = {}
        self._cached: tuple[int, str] | None = None

    def render(self) -> str:
        if self._cached is not None and self._cached[0] == self.store.version:
            return self._cached[1]
        gauges: list[str] = []
        counters: list[str] = []
        stamps: list[str] = []
        aliases: dict[str, list[str]] = {}
        for device, outcome in self.store.last_ok.items():
            sample = outcome.sample
            assert sample is not None
            lines = self._lines.get(device)
            if lines is None or lines.names is not sample.names:
                lines = _DeviceLines(device, sample.names, self.store.meta.get(device))
                self._lines[device] = lines
            values = sample.values.tolist()
            gauges += [p + _number(values[i]) for i, p in lines.gauges if values[i] == values[i]]
            counters += [
                p + _number(values[i]) for i, p in lines.counters if values[i] == values[i]
            ]
            for alias in lines.aliases:
                value = values[alias.index]
                line = alias.line(value) if value == value else None
                if line is not None:
                    family = aliases.setdefault(
                        alias.family,
                        [f"# HELP {alias.family} {alias.help}", f"# TYPE {alias.family} gauge"],
                    )
                    family.append(line)
            stamps.append(
                f'energy_reading_timestamp_seconds{{device="{_escape(device)}"}} '
                f"{outcome.ts.timestamp()!r}"
            )
        text = "\n".join(
            [
                "# HELP energy_reading Latest value of a device metric (gauges and states)",
                "# TYPE energy_reading gauge",
                *gauges,
                "# HELP energy_cumulative_total Latest value of a monotonic device counter",
                "# TYPE energy_cumulative_total counter",
                *counters,
                "# HELP energy_reading_timestamp_seconds Instant of the latest successful poll",
                "# TYPE energy_reading_timestamp_seconds gauge",
                *stamps,
                *(line for family in aliases.values() for line in family),
            ]
        )
        text += "\n"
        self._cached = (self.store.version, text)
        return text


class _CollectorFigures:
    """Figures read from the collector's live state at scrape time."""

    def __init__(self, sink: MetricsSink):
        self.sink = sink

    def collect(self) -> Iterator[Metric]:
        state = self.sink.state
        up = GaugeMetricFamily("energy_device_up", "1 if the device answers", labels=["device"])
        missed = CounterMetricFamily(
            "energy_missed_ticks", "Scheduled polls that could not start", labels=["device"]
        )
        for device, view in state.devices.items():
            up.add_metric([device], 1.0 if view.state == "up" else 0.0)
            missed.add_metric([device], view.missed_ticks)
        yield up
        yield missed
        yield from _tunnel_figures(state)
        yield GaugeMetricFamily(
            "energy_wal_backlog_bytes",
            "Bytes in the write-ahead log not yet sealed",
            state.wal_backlog_bytes,
        )
        yield GaugeMetricFamily(
            "energy_wal_backlog_rows",
            "Readings in the write-ahead log not yet sealed",
            state.wal_backlog_rows,
        )
        if state.disk_free_bytes is not None and state.disk_total_bytes:
            yield GaugeMetricFamily(
                "energy_disk_free_bytes",
                "Bytes an unprivileged writer may still use on the data directory's file system",
                state.disk_free_bytes,
            )
            yield GaugeMetricFamily(
                "energy_disk_free_ratio",
                "Free share (0..1) of the data directory's file system",
                state.disk_free_bytes / state.disk_total_bytes,
            )
        yield GaugeMetricFamily(
            "energy_collector_start_time_seconds",
            "Unix time the collector started",
            state.started_at.timestamp(),
        )
        dropped = CounterMetricFamily(
            "energy_output_dropped", "Items a full live-output queue dropped", labels=["output"]
        )
        written = CounterMetricFamily(
            "energy_output_written", "Points an output delivered", labels=["output"]
        )
        failing = GaugeMetricFamily(
            "energy_output_failing",
            "1 while an output's writes fail (retrying, or refused by the server)",
            labels=["output"],
        )
        for output, figures in self.sink.outputs().items():
            dropped.add_metric([output], figures["dropped"])
            if "state" in figures:
                written.add_metric([output], figures["written"])
                failing.add_metric([output], figures["state"] in ("retrying", "rejected"))
        yield dropped
        yield written
        yield failing
        alerts = GaugeMetricFamily(
            "energy_alerts_active", "Alerts currently raised", labels=["severity"]
        )
        severities = {"info": 0, "warning": 0, "critical": 0}
        for alert in self.sink.engine.active() if self.sink.engine else ():
            severities[alert["severity"]] += 1
        for severity, count in severities.items():
            alerts.add_metric([severity], count)
        yield alerts


def _tunnel_figures(state: CollectorView) -> Iterator[Metric]:
    up = GaugeMetricFamily("energy_vpn_up", "1 if the site tunnel is connected", labels=["tunnel"])
    received = CounterMetricFamily(
        "energy_vpn_received_bytes", "Bytes the tunnel received", labels=["tunnel"]
    )
    sent = CounterMetricFamily("energy_vpn_sent_bytes", "Bytes the tunnel sent", labels=["tunnel"])
    for name, tunnel in state.vpn.items():
        up.add_metric([name], 1.0 if tunnel.up else 0.0)
        received.add_metric([name], tunnel.bytes_in)
        sent.add_metric([name], tunnel.bytes_out)
    yield up
    yield received
    yield sent


class MetricsSink:
    def __init__(
        self,
        store: LatestStore,
        state: CollectorView,
        engine: AlertEngine | None,
        outputs: Callable[[], dict[str, dict[str, Any]]],
    ):
        self.store = store
        self.state = state
        self.engine = engine
        self.outputs = outputs
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
        self.registry.register(_CollectorFigures(self))  # type: ignore[arg-type]
        self.readings = ReadingsText(store)
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

    def render(self) -> bytes:
        """The whole exposition. Cheap enough for the event loop: the readings text is built
        once per tick from cached series prefixes; the rest is a few dozen samples."""
        return generate_latest(self.registry) + self.readings.render().encode()
