"""The long-running collector loads only what it uses: no pandas, Dagster or psutil, no Arrow
(its seal process writes Parquet), DuckDB only when a history request asks for it, and an
output's client library only when it is configured. Each of those costs MBs to tens of MB in
every collector process, for as long as it runs."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from energy_pipeline_tests.collector_support import acked, collector_site, janitza, wait_for
from energy_pipeline_tests.conftest import REPO, cli_env
from energy_pipeline_tests.kit.ports import free_port, free_ports
from energy_pipeline_tests.kit.sims import simulators

HEAVY = ("pandas", "dagster", "duckdb", "psutil", "pyarrow")
UNCONFIGURED = ("paho",)
"""Client libraries of outputs the test site does not configure."""


def test_collect_imports_no_heavy_package() -> None:
    code = (
        "import json, sys\n"
        "from energy_pipeline import cli\n"
        "from energy_pipeline.collector.collect import run_collect\n"
        "from energy_pipeline.live import build_sinks\n"
        "from energy_pipeline.drivers.registry import build_drivers\n"
        f"print(json.dumps(sorted(m for m in {HEAVY + UNCONFIGURED!r} if m in sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


AT_EXIT = (
    "import atexit, json, runpy, sys\n"
    "out = sys.argv.pop(1)\n"
    "def dump():\n"
    "    open(out, 'w').write(json.dumps(sorted(sys.modules)))\n"
    "atexit.register(dump)\n"
    "runpy.run_module('energy_pipeline', run_name='__main__', alter_sys=True)\n"
)
"""`python -m energy_pipeline ...` that writes its `sys.modules` to a file as it exits."""


@pytest.mark.slow  # a simulator and the collector as processes, stopped after sealing
def test_a_running_collector_never_imports_a_heavy_package(tmp_path: Path) -> None:
    """The real `collect` after polls, live HTTP requests (dashboard, API, /metrics, the chart
    without a history query) and the seals (by its seal process) on SIGTERM: its modules as it
    exits."""
    http = free_port()
    config = collector_site(tmp_path, [janitza("umg1", free_ports(1)[0])])
    with config.open("a") as fh:
        fh.write(f"outputs: {{http: {{port: {http}}}}}\n")
    data = tmp_path / "data"
    dump = tmp_path / "modules.json"
    with simulators(config):
        proc = subprocess.Popen(
            [sys.executable, "-c", AT_EXIT, str(dump), "collect", "--config", str(config)],
            env=cli_env(),
            cwd=REPO,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            wait_for(lambda: len(acked(data, proc.pid)) == 1, 30, "a first acknowledged poll")
            for path in ("/", "/api/devices", "/api/history", "/metrics"):
                with urllib.request.urlopen(f"http://127.0.0.1:{http}{path}", timeout=10) as r:
                    assert r.status == 200, path
            proc.send_signal(signal.SIGTERM)
            _, stderr = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 0, stderr[-2000:]
    assert list((data / "raw_readings").rglob("*.parquet")), "nothing sealed"
    modules = set(json.loads(dump.read_text()))
    assert {"energy_pipeline.collector.sealer", "energy_pipeline.live.http"} <= modules
    tops = {m.partition(".")[0] for m in modules}
    assert sorted(tops & {*HEAVY, *UNCONFIGURED}) == []
