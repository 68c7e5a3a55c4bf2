"""One collector per id per lake: an flock on `<data_dir>/state/collector-<id>.lock`.

The kernel drops an flock when its holder exits in any way (kill -9 included), so a stale lock
never blocks a restart.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from energy_pipeline.lake.layout import state_dir


class CollectorRunning(RuntimeError):
    """Another live process already collects under this id into this lake."""


class CollectorLock:
    def __init__(self, data_dir: Path, collector_id: str):
        self.path = state_dir(data_dir) / f"collector-{collector_id}.lock"
        self.collector_id = collector_id
        self._fd: int | None = None

    def acquire(self, wait: float = 0.0) -> None:
        """Take the lock, retrying for up to `wait` seconds (a worker restarted by a new parent
        may find its predecessor still sealing)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() < deadline:
                    time.sleep(0.1)
                    continue
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                raise CollectorRunning(
                    f"collector {self.collector_id!r} is already running on "
                    f"{self.path.parent.parent} (pid {holder}); stop it first or give this one "
                    "another `collector.id`"
                ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> CollectorLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
