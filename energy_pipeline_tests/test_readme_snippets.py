"""The README's "From Python and SQL" snippets run as written, from the folder holding data/,
on the simulated lake."""

from __future__ import annotations

import re
import subprocess
import sys

from energy_pipeline_tests.conftest import REPO, cli_env


def _section(title: str) -> str:
    text = (REPO / "README.md").read_text()
    start = text.index(f"## {title}")
    return text[start : text.index("\n## ", start + 1)]


def test_python_snippets_run_on_the_simulated_lake(simulated_lake) -> None:
    config, _ = simulated_lake
    snippets = re.findall(r"```python\n(.*?)```", _section("From Python and SQL"), re.S)
    assert [s.split("\n")[0] for s in snippets] == [
        "import pandas as pd",
        "import polars as pl",
        "import duckdb",
    ]
    for code in snippets:
        done = subprocess.run(
            [sys.executable, "-c", code],
            cwd=config.data_dir.parent,
            env=cli_env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, f"{code}\n{done.stderr[-2000:]}"
        assert done.stdout.strip()


def test_sql_snippet_runs(simulated_lake) -> None:
    config, _ = simulated_lake
    (command,) = re.findall(
        r"```sh\n(energy-pipeline sql .*?)```", _section("From Python and SQL"), re.S
    )
    query = command.split('"', 1)[1].rsplit('"', 1)[0]
    done = subprocess.run(
        [sys.executable, "-m", "energy_pipeline", "sql", "--config", str(config.path), query],
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "energy_active_import_total" in done.stdout and "Wh" in done.stdout
