"""`collect` with worker processes, as real processes against real simulators: the parent
restarts a worker killed with -9, workers killed with their parent seal what they acknowledged,
a changed worker layout replays the WALs it left, and the parent alone serves the live outputs.
Every acknowledged poll lands exactly once."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import urllib.request
from pathlib import Path

import pytest

from energy_pipeline.lake.status import read_status
from energy_pipeline_tests.collector_support import (
    collector_site,
    janitza,
    read_lake,
    wait_for,
)
from energy_pipeline_tests.conftest import run_cli
from energy_pipeline_tests.kit.ports import free_port, free_ports
from energy_pipeline_tests.kit.sims import python, simulators

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

SHARDS = ("main-w0", "main-w1")


def site(tmp_path: Path, workers: int, http: int | None = None) -> Path:
    ports = free_ports(4)
    config = collector_site(
        tmp_path, [janitza(f"umg{i}", ports[i]) for i in range(4)], workers=workers
    )
    if http is not None:
        config.write_text(config.read_text() + f"outputs:\n  http: {{port: {http}}}\n")
    return config


@pytest.fixture
def spawn():
    """`collect` processes, each in a session of its own; whatever outlives the test (a failed
    one) is killed with its workers, so no collector keeps writing into a reused folder."""
    started: list[subprocess.Popen] = []

    def start(config: Path, log) -> subprocess.Popen:
        proc = python("collect", "--config", str(config), stderr=log, start_new_session=True)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def rewrite_workers(config: Path, workers: int) -> None:
    text = config.read_text()
    start = text.index('"workers": ')
    end = text.index("}", start)
    config.write_text(text[:start] + f'"workers": {workers}' + text[end:])


def worker_acks(data: Path, shard: str, pid: int | None = None) -> dict[str, str]:
    doc = read_status(data, shard) or {}
    if pid is not None and doc.get("pid") != pid:
        return {}
    return {d: v["last_ack_ts"] for d, v in (doc.get("devices") or {}).items() if v["last_ack_ts"]}


def worker_pids(data: Path, parent: subprocess.Popen) -> dict[str, int]:
    """The running workers of `parent`, once both are up."""
    doc = read_status(data, "main") or {}
    if doc.get("pid") != parent.pid:
        return {}
    pids = {shard: w["pid"] for shard, w in (doc.get("workers") or {}).items() if w.get("running")}
    return pids if len(pids) == 2 else {}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def all_acked(data: Path, pids: dict[str, int]) -> dict[str, str]:
    acks: dict[str, str] = {}
    for shard, pid in pids.items():
        acks.update(worker_acks(data, shard, pid))
    return acks if len(acks) == 4 else {}


def assert_exactly_once_and_complete(data: Path, windows: list[dict[str, tuple[str, str]]]):
    polls = read_lake(data, "polls").to_pandas()
    raw = read_lake(data, "raw_readings").to_pandas()
    assert not polls.duplicated(["device_id", "ts"]).any(), "a poll landed twice"
    assert not raw.duplicated(["device_id", "ts", "metric"]).any(), "a reading landed twice"
    import pandas as pd

    ok = polls[polls.ok]
    landed = set(zip(ok.device_id, ok.ts, strict=True))
    for window in windows:
        for dev, (first, last) in window.items():
            for ts in pd.date_range(pd.Timestamp(first), pd.Timestamp(last), freq="1s"):
                assert (dev, ts) in landed, f"acknowledged {dev} @ {ts} is not in the lake"


def test_kill_9_of_a_worker_and_of_the_parent_loses_nothing(tmp_path, spawn):
    http = free_port()
    config = site(tmp_path, workers=2, http=http)
    data = tmp_path / "data"
    log = (tmp_path / "collector.log").open("ab")
    windows: list[dict[str, tuple[str, str]]] = []
    with simulators(config):
        parent = spawn(config, log)
        pids = wait_for(lambda: worker_pids(data, parent), 60, "workers")
        first = wait_for(lambda: all_acked(data, pids), 60, "acks from both workers")
        with urllib.request.urlopen(f"http://127.0.0.1:{http}/api/devices", timeout=5) as resp:
            devices = {d["device_id"]: d["state"] for d in json.load(resp)["devices"]}
        assert devices == {f"umg{i}": "up" for i in range(4)}, "the parent serves all devices"

        victim = pids["main-w0"]
        before = all_acked(data, pids)
        os.kill(victim, signal.SIGKILL)
        windows.append({d: (first[d], before[d]) for d in first})
        restarted = wait_for(
            lambda: (p := worker_pids(data, parent)).get("main-w0") not in (None, victim) and p,
            30,
            "the parent to restart the killed worker",
        )
        doc = read_status(data, "main") or {}
        assert doc["workers"]["main-w0"]["restarts"] == 1
        assert doc["workers"]["main-w0"]["last_exit"] == "killed by SIGKILL"
        assert doc["workers"]["main-w1"]["restarts"] == 0
        again = wait_for(lambda: all_acked(data, restarted), 30, "acks after the restart")

        last = all_acked(data, restarted)
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        for pid in restarted.values():
            wait_for(lambda p=pid: not alive(p), 30, "workers to stop once the parent is gone")
        windows.append({d: (again[d], last[d]) for d in again})
        for shard in SHARDS:
            assert not list((data / "state" / f"wal-{shard}").glob("*.wal")), "all sealed"

        parent = spawn(config, log)
        pids = wait_for(lambda: worker_pids(data, parent), 60, "workers")
        wait_for(lambda: all_acked(data, pids), 60, "acks after the parent's restart")
        status = run_cli("status", "--config", str(config))
        check = run_cli("status", "--check", "--config", str(config))
        assert check.returncode == 0, check.stdout + check.stderr
        parent.send_signal(signal.SIGTERM)
        assert parent.wait(60) == 0
    assert status.returncode == 0
    text = status.stdout
    assert "collector main (running" in text and "2 workers" in text
    assert "  worker main-w0 (running" in text and "  worker main-w1 (running" in text
    assert text.count("umg") == 4 and "collector main-w0" not in text
    assert_exactly_once_and_complete(data, windows)


def test_a_changed_worker_layout_replays_the_wals_it_left(tmp_path, spawn):
    config = site(tmp_path, workers=2)
    data = tmp_path / "data"
    log = (tmp_path / "collector.log").open("ab")
    with simulators(config):
        parent = spawn(config, log)
        pids = wait_for(lambda: worker_pids(data, parent), 60, "workers")
        first = wait_for(lambda: all_acked(data, pids), 60, "acks from both workers")
        last = wait_for(
            lambda: (a := all_acked(data, pids)) and min(a.values()) > max(first.values()) and a,
            30,
            "a few more acks",
        )
        os.killpg(parent.pid, signal.SIGKILL)  # parent and workers at once, as the OOM killer
        parent.wait(10)
        for pid in pids.values():
            wait_for(lambda p=pid: not alive(p), 10, "the workers to die")
        assert any((data / "state" / f"wal-{s}").glob("*.wal") for s in SHARDS)

        rewrite_workers(config, 1)
        single = spawn(config, log)
        wait_for(lambda: (read_status(data, "main") or {}).get("devices"), 60, "one collector")
        single.send_signal(signal.SIGTERM)
        assert single.wait(60) == 0
    for shard in SHARDS:
        assert not list((data / "state" / f"wal-{shard}").glob("*.wal")), f"{shard} replayed"
        assert read_status(data, shard) is None, f"{shard} still listed"
    assert_exactly_once_and_complete(data, [{d: (first[d], last[d]) for d in first}])
    assert (
        "sealed the write-ahead log of a former worker layout"
        in (tmp_path / "collector.log").read_text()
    )


def test_a_worker_number_out_of_range_is_refused(tmp_path):
    config = site(tmp_path, workers=2)
    done = run_cli("collect", "--config", str(config), "--worker", "5/2", "--link-fd", "1")
    assert done.returncode == 2
    assert "INDEX/COUNT" in done.stderr


def test_the_health_check_fails_when_one_worker_stops_writing(tmp_path):
    from datetime import UTC, datetime, timedelta

    from energy_pipeline.config import load_config
    from energy_pipeline.lake.status import status_document, worker_status, write_status
    from energy_pipeline.ops.healthcheck import check_fresh

    config = load_config(site(tmp_path, workers=2))
    now = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    fresh, old = now - timedelta(seconds=2), now - timedelta(seconds=45)
    workers = {s: worker_status(1, True, 2) for s in SHARDS}
    write_status(
        config.data_dir, status_document("main", 1, fresh, {}, updated_at=fresh, workers=workers)
    )
    write_status(config.data_dir, status_document("main-w0", 2, fresh, {}, updated_at=fresh))
    write_status(config.data_dir, status_document("main-w1", 3, fresh, {}, updated_at=fresh))
    assert check_fresh(config, now)[0] == 0
    write_status(config.data_dir, status_document("main-w1", 3, old, {}, updated_at=old))
    code, line = check_fresh(config, now)
    assert code == 1 and "main-w1 stale" in line
