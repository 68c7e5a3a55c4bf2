"""Test hosts as Linux network namespaces: each has only its own loopback, so a process in one
cannot reach a listener in another, while all of them share this machine's filesystem (the
way shards on several machines share one lake on a network file system)."""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

from energy_pipeline_tests.conftest import missing_external, require_program


def require_netns() -> str:
    """The `ip` program, where this process may create namespaces (root); skip elsewhere,
    fail under REQUIRE_EXTERNAL=1."""
    if os.geteuid() != 0:
        missing_external("network namespaces need root")
    return require_program("ip")


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
