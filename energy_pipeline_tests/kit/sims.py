"""`energy-pipeline` verbs as real child processes, the simulators first among them."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from energy_pipeline_tests.conftest import REPO, cli_env


def python(*args: str, **kw: Any) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "energy_pipeline", *args], env=cli_env(), cwd=REPO, **kw
    )


def stop(proc: subprocess.Popen, timeout: float = 10) -> int:
    """SIGTERM, as systemd stops the service; killed if it outlives `timeout`. Its exit code."""
    proc.terminate()
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


@contextmanager
def simulators(config: Path) -> Iterator[list[str]]:
    """`energy-pipeline simulate` for the config; yields its endpoint lines once listening, and
    checks on the way out that SIGTERM stops it cleanly (unless the test failed already)."""
    proc = python("simulate", "--config", str(config), "--json", stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"simulator exited with {proc.wait(5)}")
        yield json.loads(line)["endpoints"]
    except BaseException:
        stop(proc)
        raise
    assert stop(proc) == 0, "the simulators did not exit cleanly on SIGTERM"
