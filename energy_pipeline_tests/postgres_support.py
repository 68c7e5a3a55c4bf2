"""A throwaway PostgreSQL cluster for tests: Debian's server binaries, initdb in a temporary
folder, listening on 127.0.0.1 at a free port with its socket in that folder, stopped and
deleted afterwards.

PostgreSQL refuses to run as root (CI is root), so as root the cluster belongs to the
`postgres` system user that Debian's package creates and its commands run through `runuser`.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from energy_pipeline_tests.conftest import missing_external
from energy_pipeline_tests.kit.ports import free_port

SERVER_USER = "postgres"
DB_USER = "dagster"
DB_NAME = "dagster"
# A cluster that lives for one test needs no crash safety; these keep its writes cheap.
FAST = "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"


@dataclass(frozen=True)
class Cluster:
    host: str
    port: int
    user: str
    password: str
    db: str

    def dagster_env(self) -> dict[str, str]:
        """The variables deploy/dagster/dagster.postgres.yaml reads."""
        return {
            "DAGSTER_PG_HOST": self.host,
            "DAGSTER_PG_PORT": str(self.port),
            "DAGSTER_PG_USER": self.user,
            "DAGSTER_PG_PASSWORD": self.password,
            "DAGSTER_PG_DB": self.db,
        }


def server_bin() -> Path | None:
    """The newest installed server's bin folder (/usr/lib/postgresql/<ver>/bin on Debian,
    which is not on PATH), else the folder of an `initdb` on PATH."""
    found = sorted(
        (p.parent for p in Path("/usr/lib/postgresql").glob("*/bin/pg_ctl")),
        key=lambda d: int(d.parent.name) if d.parent.name.isdigit() else 0,
    )
    if found:
        return found[-1]
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _runner() -> tuple[list[str], int | None]:
    """The command prefix that runs a server command as a non-root user, and that user's uid."""
    if os.geteuid() != 0:
        return [], None
    try:
        uid = pwd.getpwnam(SERVER_USER).pw_uid
    except KeyError:
        missing_external(f"running as root and there is no {SERVER_USER!r} user to own the cluster")
    if not shutil.which("runuser"):
        missing_external("running as root and runuser (util-linux) is not installed")
    return ["runuser", "-u", SERVER_USER, "--"], uid


@contextmanager
def postgres_cluster(password: str = "pw-test-only") -> Iterator[Cluster]:
    bindir = server_bin()
    if bindir is None:
        missing_external("PostgreSQL server binaries (initdb, pg_ctl) not installed")
    prefix, uid = _runner()
    # Not under pytest's tmp_path: its parents are private to root, the server user cannot enter.
    root = Path(tempfile.mkdtemp(prefix="ep-pg-"))
    data, sock, log = root / "data", root / "sock", root / "server.log"
    sock.mkdir()
    pwfile = root / "pw"
    pwfile.write_text(password + "\n")
    if uid is not None:
        for path in (root, sock, pwfile):
            os.chown(path, uid, -1)
    port = free_port()

    def run(*args: str) -> None:
        done = subprocess.run(
            [*prefix, *args], capture_output=True, text=True, timeout=120, check=False
        )
        if done.returncode != 0:
            server_log = log.read_text() if log.exists() else ""
            raise RuntimeError(f"{args[0]} failed: {done.stderr}{done.stdout}{server_log}")

    started = False
    try:
        run(
            str(bindir / "initdb"),
            "-D",
            str(data),
            "-U",
            DB_USER,
            f"--pwfile={pwfile}",
            "--auth-host=scram-sha-256",
            "--auth-local=trust",
            "-E",
            "UTF8",
            "--no-sync",
        )
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {sock} {FAST}"
        run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "start")
        started = True
        run(str(bindir / "createdb"), "-h", str(sock), "-p", str(port), "-U", DB_USER, DB_NAME)
        yield Cluster("127.0.0.1", port, DB_USER, password, DB_NAME)
    finally:
        if started:
            subprocess.run(
                [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                capture_output=True,
                timeout=60,
                check=False,
            )
        shutil.rmtree(root, ignore_errors=True)
