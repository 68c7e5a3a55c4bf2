"""MQTT against a real mosquitto on a free loopback port: state, availability, Home Assistant
discovery, alerts, reconnection after a broker restart, the last will, and the bounded
drop-oldest queue while the broker is away."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from energy_pipeline.config import load_config
from energy_pipeline.live import LiveOutputs, build_outputs
from energy_pipeline.live.mqtt import MAX_OUTSTANDING
from energy_pipeline.live.state import StandaloneState
from energy_pipeline_tests.conftest import REPO, cli_env, require_program
from energy_pipeline_tests.live_support import Clock, Mosquitto, Subscriber, ok, until, ups_site

MQTT = """\
outputs:
  mqtt:
    host: 127.0.0.1
    port: {port}
    prefix: ep
    keepalive: 5
    reconnect_min: 0.1
    reconnect_max: 0.5
    queue_size: {queue}
"""


@pytest.fixture
def broker(tmp_path: Path):
    b = Mosquitto(require_program("mosquitto"), tmp_path)
    b.start()
    yield b
    if b.proc is not None and b.proc.poll() is None:
        b.proc.send_signal(signal.SIGCONT)
    b.stop()


@pytest.fixture
def subscriber(broker: Mosquitto):
    sub = Subscriber(broker.port)
    yield sub
    sub.close()


def live_for(tmp_path: Path, broker: Mosquitto, queue: int = 100) -> tuple[LiveOutputs, Clock]:
    config = ups_site(tmp_path, MQTT.format(port=broker.port, queue=queue))
    clock = Clock()
    return build_outputs(config, StandaloneState(started_at=clock()), clock), clock


def offer(live: LiveOutputs, outcomes: list) -> None:
    for sink in live.sinks:
        sink.offer(outcomes)


def test_state_availability_discovery_and_alerts(
    tmp_path: Path, broker: Mosquitto, subscriber: Subscriber
) -> None:
    live, clock = live_for(tmp_path, broker)

    async def main() -> None:
        for sink in live.sinks:
            await sink.start()
        assert live.mqtt is not None
        await until(lambda: live.mqtt._connected)
        offer(live, [ok("ups1", clock(), load_power=500.0, input_voltage=2301 * 0.1)])
        await asyncio.to_thread(subscriber.wait_for, "ep/ups1/state")
        offer(live, [ok("ups1", clock.advance(1), battery_level=5)])
        await asyncio.to_thread(subscriber.wait_for, "ep/alerts")
        for sink in reversed(live.sinks):
            await sink.stop()

    asyncio.run(main())
    state = json.loads(subscriber.wait_for("ep/ups1/state"))
    assert state["load_power"] == 500.0 and state["timestamp"] == "2026-03-01T12:00:00.000Z"
    assert 2301 * 0.1 != 230.1 and state["input_voltage"] == 230.1, "rounded to its precision"
    assert state["status"] == "online", "a state by its label"
    assert subscriber.wait_for("ep/ups1/availability") == b"online"
    assert subscriber.on("ep/status")[:1] == [b"online"]
    assert subscriber.wait_for("ep/status", where=lambda p: p == b"offline") == b"offline"
    alert = json.loads(subscriber.wait_for("ep/alerts"))
    assert (alert["device_id"], alert["state"], alert["rule"]) == (
        "ups1",
        "raised",
        "battery_level < 20",
    )
    assert len(subscriber.on("ep/alerts")) == 1, "one event per transition"

    disc = json.loads(subscriber.wait_for("homeassistant/device/ep_ups1/config"))
    assert disc["dev"]["ids"] == ["ep_ups1"] and disc["dev"]["name"] == "Server room UPS"
    assert disc["state_topic"] == "ep/ups1/state" and disc["qos"] == 1
    assert [a["topic"] for a in disc["availability"]] == ["ep/status", "ep/ups1/availability"]
    cmps = disc["cmps"]
    assert set(cmps) == {
        f"ups1_{m}"
        for m in ("input_voltage", "battery_level", "load_power", "energy_total", "status")
    }, "only the profile's published points"
    energy = cmps["ups1_energy_total"]
    assert (energy["device_class"], energy["state_class"], energy["unit_of_measurement"]) == (
        "energy",
        "total_increasing",
        "kWh",
    )
    power = cmps["ups1_load_power"]
    assert (power["device_class"], power["state_class"]) == ("power", "measurement")
    assert cmps["ups1_battery_level"]["device_class"] == "battery"
    status = cmps["ups1_status"]
    assert (status["device_class"], status["options"]) == ("enum", ["online", "battery"])
    assert status["value_template"] == "{{ value_json.status }}" and "state_class" not in status
    assert "unit_of_measurement" not in status, "Home Assistant rejects an enum with a unit"
    voltage = cmps["ups1_input_voltage"]
    assert voltage["name"] == "Grid (input) voltage", "the catalog's description"
    assert voltage["suggested_display_precision"] == 1, "x0.1 V register"
    assert cmps["ups1_load_power"]["name"] == "load power", "no description: the id in words"
    assert energy["suggested_display_precision"] == 0, "a uint32 register of whole kWh"


def test_reconnects_after_broker_restart_and_republishes_on_ha_online(
    tmp_path: Path, broker: Mosquitto, subscriber: Subscriber
) -> None:
    live, clock = live_for(tmp_path, broker, queue=3)

    async def main() -> None:
        for sink in live.sinks:
            await sink.start()
        mqtt = live.mqtt
        assert mqtt is not None
        await until(lambda: mqtt._connected)
        offer(live, [ok("ups1", clock())])
        await asyncio.to_thread(subscriber.wait_for, "ep/ups1/state")

        await asyncio.to_thread(broker.stop)
        await until(lambda: not mqtt._connected)
        subscriber.clear()
        for i in range(10):
            offer(live, [ok("ups1", clock.advance(1), load_power=float(i))])
        assert mqtt.queue.dropped == 7 and len(mqtt.queue) == 3

        # Hold our network thread until the test's subscriber is back, so it cannot miss the
        # (unretained) state messages; the reconnect itself is paho's usual retry path.
        await asyncio.to_thread(mqtt.client.loop_stop)
        await asyncio.to_thread(broker.start)
        await asyncio.to_thread(subscriber.wait_subscribed, 2)
        mqtt.client.loop_start()
        await until(lambda: mqtt._connected)
        await asyncio.to_thread(
            subscriber.wait_for, "ep/ups1/state", 10, lambda p: b'"load_power":9' in p
        )
        assert await asyncio.to_thread(subscriber.wait_for, "ep/status") == b"online"
        await asyncio.to_thread(subscriber.wait_for, "homeassistant/device/ep_ups1/config")
        powers = [json.loads(p)["load_power"] for p in subscriber.on("ep/ups1/state")]
        assert powers == [7.0, 8.0, 9.0], "the oldest were dropped, the newest kept in order"

        subscriber.clear()
        subscriber.client.publish("homeassistant/status", "online", qos=1)
        await asyncio.to_thread(subscriber.wait_for, "homeassistant/device/ep_ups2/config")
        state = await asyncio.to_thread(subscriber.wait_for, "ep/ups1/state")
        assert json.loads(state)["load_power"] == 9.0
        for sink in reversed(live.sinks):
            await sink.stop()

    asyncio.run(main())


def test_stalled_broker_fills_only_our_bounded_queue(
    tmp_path: Path, broker: Mosquitto, subscriber: Subscriber
) -> None:
    live, clock = live_for(tmp_path, broker, queue=50)

    async def main() -> None:
        for sink in live.sinks:
            await sink.start()
        mqtt = live.mqtt
        assert mqtt is not None and broker.proc is not None
        await until(lambda: mqtt._connected)
        broker.proc.send_signal(signal.SIGSTOP)
        try:
            loop = asyncio.get_running_loop()
            started = loop.time()
            for _ in range(200):
                offer(live, [ok("ups1", clock.advance(1)), ok("ups2", clock())])
            assert loop.time() - started < 0.5, "offer never waits on the broker"
            await asyncio.sleep(0.2)
            # paho holds at most MAX_OUTSTANDING unacknowledged; the rest wait with us.
            assert len(mqtt._unacked) == MAX_OUTSTANDING
            assert len(mqtt.queue) == 50 - MAX_OUTSTANDING
            assert mqtt.queue.dropped == 2 * 200 + 2 - 50
        finally:
            broker.proc.send_signal(signal.SIGCONT)
        await until(lambda: len(mqtt.queue) == 0)
        for sink in reversed(live.sinks):
            await sink.stop()

    asyncio.run(main())


@pytest.mark.slow
def test_last_will_marks_a_killed_collector_offline(
    tmp_path: Path, broker: Mosquitto, subscriber: Subscriber
) -> None:
    config = ups_site(tmp_path, MQTT.format(port=broker.port, queue=10))
    script = textwrap.dedent(
        f"""
        import asyncio
        from energy_pipeline.config import load_config
        from energy_pipeline.live import build_outputs
        from energy_pipeline.live.state import StandaloneState

        async def main():
            live = build_outputs(load_config({str(config.path)!r}), StandaloneState())
            for sink in live.sinks:
                await sink.start()
            while not live.mqtt._connected:
                await asyncio.sleep(0.02)
            print("ready", flush=True)
            await asyncio.sleep(60)

        asyncio.run(main())
        """
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, env=cli_env(), cwd=REPO
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == b"ready\n"
        assert subscriber.wait_for("ep/status") == b"online"
        os.kill(child.pid, signal.SIGKILL)
        assert subscriber.wait_for("ep/status", 15, lambda p: p == b"offline") == b"offline"
    finally:
        child.kill()
        child.wait()


@pytest.mark.slow
def test_tls_and_password_against_a_secured_broker(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A broker that only speaks TLS and wants a password: the sink verifies the broker's
    certificate against the configured CA, logs in, and never logs the password."""
    mosquitto = require_program("mosquitto")
    openssl = require_program("openssl")
    passwd = require_program("mosquitto_passwd")

    def run(*args: str) -> None:
        subprocess.run(args, check=True, capture_output=True, cwd=tmp_path, timeout=60)

    run(openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-subj", "/CN=test-ca", "-keyout", "ca.key", "-out", "ca.pem")  # fmt: skip
    run(openssl, "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
        "-keyout", "server.key", "-out", "server.csr")  # fmt: skip
    (tmp_path / "san.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    run(openssl, "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-extfile", "san.cnf", "-out", "server.pem")  # fmt: skip
    run(passwd, "-b", "-c", "passwords", "collector", "broker-pass-4711")
    broker = Mosquitto(mosquitto, tmp_path)
    broker.conf.write_text(
        f"listener {broker.port} 127.0.0.1\n"
        f"cafile {tmp_path / 'ca.pem'}\ncertfile {tmp_path / 'server.pem'}\n"
        f"keyfile {tmp_path / 'server.key'}\n"
        f"allow_anonymous false\npassword_file {tmp_path / 'passwords'}\n"
        # Run as root, mosquitto would drop to its own user, who cannot read pytest's 0700
        # temporary folder; as any other user this line changes nothing.
        "user root\n"
    )
    broker.start()
    monkeypatch.setenv("MQTT_PASSWORD", "broker-pass-4711")
    try:
        config = ups_site(
            tmp_path,
            f"""\
outputs:
  mqtt:
    host: 127.0.0.1
    port: {broker.port}
    prefix: ep
    username: collector
    password: "${{MQTT_PASSWORD}}"
    tls: {{ca_file: ca.pem}}
    reconnect_min: 0.1
""",
        )
        clock = Clock()
        live = build_outputs(config, StandaloneState(started_at=clock()), clock)

        async def main() -> None:
            for sink in live.sinks:
                await sink.start()
            mqtt = live.mqtt
            assert mqtt is not None
            await until(lambda: mqtt._connected)
            offer(live, [ok("ups1", clock())])
            await until(lambda: mqtt.published >= 1)
            for sink in reversed(live.sinks):
                await sink.stop()

        with caplog.at_level(logging.DEBUG):
            asyncio.run(main())
        assert "broker-pass-4711" not in caplog.text

        monkeypatch.setenv("MQTT_PASSWORD", "wrong-pass-0815")
        refused = build_outputs(load_config(config.path), StandaloneState(), clock)

        async def wrong_password() -> None:
            mqtt = refused.mqtt
            assert mqtt is not None
            await mqtt.start()
            await asyncio.sleep(1.0)
            assert not mqtt._connected
            await mqtt.stop()

        caplog.clear()
        with caplog.at_level(logging.DEBUG):
            asyncio.run(wrong_password())
        assert "refused" in caplog.text and "wrong-pass-0815" not in caplog.text
    finally:
        broker.stop()
