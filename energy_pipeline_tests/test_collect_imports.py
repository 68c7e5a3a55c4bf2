"""The long-running collector loads only what it uses: no pandas, Dagster or psutil, and DuckDB
only when a history request asks for it. Each of those costs tens of MB in every worker."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("pandas", "dagster", "duckdb", "psutil")


def test_collect_imports_no_heavy_package() -> None:
    code = (
        "import json, sys\n"
        "from energy_pipeline import cli\n"
        "from energy_pipeline.collector.collect import run_collect\n"
        "from energy_pipeline.live import build_sinks\n"
        "from energy_pipeline.drivers.registry import build_drivers\n"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []
