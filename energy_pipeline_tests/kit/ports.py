"""Loopback ports for tests: other engineers' tests run at the same time, so never a fixed one."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager


def free_ports(count: int) -> list[int]:
    """`count` distinct ports nobody listens on (all held open until every one is chosen)."""
    socks = []
    for _ in range(count):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def free_port() -> int:
    """A loopback port nobody listens on: for a server to take, or a device that is not there."""
    return free_ports(1)[0]


@contextmanager
def taken_port() -> Iterator[int]:
    """A loopback port somebody holds: it listens and the kernel completes the handshake, but
    nobody ever reads or answers (a busy port for a server, a mute device for a client)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock.getsockname()[1]


def wait_port(port: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"nothing listening on {port}")
