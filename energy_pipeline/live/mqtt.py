"""MQTT output: a JSON state message per device after each poll, availability with a last
will, Home Assistant discovery (device-level), and alert events. State messages carry values as
people read them (states by label, numbers at their metric's precision); discovery names each
sensor by its catalog description, with the classes Home Assistant needs (`enum` with options
for labelled states, `energy` + `total_increasing` for the Energy dashboard).

paho-mqtt runs its network loop in its own thread (connect, reconnect with backoff, keepalive),
so nothing here waits on the broker inside the event loop. Messages wait in a bounded
drop-oldest queue and are handed to paho only while connected and while fewer than
`MAX_OUTSTANDING` are unacknowledged — a broker that stalls fills our queue, whose size we
chose, never paho's unbounded one."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from energy_pipeline import __version__
from energy_pipeline.catalog import DeviceMeaning, MetricMeaning
from energy_pipeline.config import Config, MqttOutput
from energy_pipeline.live.alerts import AlertEvent
from energy_pipeline.live.queue import DropOldestQueue
from energy_pipeline.live.records import iso, shown_values
from energy_pipeline.readings import PollOutcome

log = logging.getLogger("energy_pipeline.mqtt")

MAX_OUTSTANDING = 20
ONLINE, OFFLINE = "online", "offline"

_POWER = {"W", "kW", "MW"}
_ENERGY = {"Wh", "kWh", "MWh"}
_UNIT_CLASSES = {
    "V": "voltage",
    "A": "current",
    "Hz": "frequency",
    "°C": "temperature",
    "VA": "apparent_power",
    "var": "reactive_power",
    "kvarh": "reactive_energy",
    "varh": "reactive_energy",
}


_POWER_FACTOR = re.compile(r"(^|_)(cos_phi|power_factor)(_|$)")


def ha_classes(name: str, meta: MetricMeaning) -> dict[str, Any]:
    """device_class/state_class so Home Assistant accepts the sensor — energy counters as
    `energy` + `total_increasing` in Wh/kWh/MWh, which its Energy dashboard requires; a
    labelled state as an `enum` whose options are its labels."""
    unit = meta.unit
    out: dict[str, Any] = {}
    if meta.kind == "state":
        if meta.labels:
            out["device_class"] = "enum"
            out["options"] = list(dict.fromkeys(meta.labels.values()))
        return out
    if unit:
        out["unit_of_measurement"] = unit
    out["suggested_display_precision"] = meta.decimals()
    if unit in _ENERGY:
        out["device_class"] = "energy"
        if meta.kind == "counter":
            out["state_class"] = "total_increasing"
        return out
    if meta.kind == "counter":
        out["state_class"] = "total_increasing"
        return out
    if unit in _POWER:
        out["device_class"] = "power"
    elif unit == "%" and "battery" in name:
        out["device_class"] = "battery"
    elif unit in _UNIT_CLASSES:
        out["device_class"] = _UNIT_CLASSES[unit]
    elif unit in ("", "%") and _POWER_FACTOR.search(name):
        out["device_class"] = "power_factor"
    out["state_class"] = "measurement"
    return out


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", text)


@dataclass(frozen=True, slots=True)
class _Message:
    topic: str
    payload: bytes | PollOutcome
    retain: bool = False


class MqttSink:
    def __init__(self, cfg: MqttOutput, config: Config, meta: dict[str, DeviceMeaning]):
        self.cfg = cfg
        self.meta = meta
        self.prefix = cfg.prefix.rstrip("/")
        self.site = config.site.name
        self.queue: DropOldestQueue[_Message] = DropOldestQueue(cfg.queue_size)
        self.published = 0
        self._availability: dict[str, str] = {}
        self._last_state: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self._unacked: set[int] = set()
        self._connected = False
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self.client = self._build_client(config)

    @property
    def status_topic(self) -> str:
        return f"{self.prefix}/status"

    @property
    def alerts_topic(self) -> str:
        return f"{self.prefix}/alerts"

    def state_topic(self, device: str) -> str:
        return f"{self.prefix}/{device}/state"

    def availability_topic(self, device: str) -> str:
        return f"{self.prefix}/{device}/availability"

    def discovery_topic(self, device: str) -> str:
        return f"{self.cfg.discovery_prefix}/device/{self._node(device)}/config"

    def _node(self, device: str) -> str:
        return _slug(f"{self.prefix}_{device}")

    def _build_client(self, config: Config) -> paho.Client:
        cfg = self.cfg
        client_id = cfg.client_id or _slug(f"energy_pipeline-{self.site}-{config.collector.id}")
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
        if cfg.username:
            password = cfg.password.get_secret_value() if cfg.password else None
            client.username_pw_set(cfg.username, password)
        if cfg.tls is not None:
            tls = cfg.tls

            def path(p: Any) -> str | None:
                return str(config.resolve(p)) if p else None

            client.tls_set(
                ca_certs=path(tls.ca_file), certfile=path(tls.cert_file), keyfile=path(tls.key_file)
            )
            client.tls_insecure_set(tls.insecure)
        client.will_set(self.status_topic, OFFLINE, qos=1, retain=True)
        client.reconnect_delay_set(cfg.reconnect_min, cfg.reconnect_max)  # type: ignore[arg-type]
        client.max_inflight_messages_set(MAX_OUTSTANDING)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        return client

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.client.connect_async(self.cfg.host, self.cfg.port, keepalive=self.cfg.keepalive)
        self.client.loop_start()
        self._task = asyncio.create_task(self._drain(), name="mqtt-publish")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._connected:
            info = self.client.publish(self.status_topic, OFFLINE, qos=1, retain=True)
            await asyncio.to_thread(info.wait_for_publish, 2.0)
        self.client.disconnect()
        await asyncio.to_thread(self.client.loop_stop)

    def offer(self, outcomes: Sequence[PollOutcome]) -> None:
        for outcome in outcomes:
            device = outcome.device_id
            available = ONLINE if outcome.ok else OFFLINE
            if self._availability.get(device) != available:
                with self._lock:
                    self._availability[device] = available
                self.queue.put(_Message(self.availability_topic(device), available.encode(), True))
            if outcome.ok:
                self.queue.put(_Message(self.state_topic(device), outcome))

    def offer_alert(self, event: AlertEvent) -> None:
        self.queue.put(_Message(self.alerts_topic, json.dumps(event.to_json()).encode()))

    def state_payload(self, outcome: PollOutcome) -> bytes:
        meta = self.meta.get(outcome.device_id)
        doc: dict[str, Any] = {"timestamp": iso(outcome.ts), **shown_values(outcome, meta)}
        return json.dumps(doc, separators=(",", ":")).encode()

    def discovery_payload(self, device: str) -> dict[str, Any]:
        meta = self.meta[device]
        node = self._node(device)
        chosen = self.cfg.publish.get(device) or meta.published()
        components: dict[str, Any] = {}
        for metric in chosen:
            m = meta.metric(metric)
            components[f"{device}_{metric}"] = {
                "p": "sensor",
                "name": m.display_name,
                "unique_id": f"{node}_{metric}",
                "value_template": "{{ value_json." + metric + " }}",
                **ha_classes(metric, m),
            }
        return {
            "dev": {
                "ids": [node],
                "name": meta.name,
                "mf": meta.manufacturer,
                "mdl": meta.model,
            },
            "o": {"name": "energy_pipeline", "sw": __version__},
            "state_topic": self.state_topic(device),
            "availability": [
                {"topic": self.status_topic},
                {"topic": self.availability_topic(device)},
            ],
            "availability_mode": "all",
            "qos": self.cfg.qos,
            "cmps": components,
        }

    async def _drain(self) -> None:
        while True:
            while not (self._connected and len(self._unacked) < MAX_OUTSTANDING):
                self._wake.clear()
                await self._wake.wait()
            room = MAX_OUTSTANDING - len(self._unacked)
            for msg in await self.queue.get_batch(room):
                payload = msg.payload
                if isinstance(payload, PollOutcome):
                    device = payload.device_id
                    payload = self.state_payload(payload)
                    with self._lock:
                        self._last_state[device] = payload
                    await asyncio.sleep(0)  # one state message per loop step
                qos = self.cfg.qos
                info = self.client.publish(msg.topic, payload, qos=qos, retain=msg.retain)
                kept = info.rc == paho.MQTT_ERR_NO_CONN and qos > 0  # paho resends on reconnect
                if info.rc != paho.MQTT_ERR_SUCCESS and not kept:
                    self.queue.put_front([_Message(msg.topic, payload, msg.retain)])
                    break
                self._unacked.add(info.mid)

    # paho's thread calls these; they touch the loop only through call_soon_threadsafe.
    def _signal(self, connected: bool | None = None, acked: int | None = None) -> None:
        def apply() -> None:
            if connected is not None:
                self._connected = connected
                if not connected:
                    self._unacked.clear()
            if acked is not None and acked in self._unacked:
                self._unacked.discard(acked)
                self.published += 1
            self._wake.set()

        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(apply)

    def _on_connect(self, client: paho.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            log.warning(f"mqtt broker refused the connection: {reason}")
            return
        log.info(f"mqtt connected to {self.cfg.host}:{self.cfg.port}")
        client.publish(self.status_topic, ONLINE, qos=1, retain=True)
        if self.cfg.discovery:
            client.subscribe(f"{self.cfg.discovery_prefix}/status", qos=1)
            self._publish_discovery(client)
        with self._lock:
            availability = list(self._availability.items())
        for device, value in availability:
            client.publish(self.availability_topic(device), value, qos=1, retain=True)
        self._signal(connected=True)

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        log.warning(f"mqtt disconnected ({reason}); reconnecting with backoff")
        self._signal(connected=False)

    def _on_publish(self, _c: Any, _u: Any, mid: int, _r: Any, _p: Any) -> None:
        self._signal(acked=mid)

    def _on_message(self, client: paho.Client, _u: Any, msg: paho.MQTTMessage) -> None:
        if msg.topic == f"{self.cfg.discovery_prefix}/status" and msg.payload == b"online":
            log.info("home assistant came online: republishing discovery")
            self._publish_discovery(client)
            with self._lock:
                states = list(self._last_state.items())
            for device, payload in states:
                client.publish(self.state_topic(device), payload, qos=self.cfg.qos)

    def _publish_discovery(self, client: paho.Client) -> None:
        for device in self.meta:
            payload = json.dumps(self.discovery_payload(device), separators=(",", ":"))
            client.publish(self.discovery_topic(device), payload, qos=1, retain=True)
