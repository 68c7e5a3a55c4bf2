"""One process per serial port: an flock'ed file under `<data_dir>/state/` that holds the pid.

Two processes talking on one RS-485 bus or one Wi-SUN dongle corrupt each other's frames, so a
serial driver takes this lock before opening the port. `poll-once` run beside the collector
then says which pid holds the port instead of fighting over it. flock dies with its process, so
a crashed holder never leaves a stale lock behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
from collections.abc import Iterator
from pathlib import Path

from energy_pipeline.drivers.base import PortBusyError

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def lock_path(port: str | Path, data_dir: Path) -> Path:
    """The lock file of a port; symlinks (by-id names, simulator links) resolve to one device."""
    real = os.path.realpath(port)
    name = _UNSAFE.sub("_", real.strip("/")) or "port"
    return data_dir / "state" / f"serial-{name}.lock"


def _holder(fd: int) -> str:
    with contextlib.suppress(OSError, ValueError):
        text = os.pread(fd, 32, 0).decode().strip()
        if text:
            return str(int(text))
    return "unknown"


@contextlib.contextmanager
def hold_port(port: str | Path, data_dir: Path, *, owner: str | None = None) -> Iterator[Path]:
    """Hold `port` exclusively for the `with` block; PortBusyError names the holding pid.

    `owner` (a device id) names who asked, for the error message.
    """
    path = lock_path(port, data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise PortBusyError(
                owner or str(port),
                f"serial port {port} is in use by pid {_holder(fd)} "
                "(is the collector running? stop it or poll through it)",
                where=str(path),
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            yield path
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
