"""Disk watch: free space of the data directory in the status file, `status`, /metrics and
/api/health, and the built-in alert of `alerts.disk`, on a real 3 MB tmpfs filled by the test."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest

from energy_pipeline.config import DiskAlert
from energy_pipeline.lake.disk import DiskSpace, disk_space, free_limit, low_space
from energy_pipeline.live.alerts import DISK_SOURCE, AlertEngine, DiskWatch
from energy_pipeline_tests.collector_support import (
    acked,
    collector,
    collector_site,
    janitza,
    status,
    wait_for,
)
from energy_pipeline_tests.conftest import run_cli
from energy_pipeline_tests.kit.ports import free_ports
from energy_pipeline_tests.kit.sims import simulators

GB = 1_000_000_000
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_either_threshold_makes_free_space_low():
    total = 100 * GB
    assert free_limit(total, 5, 1) == 5 * GB  # the percent is stricter on a big disk
    assert free_limit(10 * GB, 5, 1) == 1 * GB  # the gigabyte on a small one
    assert low_space(DiskSpace(6 * GB, total), 5, 1) is None
    reason = low_space(DiskSpace(4 * GB, total), 5, 1)
    assert reason is not None and "4.00 GB free (4.0%)" in reason
    assert low_space(DiskSpace(int(0.9 * GB), 10 * GB), 5, 1) is not None
    # once low, it stays low until 5 % above the limit
    assert low_space(DiskSpace(int(5.1 * GB), total), 5, 1, was_low=True) is not None
    assert low_space(DiskSpace(int(5.3 * GB), total), 5, 1, was_low=True) is None


def test_disk_watch_raises_once_and_clears_once():
    engine = AlertEngine([], T0, DiskWatch(DiskAlert()))
    total = 100 * GB
    assert engine.observe_disk(50 * GB, total, T0) == []
    [raised] = engine.observe_disk(4 * GB, total, T0 + timedelta(seconds=1))
    assert (raised.state, raised.device_id, raised.kind) == ("raised", DISK_SOURCE, "disk")
    assert raised.severity == "critical" and "below min_free_percent 5" in raised.message
    assert engine.observe_disk(3 * GB, total, T0 + timedelta(seconds=2)) == []
    [active] = engine.active()
    assert active["kind"] == "disk" and active["value"] == 3 * GB
    assert engine.observe_disk(int(5.1 * GB), total, T0 + timedelta(seconds=3)) == []
    [cleared] = engine.observe_disk(6 * GB, total, T0 + timedelta(seconds=4))
    assert cleared.state == "cleared" and engine.active() == []
    assert engine.observe_disk(None, None, T0) == []


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


def get_text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return resp.read().decode()


def gauge(text: str, name: str) -> float:
    [line] = [ln for ln in text.splitlines() if ln.startswith(name + " ")]
    return float(line.split()[1])


def test_free_space_is_reported_and_a_full_tmpfs_raises_the_alert(tmp_path, small_disk):
    umg, http = free_ports(2)
    data = small_disk / "data"
    config = collector_site(tmp_path, [janitza("umg1", umg)], data_dir=data)
    text = config.read_text() + (
        f"outputs: {{http: {{port: {http}}}}}\n"
        "alerts: {disk: {min_free_percent: 50, min_free_gb: 0}}\n"
    )
    config.write_text(text)
    log = tmp_path / "collector.log"
    base = f"http://127.0.0.1:{http}"
    with simulators(config):
        proc = collector(config, log)
        try:
            wait_for(lambda: acked(data, proc.pid), 30, "first acknowledgement")
            doc = status(data)
            assert doc["disk_total_bytes"] == disk_space(small_disk).total_bytes == 3 * 2**20
            assert 0 < doc["disk_free_bytes"] <= doc["disk_total_bytes"]
            metrics = get_text(base + "/metrics")
            assert gauge(metrics, "energy_disk_free_ratio") > 0.5
            assert gauge(metrics, "energy_disk_free_bytes") > 1.5 * 2**20
            time.sleep(1.5)  # a few alert ticks on the measured (healthy) free space
            health = get_json(base + "/api/health")
            assert health["disk"]["total_bytes"] == 3 * 2**20 and health["disk"]["low"] is None
            assert not [a for a in get_json(base + "/api/alerts")["active"] if a["kind"] == "disk"]

            filler = small_disk / "filler"
            filler.write_bytes(b"\0" * (2 * 2**20))  # two thirds of the file system
            active = wait_for(
                lambda: [
                    a for a in get_json(base + "/api/alerts")["active"] if a["kind"] == "disk"
                ],
                15,
                "the disk alert",
            )
            assert active[0]["device_id"] == DISK_SOURCE
            assert gauge(get_text(base + "/metrics"), "energy_disk_free_ratio") < 0.5
            assert "below min_free_percent 50" in (get_json(base + "/api/health")["disk"]["low"])
            shown = run_cli("status", "--config", str(config))
            assert shown.returncode == 0
            assert "MB free of 3.1 MB" in shown.stdout and "LOW: " in shown.stdout
            [as_json] = json.loads(run_cli("status", "--config", str(config), "--json").stdout)
            assert "below min_free_percent 50" in as_json["disk_alert"]

            filler.unlink()
            wait_for(
                lambda: (
                    not [a for a in get_json(base + "/api/alerts")["active"] if a["kind"] == "disk"]
                ),
                15,
                "the disk alert to clear",
            )
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0
    lines = [ln for ln in log.read_text().splitlines() if "data_dir disk free space" in ln]
    assert [("raised" in ln, "cleared" in ln) for ln in lines] == [(True, False), (False, True)]


def test_status_shows_the_lake_retention(tmp_path):
    config = collector_site(tmp_path, [janitza("umg1", 1)])
    config.write_text(
        config.read_text() + "pipeline: {raw_retention_days: 400, export_retention_days: 9}\n"
    )
    data = tmp_path / "data"
    (data / "state").mkdir(parents=True)
    now = datetime.now(UTC).isoformat()
    (data / "state" / "collector-main.json").write_text(
        json.dumps({"collector_id": "main", "pid": os.getpid(), "updated_at": now, "devices": {}})
    )
    shown = run_cli("status", "--config", str(config))
    assert shown.returncode == 0, shown.stderr
    assert "raw kept 400 days, minute_readings forever, exports 9 days" in shown.stdout
    [doc] = json.loads(run_cli("status", "--config", str(config), "--json").stdout)
    assert doc["lake_retention"] == {
        "raw_days": 400,
        "minute_days": None,
        "export_days": 9,
        "dagster_run_days": 14,
    }
    assert doc["disk_alert"] is None


@pytest.mark.parametrize("bad", ["{min_free_percent: 120}", "{min_free_gb: -1}", "{free: 1}"])
def test_bad_disk_thresholds_are_config_errors(tmp_path, bad):
    config = collector_site(tmp_path, [janitza("umg1", 1)])
    config.write_text(config.read_text() + f"alerts: {{disk: {bad}}}\n")
    done = run_cli("config", "validate", str(config))
    assert done.returncode == 2 and "alerts.disk" in done.stderr, done.stderr
