"""Test hosts as Linux network namespaces: each has only its own loopback, so a process in one
cannot reach a listener in another, while all of them share this machine's filesystem (the
way shards on several machines share one lake on a network file system)."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

import pytest


def require_netns() -> str:
    """The `ip` program, where this process may create namespaces (root); skip elsewhere,
    fail under REQUIRE_EXTERNAL=1."""
    reason = None
    ip = shutil.which("ip")
    if os.geteuid() != 0:
        reason = "network namespaces need root"
    elif ip is None:
        reason = "ip (iproute2) not installed"
    if reason is None:
        assert ip is not None
        return ip
    if os.environ.get("REQUIRE_EXTERNAL") == "1":
        pytest.fail(f"{reason} (REQUIRE_EXTERNAL=1)")
    pytest.skip(reason)


@contextmanager
def netns_host(name: str) -> Iterator[list[str]]:
    """A fresh namespace with its loopback up; yields the prefix that runs a command in it.
    The namespace is deleted afterwards, whatever happened."""
    ip = require_netns()
    ns = f"ep-{name}-{secrets.token_hex(3)}"
    subprocess.run([ip, "netns", "add", ns], check=True, capture_output=True, timeout=30)
    try:
        subprocess.run(
            [ip, "-n", ns, "link", "set", "lo", "up"], check=True, capture_output=True, timeout=30
        )
        yield [ip, "netns", "exec", ns]
    finally:
        subprocess.run([ip, "netns", "del", ns], capture_output=True, timeout=30, check=False)
