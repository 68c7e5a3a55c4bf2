"""Serial lines for simulated devices: a pty whose slave the driver opens by a configured path.

The configured `serial_port` becomes a symlink to the pty slave (`/dev/pts/N`), so the config
that talks to real hardware talks to the simulator unchanged. Anything at that path that is not
a symlink (a real device, a file) is never replaced.

`PtyBridge` joins two ptys back to back, like `socat pty pty`: pymodbus' serial server opens one
slave as if it were a serial adapter, the driver opens the other, and the bridge copies bytes
between the masters. The simulator keeps each slave open itself too, so a master never sees EIO
while nobody is connected.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tty
from pathlib import Path

from energy_pipeline.config import Config
from energy_pipeline.simulators import SimulatorError


class SerialLinkError(SimulatorError):
    pass


class Pty:
    """One pty pair, raw, both ends held open; `slave_path` is what a serial client opens."""

    def __init__(self) -> None:
        self.master_fd, self._slave_fd = os.openpty()
        tty.setraw(self._slave_fd)
        os.set_blocking(self.master_fd, False)
        self.slave_path = os.ttyname(self._slave_fd)

    def close(self) -> None:
        for fd in (self.master_fd, self._slave_fd):
            with contextlib.suppress(OSError):
                os.close(fd)


def link_path(config: Config, serial_port: str) -> Path:
    """Where the configured port's symlink goes: relative to the config file, like
    `config.resolve`, but without following symlinks (the link itself is what we manage)."""
    path = Path(serial_port).expanduser()
    # Not Path.resolve(): that would follow the very symlink we manage.
    return Path(os.path.abspath(path if path.is_absolute() else config.base_dir / path))  # noqa: PTH100


def link(path: Path, target: str) -> None:
    """Point `path` at `target`, replacing only an earlier symlink (atomically)."""
    if path.exists() and not path.is_symlink():
        raise SerialLinkError(
            f"{path} exists and is not a symlink; refusing to replace it with a simulator "
            "pty (point serial_port at a free path such as data/sim/<device>.tty)"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    tmp.symlink_to(target)
    os.replace(tmp, path)


def unlink(path: Path, target: str) -> None:
    """Remove the symlink if it still points at our pty (another run may have taken it)."""
    with contextlib.suppress(OSError):
        if path.is_symlink() and str(path.readlink()) == target:
            path.unlink()


class PtyBridge:
    """Copies bytes between the masters of two ptys; lost bytes are lost, as on a real line."""

    def __init__(self, a: Pty, b: Pty):
        self._pairs = ((a.master_fd, b.master_fd), (b.master_fd, a.master_fd))
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        for src, dst in self._pairs:
            self._loop.add_reader(src, self._copy, src, dst)

    def _copy(self, src: int, dst: int) -> None:
        try:
            data = os.read(src, 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            # Both slaves are held open, so this means the pty is gone: stop, never spin.
            if self._loop is not None:
                self._loop.remove_reader(src)
            return
        if not data:
            return
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(dst, data)

    def stop(self) -> None:
        if self._loop is not None:
            for src, _ in self._pairs:
                self._loop.remove_reader(src)
            self._loop = None
