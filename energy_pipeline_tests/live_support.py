"""Helpers for the live-output tests: a site with a profile that publishes, alerts and counts,
hand-made poll outcomes, a settable clock, and a mosquitto broker on a free loopback port."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from energy_pipeline.config import Config, load_config
from energy_pipeline.live import LiveOutputs, build_outputs
from energy_pipeline.live.state import StandaloneState
from energy_pipeline.readings import PollOutcome, Sample
from energy_pipeline_tests.kit.ports import free_port, wait_port
from energy_pipeline_tests.kit.sims import python, simulators
from energy_pipeline_tests.kit.sites import write_site

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

UPS_PROFILE = """\
manufacturer: MUST
model: EP20 test
points:
  - {name: input_voltage, address: 0, unit: V, scale: 0.1, publish: true,
     description: Grid (input) voltage}
  - {name: battery_level, address: 1, unit: "%", publish: true}
  - {name: load_power, address: 2, unit: W, publish: true}
  - {name: temperature, address: 3, unit: "°C"}
  - {name: energy_total, address: 4, data_type: uint32, unit: kWh, kind: counter, publish: true}
  - {name: status, address: 6, kind: state, labels: {0: online, 1: battery}, publish: true}
alerts:
  - {metric: battery_level, op: "<", threshold: 20, clear: 25, severity: critical}
  - {metric: status, op: "==", threshold: 1, message: on battery}
"""

NAMES = (
    "input_voltage",
    "battery_level",
    "load_power",
    "temperature",
    "energy_total",
    "status",
)


class Clock:
    def __init__(self, start: datetime = T0):
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


UPS_DEVICES = """\
  - id: ups1
    driver: modbus
    profile: ups.yaml
    connection: {transport: tcp, host: 127.0.0.1, port: 1502}
    interval: 1
    tags: {name: Server room UPS}
  - id: ups2
    driver: modbus
    profile: ups.yaml
    connection: {transport: tcp, host: 127.0.0.1, port: 1503}
    interval: 1
"""


def ups_site_file(tmp_path: Path, extra: str = "") -> Path:
    """Two UPSs on the publishing test profile; `extra` adds outputs/alerts sections."""
    return write_site(
        tmp_path,
        UPS_DEVICES,
        site={"name": "testsite", "timezone": "Europe/Berlin"},
        profiles={"ups.yaml": UPS_PROFILE},
        extra=extra,
    )


def ups_site(tmp_path: Path, extra: str = "") -> Config:
    return load_config(ups_site_file(tmp_path, extra))


def outputs_for(config: Config) -> tuple[LiveOutputs, Clock]:
    """The live outputs of a config, on a settable clock, before any sink starts."""
    clock = Clock()
    return build_outputs(config, StandaloneState(started_at=clock()), clock), clock


def ok(device: str, ts: datetime, **values: float) -> PollOutcome:
    """A successful poll; unspecified metrics get ordinary values."""
    base = {
        "input_voltage": 230.5,
        "battery_level": 87.0,
        "load_power": 412.0,
        "temperature": 31.5,
        "energy_total": 1234.5,
        "status": 0.0,
    }
    base.update(values)
    sample = Sample(NAMES, np.array([base[n] for n in NAMES], dtype=np.float64))
    return PollOutcome(device, ts, ts, ts + timedelta(milliseconds=12), 1, sample)


def failed(device: str, ts: datetime, kind: str = "timeout") -> PollOutcome:
    return PollOutcome(
        device, ts, ts, ts + timedelta(seconds=1), 3, None, f"{device}: no answer", kind
    )


async def until(predicate, timeout: float = 10.0) -> None:
    """Wait on the running loop until `predicate()` holds; TimeoutError past `timeout`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.02)


class Mosquitto:
    """A real broker on loopback, restartable on the same port."""

    def __init__(self, program: str, folder: Path):
        self.program = program
        self.port = free_port()
        self.conf = folder / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.program, "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_port(self.port)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(5)
            self.proc = None


async def http_raw(port: int, raw: bytes, head: bool = False) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes, read one response (the server closes or states Content-Length)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw)
        await writer.drain()
        start = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        lines = start.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {}
        for line in lines[1:]:
            if line:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
        if head:
            return status, headers, b""
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        return status, headers, body
    finally:
        writer.close()


async def http_get(
    port: int, path: str, headers: dict[str, str] | None = None, method: str = "GET"
) -> tuple[int, dict[str, str], bytes]:
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    raw = f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{extra}\r\n"
    return await http_raw(port, raw.encode("latin-1"), head=method == "HEAD")


