"""Live outputs: what the collector's latest readings fan out to — the dashboard and JSON API,
/metrics, MQTT, webhook, file, stdout, Pub/Sub and InfluxDB outputs, and alerts.
`build_sinks(config, state)` gives the collector its list of sinks; each takes outcomes through
a non-blocking `offer`.

The live floor runs inside the collector's process but sits below it: the CLI hands these
sinks to the collector, which sees only the `sinks.OutcomeSink` protocol, and the collector's
state reaches them through the `state.CollectorView` protocol. It may import catalog (what a
metric means), config, readings and sinks; never collector, defs, simulators or dagster.

Outputs that bring their own client stack (MQTT's paho, InfluxDB's line protocol) are imported
only when configured: every module loaded here stays resident in the 24/7 collector.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from energy_pipeline.catalog import DeviceMeaning, build_catalog
from energy_pipeline.config import Config
from energy_pipeline.live.alerts import AlertEngine, AlertSink, DiskWatch, site_rules
from energy_pipeline.live.api import LiveApi
from energy_pipeline.live.filesink import FileSink
from energy_pipeline.live.hems import HemsRecords
from energy_pipeline.live.history import History
from energy_pipeline.live.http import HttpServer
from energy_pipeline.live.metrics import MetricsSink
from energy_pipeline.live.pubsub import PubsubSink
from energy_pipeline.live.state import CollectorView
from energy_pipeline.live.stdout import StdoutSink
from energy_pipeline.live.store import LatestStore
from energy_pipeline.live.webhook import WebhookSink
from energy_pipeline.sinks import OutcomeSink

if TYPE_CHECKING:
    from energy_pipeline.live.influxdb import InfluxSink
    from energy_pipeline.live.mqtt import MqttSink

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class LiveOutputs:
    store: LatestStore
    alerts: AlertSink
    metrics: MetricsSink
    http: HttpServer | None = None
    mqtt: MqttSink | None = None
    webhook: WebhookSink | None = None
    file: FileSink | None = None
    stdout: StdoutSink | None = None
    pubsub: PubsubSink | None = None
    influxdb: InfluxSink | None = None
    sinks: list[OutcomeSink] = field(default_factory=list)

    def figures(self) -> dict[str, dict[str, Any]]:
        """Per queued output: what its queue dropped, and the InfluxDB output's delivery state
        (for /metrics and the status file)."""
        out: dict[str, dict[str, Any]] = {}
        queued = (
            ("mqtt", self.mqtt),
            ("webhook", self.webhook),
            ("file", self.file),
            ("stdout", self.stdout),
            ("pubsub", self.pubsub),
        )
        for name, sink in queued:
            if sink is not None:
                out[name] = {"dropped": sink.queue.dropped}
        if self.influxdb is not None:
            out["influxdb"] = self.influxdb.figures()
        return out


def _chart(config: Config, meta: dict[str, DeviceMeaning], limit: int = 6) -> list[tuple[str, str]]:
    """The configured chart list, else the first published gauges of each device."""
    http = config.outputs.http
    if http and http.chart:
        return [tuple(c.split(".", 1)) for c in http.chart]  # type: ignore[misc]
    chosen: list[tuple[str, str]] = []
    for device, m in meta.items():
        for metric in m.published():
            if m.metric(metric).kind == "gauge" and len(chosen) < limit:
                chosen.append((device, metric))
                break
    return chosen


def build_outputs(config: Config, state: CollectorView, clock: Clock = utc_now) -> LiveOutputs:
    out = config.outputs
    catalog = build_catalog(config)
    meta = catalog.devices
    history = (out.http.history_minutes if out.http else 60) * 60.0
    store = LatestStore(meta, _chart(config, meta), history, clock)
    engine = AlertEngine(site_rules(config, meta), clock(), DiskWatch(config.alerts.disk))
    alerts = AlertSink(engine, clock, disk=lambda: (state.disk_free_bytes, state.disk_total_bytes))
    live = LiveOutputs(store, alerts, MetricsSink(store, state, alerts.engine, lambda: {}))
    live.metrics.outputs = live.figures
    state.output_figures = live.figures
    sinks: list[OutcomeSink] = [store, live.metrics]
    hems = HemsRecords(meta)
    if out.mqtt is not None:
        from energy_pipeline.live.mqtt import MqttSink

        live.mqtt = MqttSink(out.mqtt, config, meta)
        alerts.listeners.append(live.mqtt.offer_alert)
        sinks.append(live.mqtt)
    if out.webhook is not None:
        live.webhook = WebhookSink(out.webhook, config.site.name, clock, hems)
        alerts.listeners.append(live.webhook.offer_alert)
        sinks.append(live.webhook)
    if out.file is not None:
        folder = config.resolve(out.file.path)
        live.file = FileSink(out.file, folder, config.site.timezone, hems)
        sinks.append(live.file)
    if out.stdout is not None:
        live.stdout = StdoutSink(out.stdout, hems)
        sinks.append(live.stdout)
    if out.pubsub is not None:
        live.pubsub = PubsubSink(out.pubsub, config.site.name, hems)
        sinks.append(live.pubsub)
    if out.influxdb is not None:
        from energy_pipeline.live.influxdb import InfluxSink, point_encoder

        live.influxdb = InfluxSink(out.influxdb, point_encoder(config, out.influxdb, meta))
        sinks.append(live.influxdb)
    sinks.append(alerts)  # after the outputs, so an alert follows the reading that raised it
    if out.http is not None:
        api = LiveApi(store, state, alerts, catalog.intervals, out.http.cards)
        history = History(config.data_dir, meta, config.site.timezone)
        live.http = HttpServer(out.http, api, live.metrics, clock, history)
        sinks.append(live.http)
    live.sinks = sinks
    return live


def build_sinks(config: Config, state: CollectorView) -> list[OutcomeSink]:
    """The collector's entry point: the store first, then every configured output."""
    return build_outputs(config, state).sinks
