"""The systemd notify protocol (sd_notify(3)) without libsystemd: newline-separated
`KEY=value` assignments in one datagram to the AF_UNIX socket named by `NOTIFY_SOCKET`.

A name starting with `@` is in the abstract namespace (a leading NUL byte on the wire). A
manager that is gone or a full socket buffer must never stop the collector, so sending is
best effort and only logged.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger("energy_pipeline.ops.notify")

READY = "READY=1"
STOPPING = "STOPPING=1"
WATCHDOG = "WATCHDOG=1"


def message(*assignments: str, status: str | None = None) -> bytes:
    """One datagram; `status` is cut to its first line (STATUS= is one line by contract)."""
    parts = list(assignments)
    if status is not None:
        parts.append("STATUS=" + (status.splitlines() or [""])[0])
    return "\n".join(parts).encode()


def socket_address(name: str) -> str | bytes:
    if name.startswith("@"):
        return b"\0" + name[1:].encode()
    return name


def watchdog_interval(environ: Mapping[str, str], pid: int) -> float | None:
    """Half of WATCHDOG_USEC in seconds (systemd's advice), or None when the manager asks for
    no pings, or asks another process (WATCHDOG_PID)."""
    usec = environ.get("WATCHDOG_USEC", "")
    owner = environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if owner and (not owner.isdigit() or int(owner) != pid):
        return None
    return int(usec) / 2_000_000


class Notifier:
    """A datagram socket to the manager; `send` never raises."""

    def __init__(self, name: str):
        self.name = name
        self._address = socket_address(name)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self._sock.setblocking(False)
        self._failing = False

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Notifier | None:
        name = (os.environ if environ is None else environ).get("NOTIFY_SOCKET", "")
        return cls(name) if name else None

    def send(self, payload: bytes) -> bool:
        try:
            self._sock.sendto(payload, self._address)
        except OSError as exc:
            if not self._failing:
                log.warning(
                    "service manager did not take a notification",
                    extra={"fields": {"socket": self.name, "error": exc}},
                )
            self._failing = True
            return False
        self._failing = False
        return True

    def close(self) -> None:
        self._sock.close()
