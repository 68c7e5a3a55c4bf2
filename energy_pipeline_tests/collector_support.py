"""Real processes for the collector's integration tests: the simulators and the collector,
each `python -m energy_pipeline ...` in its own process, on free loopback ports."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from energy_pipeline_tests.kit.sims import python
from energy_pipeline_tests.kit.sites import write_site


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


def collector_site(folder: Path, devices: list[dict], data_dir: Path | None = None, **collector):
    """A site whose collector seals and retries quickly; the lake under `folder/data` unless
    `data_dir` is given."""
    settings = {"seal_delay": 1, "backoff_initial": 1, "backoff_max": 2, **collector}
    return write_site(folder, devices, data_dir=data_dir or folder / "data", collector=settings)


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


def fill(folder: Path) -> Path:
    filler = folder / "filler"
    with open(filler, "wb") as fh:
        chunk = b"\0" * 65536
        try:
            while True:
                fh.write(chunk)
                fh.flush()
        except OSError:
            pass
    return filler
