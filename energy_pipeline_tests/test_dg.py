"""The project as dg sees it: `dg check defs` and `dg list defs` load the definitions through
`[tool.dg]` in pyproject.toml, with every asset described and every daily asset partitioned."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from energy_pipeline_tests.conftest import REPO, cli_env


def _dg(*args: str, config: Path) -> subprocess.CompletedProcess[str]:
    dg = shutil.which("dg", path=str(Path(sys.executable).parent))
    assert dg, "dagster-dg-cli is in the dev extra"
    env = cli_env(
        {
            "ENERGY_PIPELINE_CONFIG": str(config),
            "VIRTUAL_ENV": str(Path(sys.executable).parent.parent),
        }
    )
    env.pop("DAGSTER_HOME", None)
    return subprocess.run(
        [dg, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=240, check=False
    )


def test_dg_checks_and_lists_the_definitions(tmp_path: Path) -> None:
    config = tmp_path / "site.yaml"
    config.write_text((REPO / "energy-pipeline.yaml").read_text())
    checked = _dg("check", "defs", config=config)
    assert checked.returncode == 0, checked.stderr[-3000:]
    assert "All definitions loaded successfully" in checked.stdout + checked.stderr
    listed = _dg("list", "defs", "--json", config=config)
    assert listed.returncode == 0, listed.stderr[-3000:]
    assets = {a["asset_key"]: a for a in json.loads(listed.stdout)["assets"]}
    assert {"minute_readings", "daily_readings", "load_forecast", "forecast_accuracy"} <= set(
        assets
    )
    assert all(a["description"] for a in assets.values())
