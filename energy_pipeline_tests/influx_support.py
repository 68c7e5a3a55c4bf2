"""A real InfluxDB 1.x (Debian's `influxd`) for the tests: its own config file, data, meta and
WAL folders under tmp, HTTP and RPC on free loopback ports, no reporting, no other listeners;
stoppable and restartable on the same port. Queried with InfluxQL over HTTP `/query`."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from energy_pipeline_tests.kit.ports import free_port

CONFIG = """\
reporting-disabled = true
bind-address = "127.0.0.1:{rpc}"

[meta]
  dir = "{root}/meta"
  logging-enabled = false

[data]
  dir = "{root}/data"
  wal-dir = "{root}/wal"
  query-log-enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:{http}"
  log-enabled = false
  pprof-enabled = false

[monitor]
  store-enabled = false

[subscriber]
  enabled = false

[continuous_queries]
  enabled = false

[logging]
  level = "warn"
  suppress-logo = true
"""


class Influxd:
    def __init__(self, program: str, folder: Path):
        self.program = program
        self.root = folder / "influxdb"
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.conf = self.root / "influxdb.conf"
        self.conf.write_text(CONFIG.format(rpc=free_port(), http=self.port, root=self.root))
        self.log = self.root / "influxd.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [self.program, "-config", str(self.conf)], stdout=log, stderr=log
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"influxd exited: {self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/ping", timeout=1) as r:
                    if r.status == 204:
                        return
            except OSError:
                time.sleep(0.05)
        raise TimeoutError(f"influxd did not answer /ping: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
            self.proc = None

    def query(self, q: str, db: str | None = None, epoch: str = "ms") -> list[dict[str, Any]]:
        """The series of one InfluxQL statement (POST, so it may create or drop things)."""
        params = {"q": q, "epoch": epoch, **({"db": db} if db else {})}
        body = urllib.parse.urlencode(params).encode()
        with urllib.request.urlopen(f"{self.url}/query", body, timeout=60) as r:
            doc = json.loads(r.read())
        result = doc["results"][0]
        if "error" in result:
            raise RuntimeError(result["error"])
        return result.get("series", [])

    def rows(self, q: str, db: str, epoch: str = "ms") -> list[dict[str, Any]]:
        """Every row of every series as a dict, tags included."""
        out = []
        for series in self.query(q, db, epoch):
            for values in series["values"]:
                out.append(
                    {**series.get("tags", {}), **dict(zip(series["columns"], values, strict=True))}
                )
        return out

    def count(self, db: str, measurement: str = "energy") -> int:
        """Points (instants of a series) in a measurement."""
        rows = self.rows(f'SELECT * FROM "{measurement}"', db)
        return len(rows)
