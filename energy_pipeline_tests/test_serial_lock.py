"""One process per serial port: the second holder learns the first one's pid."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from energy_pipeline.drivers.base import PortBusyError
from energy_pipeline.drivers.serial_lock import hold_port, lock_path
from energy_pipeline_tests.conftest import REPO


def test_second_process_is_refused_with_the_holder_pid(tmp_path: Path) -> None:
    port = tmp_path / "ttyUSB0"
    port.touch()
    script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from energy_pipeline.drivers.serial_lock import hold_port
        with hold_port({str(port)!r}, Path({str(tmp_path)!r})):
            print("held", flush=True)
            sys.stdin.readline()
        """
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "held"
        with (
            pytest.raises(PortBusyError, match=rf"in use by pid {child.pid}") as info,
            hold_port(port, tmp_path, owner="ups1"),
        ):
            pass
        assert info.value.device_id == "ups1" and info.value.kind == "busy"
    finally:
        assert child.stdin is not None
        child.stdin.write("\n")
        child.stdin.close()
        child.wait(timeout=10)
    with hold_port(port, tmp_path) as path:  # released when the holder exits
        assert path.read_text().strip() == str(os.getpid())


def test_symlinked_names_share_one_lock(tmp_path: Path) -> None:
    real = tmp_path / "ttyUSB0"
    real.touch()
    link = tmp_path / "by-id-link"
    link.symlink_to(real)
    assert lock_path(link, tmp_path) == lock_path(real, tmp_path)
    assert lock_path(real, tmp_path).parent == tmp_path / "state"
    with hold_port(real, tmp_path), pytest.raises(PortBusyError), hold_port(link, tmp_path):
        pass
