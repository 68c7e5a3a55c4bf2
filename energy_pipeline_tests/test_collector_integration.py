"""The collector against the real simulators, each in its own process.

(a) kill -9 at random moments, then a restart: every acknowledged tick lands exactly once;
(b) a device that accepts TCP and never answers does not delay the healthy ones;
(c) a data directory that refuses writes (a full tmpfs) and later accepts them: nothing lost;
(d) SIGTERM exits 0 with everything sealed; a second collector with the same id refuses.
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from energy_pipeline_tests.collector_support import (
    acked,
    collector,
    collector_site,
    fill,
    janitza,
    read_lake,
    status,
    wait_for,
)
from energy_pipeline_tests.conftest import run_cli
from energy_pipeline_tests.kit.ports import free_ports, taken_port
from energy_pipeline_tests.kit.sims import simulators

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]  # collector processes, kill -9, restarts


def polls_frame(data_dir: Path) -> pd.DataFrame:
    return read_lake(data_dir, "polls").to_pandas()


def assert_exactly_once(data_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    raw = read_lake(data_dir, "raw_readings").to_pandas()
    polls = polls_frame(data_dir)
    assert not raw.duplicated(["device_id", "ts", "metric"]).any(), "a reading landed twice"
    assert not polls.duplicated(["device_id", "ts"]).any(), "a poll landed twice"
    per_poll = raw.groupby(["device_id", "ts"]).size()
    ok = polls[polls.ok].set_index(["device_id", "ts"]).index
    assert per_poll.index.isin(ok).all(), "readings without their poll row"
    assert per_poll.loc[ok].min() == per_poll.max() == 61, "a poll lost some of its readings"
    return raw, polls


def seconds_between(first: str, last: str) -> list[pd.Timestamp]:
    start, end = pd.Timestamp(first), pd.Timestamp(last)
    return list(pd.date_range(start, end, freq="1s"))


def test_kill_9_ten_times_loses_and_duplicates_nothing(tmp_path):
    ports = free_ports(2)
    config = collector_site(tmp_path, [janitza("umg1", ports[0]), janitza("umg2", ports[1])])
    data = tmp_path / "data"
    log = tmp_path / "collector.log"
    rng = random.Random(int(os.environ.get("KILL_SEED", time.time())))
    runs: list[dict[str, tuple[str, str]]] = []
    with simulators(config):
        for i in range(10):
            proc = collector(config, log)
            if i % 3 == 2:  # some kills land during start-up and WAL replay
                time.sleep(rng.uniform(0.3, 1.5))
                first = acked(data, proc.pid)
            else:
                first = wait_for(lambda p=proc: acked(data, p.pid), 30, "a first acknowledgement")
                time.sleep(rng.uniform(0.0, 2.0))  # anywhere: mid-poll, mid-commit, mid-seal
            last = acked(data, proc.pid)
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            runs.append({dev: (first[dev], last[dev]) for dev in first if dev in last})
        proc = collector(config, log)
        wait_for(lambda: acked(data, proc.pid), 30, "the restarted collector")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    _, polls = assert_exactly_once(data)
    landed = set(zip(polls[polls.ok].device_id, polls[polls.ok].ts, strict=True))
    for run in runs:
        for dev, (first, last) in run.items():
            for ts in seconds_between(first, last):
                assert (dev, ts) in landed, f"acknowledged {dev} @ {ts} is not in the lake"
    assert not list((data / "state" / "wal-main").glob("*.wal"))


def test_a_device_that_never_answers_does_not_delay_the_others(tmp_path):
    ports = free_ports(2)
    devices = [janitza("umg1", ports[0]), janitza("umg2", ports[1])]
    data = tmp_path / "data"
    with taken_port() as mute:
        config = collector_site(tmp_path, [*devices, janitza("mute", mute)])
        with simulators(collector_site(tmp_path / "sim", devices)):
            proc = collector(config, tmp_path / "collector.log")
            wait_for(lambda: len(acked(data, proc.pid)) == 2, 30, "healthy devices up")
            time.sleep(5)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0
    polls = polls_frame(data)
    for dev in ("umg1", "umg2"):
        mine = polls[polls.device_id == dev].sort_values("ts")
        assert mine.ok.all()
        assert list(mine.ts) == seconds_between(mine.ts.iloc[0], mine.ts.iloc[-1])
        lateness = (mine.started_at - mine.ts).dt.total_seconds()
        # waiting behind the mute device would cost its 0.4 s timeout on every tick
        assert lateness.median() < 0.05, f"{dev} read late: {lateness.median():.3f} s"
        assert lateness.max() < 0.4, f"{dev} read late: {lateness.max():.3f} s"
    dead = polls[polls.device_id == "mute"]
    assert len(dead) >= 1 and not dead.ok.any()
    doc = status(data)
    assert doc["devices"]["mute"]["state"] == "down"
    assert doc["devices"]["mute"]["last_error_kind"] == "timeout"
    assert doc["devices"]["umg1"]["missed_ticks"] == 0


def test_a_full_data_directory_loses_nothing_once_space_returns(tmp_path, small_disk):
    ports = free_ports(2)
    devices = [janitza("umg1", ports[0]), janitza("umg2", ports[1])]
    config = collector_site(tmp_path, devices, data_dir=small_disk / "data")
    data = small_disk / "data"
    log = tmp_path / "collector.log"
    with simulators(config):
        proc = collector(config, log)
        wait_for(lambda: acked(data, proc.pid), 30, "first acknowledgement")
        filler = fill(small_disk)
        wait_for(lambda: b"REFUSES WRITES" in log.read_bytes(), 10, "the loud error")
        time.sleep(3)  # ticks keep coming while nothing can be written
        refused_at = datetime.now().astimezone()
        filler.unlink()
        wait_for(
            lambda: (acked(data, proc.pid).get("umg1") or "") > refused_at.isoformat(),
            15,
            "acknowledgements after space returned",
        )
        doc = status(data)
        assert doc["storage_error"] is None and doc["dropped_rows"] == 0
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    _, polls = assert_exactly_once(data)
    for dev in ("umg1", "umg2"):
        mine = polls[polls.device_id == dev].sort_values("ts")
        gaps = mine.ts.diff().dropna()
        assert (gaps == timedelta(seconds=1)).all(), f"{dev} has a hole: {gaps.max()}"
        assert mine.ts.iloc[-1] - mine.ts.iloc[0] >= timedelta(seconds=4)


def test_sigterm_seals_everything_and_a_second_collector_refuses(tmp_path):
    ports = free_ports(1)
    config = collector_site(tmp_path, [janitza("umg1", ports[0])])
    data = tmp_path / "data"
    with simulators(config):
        proc = collector(config, tmp_path / "collector.log")
        wait_for(lambda: acked(data, proc.pid), 30, "first acknowledgement")
        second = run_cli("collect", "--config", str(config), timeout=30)
        assert second.returncode == 1
        assert f"already running on {data} (pid {proc.pid})" in second.stderr
        time.sleep(1.5)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    doc = status(data)
    last = doc["devices"]["umg1"]["last_ack_ts"]
    _, polls = assert_exactly_once(data)
    assert polls.ts.max() == pd.Timestamp(last)
    assert not list((data / "state" / "wal-main").glob("*.wal")), "WAL left after SIGTERM"
    assert datetime.fromisoformat(doc["sealed_watermark"]) <= datetime.fromisoformat(last)
    shown = run_cli("status", "--config", str(config))
    assert shown.returncode == 0 and "umg1" in shown.stdout and "not running" in shown.stdout
    as_json = run_cli("status", "--config", str(config), "--json")
    [doc_json] = json.loads(as_json.stdout)
    assert doc_json["devices"]["umg1"]["last_ack_ts"] == last
    assert doc_json["running"] is False


def test_status_without_any_collector_exits_1(tmp_path):
    config = collector_site(tmp_path, [janitza("umg1", 1)])
    shown = run_cli("status", "--config", str(config))
    assert shown.returncode == 1 and "no collector status" in shown.stdout


def test_a_dead_unit_on_a_shared_serial_bus_costs_the_healthy_one_no_tick(tmp_path):
    tty = str(tmp_path / "bus.tty")

    def ups(dev_id: str, unit: int) -> dict:
        return {
            "id": dev_id,
            "driver": "modbus",
            "profile": "must_ep20",
            "interval": 1,
            "connection": {
                "transport": "rtu",
                "serial_port": tty,
                "baudrate": 9600,
                "unit_id": unit,
                "timeout": 0.3,
                "retries": 0,
            },
        }

    served = collector_site(tmp_path / "sim", [ups("ups1", 10)])
    config = collector_site(
        tmp_path, [ups("ups1", 10), ups("ghost", 11)], backoff_initial=2, backoff_max=60
    )
    data = tmp_path / "data"
    with simulators(served):
        proc = collector(config, tmp_path / "collector.log")
        wait_for(lambda: "ups1" in acked(data, proc.pid), 30, "ups1 up")
        time.sleep(6)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    polls = polls_frame(data)
    healthy = polls[polls.device_id == "ups1"].sort_values("ts")
    assert healthy.ok.all()
    assert list(healthy.ts) == seconds_between(healthy.ts.iloc[0], healthy.ts.iloc[-1])
    doc = status(data)
    ghost = doc["devices"]["ghost"]
    assert ghost["state"] == "down"
    ghost_gaps = polls[polls.device_id == "ghost"].ts.sort_values().diff().dropna()
    assert ghost_gaps.iloc[-1] >= timedelta(seconds=2), "backoff keeps the dead unit's cost rare"
    assert len(ghost_gaps) + 1 < len(healthy)
