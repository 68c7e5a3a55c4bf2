"""The systemd notify protocol: a real AF_UNIX datagram socket stands in for systemd.

`collect` as a real process against the simulators: READY within seconds, watchdog pings while
healthy, STOPPING on SIGTERM. The real service in-process with its committer wedged (landing
blocked on a lock the test holds): the pings stop, and resume once it lets go.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from energy_pipeline.collector.heartbeat import Heartbeat, stalled, summary_line, watch
from energy_pipeline.collector.scheduler import SystemClock
from energy_pipeline.collector.service import CollectorService
from energy_pipeline.ops.notify import Notifier, message, socket_address, watchdog_interval
from energy_pipeline_tests.collector_support import (
    collector_site,
    janitza,
    wait_for,
)
from energy_pipeline_tests.conftest import REPO, cli_env
from energy_pipeline_tests.kit.ports import free_ports
from energy_pipeline_tests.kit.sims import simulators
from energy_pipeline_tests.test_collector_service import Healthy, make_config

pytestmark = pytest.mark.timeout(120)


class Manager:
    """The service manager's end: a bound datagram socket; every datagram kept with its time."""

    def __init__(self, name: str):
        self.name = name
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(socket_address(name))
        self.sock.settimeout(0.2)
        self.received: list[tuple[float, dict[str, str]]] = []
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._done.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            fields = dict(line.split("=", 1) for line in data.decode().split("\n") if line)
            with self._lock:
                self.received.append((time.monotonic(), fields))

    def with_key(self, key: str, since: float = 0.0) -> list[tuple[float, dict[str, str]]]:
        with self._lock:
            return [(t, f) for t, f in self.received if key in f and t >= since]

    def close(self) -> None:
        self._done.set()
        self._thread.join(2)
        self.sock.close()


@contextmanager
def manager(name: str) -> Iterator[Manager]:
    m = Manager(name)
    try:
        yield m
    finally:
        m.close()


def test_messages_and_environment():
    assert message("READY=1", status="2/2 devices up\nsecond line") == (
        b"READY=1\nSTATUS=2/2 devices up"
    )
    assert message("WATCHDOG=1") == b"WATCHDOG=1"
    assert socket_address("@sd-notify") == b"\0sd-notify"
    assert socket_address("/run/systemd/notify") == "/run/systemd/notify"
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}, 42) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "42"}, 42) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "7"}, 42) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}, 42) is None
    assert watchdog_interval({}, 42) is None


def test_stall_verdicts_from_the_progress_marks():
    beat = Heartbeat()
    assert stalled(beat, 100.0, 1.0) is None  # nothing scheduled yet, nothing handed
    beat.due(100.0)
    assert stalled(beat, 100.5, 1.0) is None
    assert "scheduler stalled" in (stalled(beat, 101.5, 1.0) or "")
    beat.due(102.0)
    beat.hand(101.9)
    assert stalled(beat, 102.5, 1.0) is None
    assert "committer stalled" in (stalled(beat, 103.0, 1.0) or "")
    mark = beat.handed
    beat.hand(103.1)  # handed while the commit of `mark` ran: still waiting afterwards
    beat.took(mark, 103.2)
    assert beat.waiting_since == 103.2
    beat.took(beat.handed, 103.3)
    assert beat.waiting_since is None
    beat.due(104.0)
    assert stalled(beat, 103.4, 1.0) is None


def test_a_notifier_without_a_manager_never_raises(tmp_path):
    gone = Notifier(str(tmp_path / "nobody.sock"))
    assert gone.send(message("READY=1")) is False
    gone.close()


