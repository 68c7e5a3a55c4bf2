"""End to end: `energy-pipeline collect` polls a simulated Janitza and MUST EP20 over Modbus TCP
and feeds a real influxd; after SIGTERM, InfluxDB holds exactly one point per successful poll
in the lake, at the poll's instant, with every value the lake holds for it."""

from __future__ import annotations

import signal
import subprocess
import time
from collections import defaultdict
from pathlib import Path

import pytest

from energy_pipeline_tests.collector_support import read_lake
from energy_pipeline_tests.kit.ports import free_port
from energy_pipeline_tests.kit.sims import python

pytestmark = pytest.mark.slow  # child processes and a real influxd

SITE = """\
site: {{name: e2e, timezone: UTC}}
storage: {{data_dir: data}}
collector: {{seal_delay: 1}}
devices:
  - id: umg509
    driver: modbus
    profile: janitza_umg509pro
    connection: {{transport: tcp, host: 127.0.0.1, port: {umg}}}
    interval: 1
    tags: {{room: plant room 1}}
  - id: ups1
    driver: modbus
    profile: must_ep20
    connection: {{transport: tcp, host: 127.0.0.1, port: {ups}, unit_id: 10}}
    interval: 1
outputs:
  influxdb: {{url: "{url}", database: energy, batch_seconds: 1}}
"""


def test_collect_feeds_influxdb_every_poll_of_the_lake(influxd, tmp_path: Path) -> None:
    config = tmp_path / "site.yaml"
    config.write_text(SITE.format(umg=free_port(), ups=free_port(), url=influxd.url))
    piped = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    sim = python("simulate", "--config", str(config), "--json", **piped)
    collector: subprocess.Popen[str] | None = None
    try:
        assert sim.stdout is not None and "endpoints" in sim.stdout.readline()
        collector = python("collect", "--config", str(config), **piped)
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            rows = influxd.rows("SELECT count(frequency) FROM energy GROUP BY device_id", "energy")
            if len(rows) == 2 and min(r["count"] for r in rows) >= 4:
                break
            time.sleep(0.3)
        else:
            raise AssertionError(f"InfluxDB never got points from both devices: {rows}")
        collector.send_signal(signal.SIGTERM)
        _, err = collector.communicate(timeout=30)
        assert collector.returncode == 0, err
    finally:
        for proc in (collector, sim):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(10)

    lake = read_lake(tmp_path / "data", "raw_readings").to_pylist()
    expected: dict[tuple[str, int], dict[str, float]] = defaultdict(dict)
    for r in lake:
        expected[(r["device_id"], int(r["ts"].timestamp() * 1000))][r["metric"]] = r["value"]
    polls = read_lake(tmp_path / "data", "polls").to_pylist()
    assert {(p["device_id"], int(p["ts"].timestamp() * 1000)) for p in polls if p["ok"]} == set(
        expected
    )
    got = influxd.rows("SELECT * FROM energy", "energy")
    points = {(g["device_id"], g["time"]): g for g in got}
    assert len(got) == len(points) == len(expected)
    for key, values in expected.items():
        point = points[key]
        assert {m: point[m] for m in values} == values, key
    assert {g["room"] for g in got if g["device_id"] == "umg509"} == {"plant room 1"}
    assert {g["site"] for g in got} == {"e2e"}