class Subscriber:
    """A real MQTT client that records every message it sees under `#`; it reconnects and
    resubscribes by itself when the broker restarts."""

    def __init__(self, port: int):
        import threading

        import paho.mqtt.client as paho
        from paho.mqtt.enums import CallbackAPIVersion

        self.messages: list[tuple[str, bytes, bool]] = []
        self._cond = threading.Condition()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id="test-subscriber")
        self.client.reconnect_delay_set(0.1, 0.3)  # type: ignore[arg-type]
        self.client.on_connect = lambda c, *_: c.subscribe("#", qos=1)
        self.client.on_message = self._on_message
        self.subscribed = 0
        self.client.on_subscribe = self._on_subscribe
        self.client.connect_async("127.0.0.1", port, keepalive=5)
        self.client.loop_start()

    def _on_subscribe(self, *_args: object) -> None:
        with self._cond:
            self.subscribed += 1
            self._cond.notify_all()

    def wait_subscribed(self, count: int, timeout: float = 10.0) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: self.subscribed >= count, timeout):
                raise TimeoutError("subscriber did not resubscribe")

    def _on_message(self, _c: object, _u: object, msg: object) -> None:
        with self._cond:
            self.messages.append((msg.topic, msg.payload, bool(msg.retain)))  # type: ignore[attr-defined]
            self._cond.notify_all()

    def clear(self) -> None:
        with self._cond:
            self.messages.clear()

    def wait_for(self, topic: str, timeout: float = 10.0, where=lambda p: True) -> bytes:
        """The first payload on `topic` (that satisfies `where`) seen so far or within timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for t, payload, _r in self.messages:
                    if t == topic and where(payload):
                        return payload
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = sorted({t for t, _, _ in self.messages})
                    raise TimeoutError(f"no message on {topic}; saw {seen}")
                self._cond.wait(left)

    def on(self, topic: str) -> list[bytes]:
        with self._cond:
            return [p for t, p, _ in self.messages if t == topic]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


METER_NAMES = (
    "instant_power_w",
    "current_r_a",
    "current_t_a",
    "current_a",
    "cumulative_power_kwh",
    "historical_timestamp",
    "historical_cumulative_power_kwh",
    "recent_30min_timestamp",
    "recent_30min_consumption_kwh",
)

METER_DEVICE = """\
  - id: meter1
    driver: echonet_broute
    connection: {serial_port: data/sim/meter1.tty}
    credentials: {rbid: "00112233445566778899AABBCCDDEEFF", password: "abcdefghijkl"}
"""


def write_meter_site(tmp_path: Path, outputs: str = "") -> Config:
    """The UPS site plus an ECHONET smart meter (meter1)."""
    path = ups_site_file(tmp_path, outputs)
    path.write_text(path.read_text().replace("devices:\n", "devices:\n" + METER_DEVICE, 1))
    return load_config(path)


def meter_ok(ts: datetime, **values: float) -> PollOutcome:
    """A single-phase meter's poll (no T phase), the half hour before `ts` in history."""
    slot = ts.replace(minute=0 if ts.minute < 30 else 30, second=0, microsecond=0)
    base = {
        "instant_power_w": 1688.0,
        "current_r_a": 16.0,
        "current_t_a": float("nan"),
        "current_a": 16.0,
        "cumulative_power_kwh": 32357 * 0.1,  # 3235.7000000000003, as scaling gives
        "historical_timestamp": slot.timestamp(),
        "historical_cumulative_power_kwh": 3235.5,
        "recent_30min_timestamp": slot.timestamp(),
        "recent_30min_consumption_kwh": 3 * 0.1,
    }
    base.update(values)
    sample = Sample(METER_NAMES, np.array([base[n] for n in METER_NAMES], dtype=np.float64))
    return PollOutcome("meter1", ts, ts, ts + timedelta(milliseconds=80), 1, sample)


def meter_ups_site(outputs: str, devices: str = "") -> str:
    """A site for a real `collect` beside `simulate`: the meter's dongle and a MUST EP20 on
    ptys, polled every second, plus `devices` (YAML list items) and `outputs` (indented)."""
    return (
        "site: {name: e2e, timezone: Asia/Tokyo}\nstorage: {data_dir: data}\ndevices:\n"
        + METER_DEVICE
        + "    interval: 1\n"
        "  - id: ups1\n"
        "    driver: modbus\n"
        "    profile: must_ep20\n"
        "    connection: {transport: rtu, serial_port: data/sim/ups1.tty}\n"
        "    interval: 1\n" + devices + "outputs:\n" + outputs
    )


@contextmanager
def collecting(config: Path) -> Iterator[subprocess.Popen[str]]:
    """`simulate` for the config's devices and a real `collect` (stdout and stderr piped);
    both are stopped on the way out."""
    with simulators(config):
        collector = python(
            "collect",
            "--config",
            str(config),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            yield collector
        finally:
            if collector.poll() is None:
                collector.terminate()
                collector.wait(15)
