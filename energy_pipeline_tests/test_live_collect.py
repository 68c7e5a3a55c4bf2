"""End to end: `energy-pipeline collect` polls a simulated MUST EP20 and a Janitza over
Modbus TCP and serves the live outputs from the same process — JSON API, /metrics (promtool)
and MQTT state and discovery on a real broker — then stops cleanly on SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from energy_pipeline_tests.conftest import REPO, cli_env, require_program
from energy_pipeline_tests.kit.ports import free_port
from energy_pipeline_tests.live_support import Mosquitto, Subscriber

pytestmark = pytest.mark.slow  # collector, simulators and a broker as processes

SITE = """\
site: {{name: e2e, timezone: UTC}}
storage: {{data_dir: data}}
devices:
  - id: umg509
    driver: modbus
    profile: janitza_umg509pro
    connection: {{transport: tcp, host: 127.0.0.1, port: {umg}}}
    interval: 1
  - id: ups1
    driver: modbus
    profile: must_ep20
    connection: {{transport: tcp, host: 127.0.0.1, port: {ups}, unit_id: 10}}
    interval: 1
outputs:
  http: {{port: {http}}}
  mqtt: {{host: 127.0.0.1, port: {mqtt}, prefix: site, reconnect_min: 0.1}}
"""


def spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "energy_pipeline", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(),
        cwd=REPO,
    )


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:
        return 0, b""


def test_collect_serves_live_outputs(tmp_path: Path) -> None:
    promtool = require_program("promtool")
    broker = Mosquitto(require_program("mosquitto"), tmp_path)
    broker.start()
    http = free_port()
    config = tmp_path / "site.yaml"
    config.write_text(SITE.format(umg=free_port(), ups=free_port(), http=http, mqtt=broker.port))
    sub = Subscriber(broker.port)
    sim = spawn("simulate", "--config", str(config), "--json")
    collector: subprocess.Popen[str] | None = None
    try:
        assert sim.stdout is not None and "endpoints" in sim.stdout.readline()
        collector = spawn("collect", "--config", str(config))
        base = f"http://127.0.0.1:{http}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            status, body = get(base + "/api/health")
            if status == 200 and json.loads(body)["status"] == "ok":
                break
            time.sleep(0.2)
        else:
            raise AssertionError(f"collector never healthy: {status} {body!r}")

        _, body = get(base + "/api/telemetry/ups1")
        ups = json.loads(body)
        assert 150 < ups["input_voltage"] < 260 and isinstance(ups["status"], str)
        _, body = get(base + "/api/telemetry")
        assert len(json.loads(body)["devices"]["umg509"]["values"]) >= 30

        _, metrics = get(base + "/metrics")
        lint = subprocess.run(
            [promtool, "check", "metrics"], input=metrics, capture_output=True, check=False
        )
        assert lint.returncode == 0 and lint.stdout == lint.stderr == b"", lint
        text = metrics.decode()
        assert 'energy_device_up{device="ups1"} 1.0' in text
        assert 'energy_reading{device="umg509",metric="voltage_l1_n",unit="V"}' in text
        assert "energy_wal_backlog_bytes" in text and "energy_collector_start_time_seconds" in text

        state = json.loads(sub.wait_for("site/ups1/state", 15))
        assert "battery_level" in state
        disc = json.loads(sub.wait_for("homeassistant/device/site_umg509/config", 15))
        energy = [c for c in disc["cmps"].values() if c.get("device_class") == "energy"]
        assert energy and all(c["state_class"] == "total_increasing" for c in energy)

        collector.send_signal(signal.SIGTERM)
        assert collector.wait(20) == 0
        assert sub.wait_for("site/status", 10, lambda p: p == b"offline") == b"offline"
        assert get(base + "/api/health")[0] == 0, "the server stopped with the collector"
    finally:
        for proc in (collector, sim):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(10)
        sub.close()
        broker.stop()