def test_collect_reports_ready_pings_and_stopping(tmp_path):
    ports = free_ports(2)
    config = collector_site(tmp_path, [janitza("umg1", ports[0]), janitza("umg2", ports[1])])
    name = f"@energy-pipeline-test-{os.getpid()}-{time.monotonic_ns()}"
    env = cli_env({"NOTIFY_SOCKET": name, "WATCHDOG_USEC": "1000000"})
    with simulators(config), manager(name) as systemd:
        started = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-m", "energy_pipeline", "collect", "--config", str(config)],
            env=env,
            cwd=REPO,
            stderr=(tmp_path / "collector.log").open("wb"),
        )
        try:
            ready = wait_for(lambda: systemd.with_key("READY"), 20, "READY=1")
            assert ready[0][0] - started < 15
            t_ready = ready[0][0]
            pings = wait_for(
                lambda: len(systemd.with_key("WATCHDOG", t_ready)) >= 4 and systemd, 10, "pings"
            ).with_key("WATCHDOG", t_ready)
            gaps = [b[0] - a[0] for a, b in itertools.pairwise(pings)]
            assert all(0.3 < g < 0.8 for g in gaps), gaps  # half of WATCHDOG_USEC = 0.5 s
            assert "devices up" in pings[-1][1]["STATUS"]
            assert (
                "2/2 devices up"
                in wait_for(
                    lambda: [f for _, f in systemd.with_key("STATUS") if "2/2" in f["STATUS"]],
                    10,
                    "both devices up in STATUS",
                )[0]["STATUS"]
            )
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
        assert systemd.with_key("STOPPING"), "no STOPPING=1 after SIGTERM"
        assert "withheld" not in (tmp_path / "collector.log").read_text()
        stop_at = systemd.with_key("STOPPING")[0][0]
        assert not systemd.with_key("READY", stop_at)


def test_pings_stop_while_the_committer_is_wedged_and_resume_after(tmp_path):
    """The real service and committer; only its landing is made to block on a held lock."""
    drivers = {i: Healthy(i) for i in ("a", "b")}
    service = CollectorService(make_config(tmp_path, list(drivers)), drivers)
    gate = threading.Lock()
    persist = service.landing.persist

    def gated_persist(oldest_in_flight: float | None) -> None:
        with gate:
            persist(oldest_in_flight)

    service.landing.persist = gated_persist  # type: ignore[method-assign]
    name = str(tmp_path / "notify.sock")
    interval = 0.3

    async def scenario() -> tuple[float, float]:
        notifier = Notifier(name)
        run = asyncio.create_task(service.run())
        dog = asyncio.create_task(
            watch(service.heartbeat, service.state, notifier, interval, SystemClock())
        )
        try:
            await asyncio.sleep(2.0)
            await asyncio.to_thread(gate.acquire)
            wedged_at = time.monotonic()
            await asyncio.sleep(3.0)
            gate.release()
            released_at = time.monotonic()
            await asyncio.sleep(2.0)
            return wedged_at, released_at
        finally:
            if gate.locked():
                gate.release()
            service.stop()
            await asyncio.wait_for(run, 20)
            dog.cancel()
            await asyncio.gather(dog, return_exceptions=True)
            notifier.close()

    with manager(name) as systemd:
        wedged_at, released_at = asyncio.run(scenario())
        pings = [t for t, _ in systemd.with_key("WATCHDOG")]
        statuses = [f["STATUS"] for _, f in systemd.with_key("STATUS")]
    assert systemd.with_key("READY")
    before = [t for t in pings if t < wedged_at]
    assert len(before) >= 3, "no pings while healthy"
    # one interval to notice (the tick in hand), one more for the verdict, a little slack
    silent = [t for t in pings if wedged_at + 3 * interval + 0.2 < t < released_at]
    assert silent == [], f"{len(silent)} pings while the committer was wedged"
    after = [t for t in pings if t > released_at]
    assert len(after) >= 3, "pings did not resume"
    assert any(s.startswith("committer stalled") for s in statuses)
    assert service.state.dropped_rows == 0


def test_summary_line_names_devices_and_storage(tmp_path):
    service = CollectorService(make_config(tmp_path, ["a", "b"]), {i: Healthy(i) for i in "ab"})
    service.state.devices["a"].state = "up"
    service.state.storage_error = "ENOSPC"
    line = summary_line(service.state)
    assert line.startswith("1/2 devices up") and "STORAGE ERROR ENOSPC" in line
    assert "\n" not in line
