"""Real processes for the collector's integration tests: the simulators and the collector,
each `python -m energy_pipeline ...` in its own process, on free loopback ports."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from energy_pipeline_tests.conftest import REPO, cli_env


def free_ports(count: int) -> list[int]:
    socks = []
    for _ in range(count):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def janitza(dev_id: str, port: int, interval: float = 1) -> dict[str, Any]:
    return {
        "id": dev_id,
        "driver": "modbus",
        "profile": "janitza_umg509pro",
        "interval": interval,
        "connection": {
            "transport": "tcp",
            "host": "127.0.0.1",
            "port": port,
            "timeout": 0.4,
            "retries": 0,
        },
    }


def write_site(folder: Path, devices: list[dict], data_dir: Path | None = None, **collector):
    folder.mkdir(parents=True, exist_ok=True)
    doc = {
        "storage": {"data_dir": str(data_dir or folder / "data")},
        "collector": {"seal_delay": 1, "backoff_initial": 1, "backoff_max": 2, **collector},
        "devices": devices,
    }
    path = folder / "site.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def python(*args: str, **kw: Any) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "energy_pipeline", *args], env=cli_env(), cwd=REPO, **kw
    )


@contextmanager
def simulators(config: Path) -> Iterator[list[str]]:
    """`energy-pipeline simulate` for the config; yields its endpoint lines once listening."""
    proc = python("simulate", "--config", str(config), "--json", stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"simulator exited with {proc.wait(5)}")
        yield json.loads(line)["endpoints"]
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def collector(config: Path, log: Path) -> subprocess.Popen:
    return python("collect", "--config", str(config), stderr=log.open("ab"))


def status(data_dir: Path, collector_id: str = "main") -> dict[str, Any] | None:
    from energy_pipeline.lake.status import read_status

    return read_status(data_dir, collector_id)


def wait_for(predicate, timeout: float, what: str, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def acked(data_dir: Path, pid: int | None = None) -> dict[str, str]:
    """device -> last acknowledged ts in the status file (of process `pid`, if given)."""
    doc = status(data_dir) or {}
    if pid is not None and doc.get("pid") != pid:
        return {}
    return {
        dev: d["last_ack_ts"] for dev, d in (doc.get("devices") or {}).items() if d["last_ack_ts"]
    }


def read_lake(data_dir: Path, table: str) -> pa.Table:
    """Every complete Parquet file of a table; a file that does not read fails the test."""
    files = sorted((data_dir / table).rglob("*.parquet"))
    tables = [pq.read_table(f) for f in files]
    return pa.concat_tables(tables) if tables else pa.table({})
