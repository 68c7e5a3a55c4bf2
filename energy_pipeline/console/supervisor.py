"""Child processes started, watched and stopped in order, each by its own pid.

Each child runs in its own session (Ctrl-C reaches only the parent, which then stops the
children in reverse order), logs to its own file, and is sent SIGTERM and, after
`STOP_TIMEOUT`, killed.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

STOP_TIMEOUT = 20.0


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[str]
    log: Path
    reported: bool = False


def spawn(
    name: str,
    args: list[str],
    *,
    log_dir: Path,
    env: dict[str, str],
    cwd: Path,
    pipe_stdout: bool = False,
) -> Child:
    """Start `args`; stderr (and stdout unless piped) go to `log_dir/<name>.log`."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    with open(log_path, "a") as log_file:
        proc = subprocess.Popen(
            args,
            stdout=subprocess.PIPE if pipe_stdout else log_file,
            stderr=log_file,
            text=True,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
    return Child(name, proc, log_path)


def stop(child: Child, out: TextIO) -> None:
    """SIGTERM, then SIGKILL after STOP_TIMEOUT; reports the exit once."""
    if child.reported:
        return
    child.reported = True
    if child.proc.poll() is None:
        child.proc.send_signal(signal.SIGTERM)
        try:
            child.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            print(f"  {child.name} did not stop in {STOP_TIMEOUT:.0f} s; killing it", file=out)
            child.proc.kill()
            child.proc.wait()
    print(f"  stopped {child.name} (exit {child.proc.returncode})", file=out, flush=True)


def wait(stop_event: threading.Event, seconds: float | None, children: list[Child]) -> str | None:
    """Sleep until `stop_event`, the deadline, or a child's death (named in the return value)."""
    deadline = None if seconds is None else time.monotonic() + seconds
    while not stop_event.is_set():
        for child in children:
            if child.proc.poll() is not None:
                return child.name
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            return None
        stop_event.wait(1.0 if left is None else min(1.0, left))
    return None
