"""Two collector shards on two test hosts (network namespaces) writing one lake folder.

Each host runs the simulators of its half of the site and a collector whose config lists only
that half under its own `collector.id`. The two hosts serve their devices on the same port
numbers, which only works because they are separate network stacks. The sensor's watermark
(`effective_watermark` over the status files) waits for the slowest live shard: while one shard
is frozen with SIGSTOP it stays at that shard's last sealed minute although the other shard
seals on, and it moves again once the frozen shard resumes. Both shards' files land under their
own ids, and DuckDB finds no reading twice.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from energy_pipeline.defs.sensors import STALE_AFTER, effective_watermark
from energy_pipeline.lake.layout import RAW_READINGS
from energy_pipeline.lake.status import read_statuses, sealed_watermarks
from energy_pipeline_tests.collector_support import collector_site, janitza, status, wait_for
from energy_pipeline_tests.conftest import REPO, cli_env
from energy_pipeline_tests.kit.ports import free_ports
from energy_pipeline_tests.netns_support import netns_host

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]  # shards in network namespaces
SHARDS = {"shard-a": ("m1", "m2"), "shard-b": ("m3", "m4")}


@contextmanager
def _shard(host: list[str], config: Path, log: Path) -> Iterator[subprocess.Popen]:
    """The simulators and the collector of one shard, both inside its host."""

    def start(*args: str, **kw) -> subprocess.Popen:
        return subprocess.Popen(
            [*host, sys.executable, "-m", "energy_pipeline", *args, "--config", str(config)],
            env=cli_env(),
            cwd=REPO,
            **kw,
        )

    sims = start("simulate", "--json", stdout=subprocess.PIPE, text=True)
    procs = [sims]
    try:
        assert sims.stdout is not None
        if not sims.stdout.readline():
            raise RuntimeError(f"simulators of {config} exited with {sims.wait(5)}")
        collector = start("collect", stderr=log.open("ab"))
        procs.insert(0, collector)
        yield collector
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.terminate()
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)


def _stopped(pid: int) -> bool:
    """The kernel has stopped the process (state T), so it writes no more status."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] == "T"


def _watermark(lake: Path) -> tuple[datetime | None, dict[str, datetime]]:
    return effective_watermark(read_statuses(lake), datetime.now(UTC), STALE_AFTER)


def test_two_shards_on_two_hosts_share_one_lake(tmp_path):
    lake = tmp_path / "lake"
    ports = free_ports(2)
    with ExitStack() as stack:
        procs = {}
        for shard, devices in SHARDS.items():
            host = stack.enter_context(netns_host(shard))
            config = collector_site(
                tmp_path / shard,
                [janitza(dev, port, interval=2) for dev, port in zip(devices, ports, strict=True)],
                data_dir=lake,
                id=shard,
            )
            procs[shard] = stack.enter_context(_shard(host, config, tmp_path / f"{shard}.log"))
        slow, fast = procs["shard-a"], procs["shard-b"]

        marks = wait_for(
            lambda: (m := sealed_watermarks(lake)).keys() == set(SHARDS) and m,
            90,
            "both shards to seal a minute",
            0.2,
        )
        assert status(lake, "shard-a")["pid"] == slow.pid, "not the collector's own pid"
        slow.send_signal(signal.SIGSTOP)
        wait_for(lambda: _stopped(slow.pid), 10, "the shard to stop", 0.01)
        frozen = sealed_watermarks(lake)["shard-a"]
        wait_for(
            lambda: sealed_watermarks(lake).get("shard-b", frozen) > frozen,
            90,
            "the running shard to seal past the frozen one",
            0.2,
        )
        held, marks = _watermark(lake)
        assert held == frozen, marks
        assert marks["shard-b"] > frozen

        slow.send_signal(signal.SIGCONT)
        wait_for(lambda: (_watermark(lake)[0] or frozen) > frozen, 30, "the watermark to move")
        for proc in (slow, fast):
            proc.terminate()
            assert proc.wait(30) == 0, "a shard did not stop cleanly"

    raw = lake / RAW_READINGS
    files = sorted(raw.rglob("*.parquet"))
    con = duckdb.connect()
    by_file = con.execute(
        "SELECT DISTINCT parse_filename(filename), device_id FROM read_parquet(?, filename=true, "
        "hive_partitioning=false)",
        [[str(f) for f in files]],
    ).fetchall()
    for name, device in by_file:
        shard = next((s for s in SHARDS if name.startswith(f"{s}-")), None)
        assert shard is not None, f"{name}: not named for a shard"
        assert device in SHARDS[shard], f"{device} landed in {shard}'s file {name}"
    assert {d for _, d in by_file} == {d for devs in SHARDS.values() for d in devs}
    dupes = con.execute(
        "SELECT count(*) FROM (SELECT device_id, ts, metric FROM read_parquet(?, "
        "hive_partitioning=false) GROUP BY ALL HAVING count(*) > 1)",
        [[str(f) for f in files]],
    ).fetchone()
    assert dupes == (0,)
