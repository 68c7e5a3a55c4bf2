"""One openvpn process and how other processes find it.

openvpn runs as a child in its own session (so it outlives `vpn up` and a terminal's Ctrl-C
reaches only the product, which then stops it in order). Its record,
`<data_dir>/state/vpn-<name>.json`, holds its pid, management port and owner, and the owner
rewrites the tunnel's state into it while it watches: openvpn's management interface takes one
client at a time, so a collector that holds it publishes what it sees, and others read that
instead of a second connection. The management interface is password protected (a random
password per start in a 0600 file beside the record): any local user could otherwise stop the
tunnel or read its addresses.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from energy_pipeline.collector.state import TunnelState
from energy_pipeline.collector.status import tunnel_document
from energy_pipeline.config import Config, VpnTunnel
from energy_pipeline.lake.files import atomic_write_bytes
from energy_pipeline.lake.layout import state_dir
from energy_pipeline.logs import redact, register_secret
from energy_pipeline.ops.vpn import management as mgmt

log = logging.getLogger("energy_pipeline.vpn")

SBIN = ("/usr/sbin", "/sbin", "/usr/local/sbin")


class VpnError(Exception):
    """A tunnel could not be started, reached or stopped; the text never holds credentials."""


def openvpn_binary() -> str:
    """openvpn lives in sbin, which a plain user's PATH often lacks."""
    found = shutil.which("openvpn") or shutil.which("openvpn", path=os.pathsep.join(SBIN))
    if not found:
        raise VpnError("openvpn is not installed (Debian/Ubuntu: apt install openvpn)")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def utc_now() -> datetime:
    return datetime.now(UTC)


# -- the record ----------------------------------------------------------------------------


def _path(data_dir: Path, name: str, suffix: str) -> Path:
    return state_dir(data_dir) / f"vpn-{name}{suffix}"


def record_path(data_dir: Path, name: str) -> Path:
    return _path(data_dir, name, ".json")


def log_path(data_dir: Path, name: str) -> Path:
    return _path(data_dir, name, ".log")


@dataclass(slots=True)
class TunnelRecord:
    name: str
    pid: int
    management_port: int
    config: str
    owner: str
    owner_pid: int | None
    started_at: str
    status: dict[str, Any] = field(default_factory=dict)

    def document(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "pid": self.pid,
            "management_port": self.management_port,
            "config": self.config,
            "owner": self.owner,
            "owner_pid": self.owner_pid,
            "started_at": self.started_at,
            "status": self.status,
        }


def read_record(data_dir: Path, name: str) -> TunnelRecord | None:
    try:
        doc = json.loads(record_path(data_dir, name).read_text())
        return TunnelRecord(**doc)
    except (OSError, ValueError, TypeError):
        return None


def write_record(data_dir: Path, record: TunnelRecord) -> None:
    path = record_path(data_dir, record.name)
    atomic_write_bytes(path, json.dumps(record.document(), indent=2).encode())


def remove_record(data_dir: Path, name: str) -> None:
    for suffix in (".json", ".mgmt"):
        _path(data_dir, name, suffix).unlink(missing_ok=True)


def management_password(data_dir: Path, name: str) -> str | None:
    try:
        text = _path(data_dir, name, ".mgmt").read_text().strip()
    except OSError:
        return None
    register_secret(text)
    return text


def _new_password(data_dir: Path, name: str) -> Path:
    path = _path(data_dir, name, ".mgmt")
    path.parent.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(24)
    register_secret(password)
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(password + "\n")
    return path


@contextlib.asynccontextmanager
async def tunnel_lock(data_dir: Path) -> AsyncIterator[None]:
    """One process at a time decides whether a tunnel runs (find it, or start it), so two
    commands started together never run two openvpn with the same credentials. Waiting for
    the lock happens in a thread: the collector's event loop keeps ticking meanwhile."""
    path = state_dir(data_dir) / "vpn.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        await asyncio.to_thread(fcntl.flock, fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


# -- processes -----------------------------------------------------------------------------


def pid_alive(pid: int | None) -> bool:
    """Alive and not a zombie (an orphaned openvpn whose reaper is slow must count as gone)."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def is_openvpn(pid: int | None) -> bool:
    """The recorded pid is still an openvpn (not a recycled pid of something else)."""
    if not pid_alive(pid):
        return False
    try:
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
    except OSError:
        return False
    return Path(os.fsdecode(argv0)).name == "openvpn"


def openvpn_argv(
    binary: str, tunnel: VpnTunnel, config: Config, port: int, password: Path
) -> list[str]:
    """The user's .ovpn, then what the product needs: its management interface on loopback,
    held until released (so the state notifications are on before anything happens)."""
    ovpn = config.resolve(tunnel.config)
    argv = [
        binary,
        "--cd",
        str(ovpn.parent),
        "--config",
        str(ovpn),
        "--management",
        "127.0.0.1",
        str(port),
        str(password),
        "--management-hold",
    ]
    if tunnel.auth is not None:
        argv += ["--auth-user-pass", str(config.resolve(tunnel.auth))]
    return argv


def spawn(name: str, tunnel: VpnTunnel, config: Config) -> tuple[subprocess.Popen[bytes], int]:
    """Start openvpn for the tunnel (held); returns the process and its management port."""
    data_dir = config.data_dir
    port = tunnel.management_port or free_port()
    password = _new_password(data_dir, name)
    argv = openvpn_argv(openvpn_binary(), tunnel, config, port, password)
    out = log_path(data_dir, name)
    with open(out, "wb") as fh:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    return proc, port


def kill_wait(pid: int, timeout: float) -> bool:
    """SIGTERM, then SIGKILL after `timeout`; True once the pid is gone."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 2.0)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        if wait_gone(pid, wait):
            return True
    return not pid_alive(pid)


def wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # our own child: reap it, or it stays a zombie
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    return False


# -- the management connection -----------------------------------------------------------


class ManagementClient:
    """An asyncio connection to one openvpn's management interface: commands with their
    replies in order, notifications into a queue, and `closed` once openvpn hangs up."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader = reader
        self.writer = writer
        self.parser = mgmt.ManagementParser()
        self.notifications: asyncio.Queue[mgmt.Notification] = asyncio.Queue()
        self.closed = asyncio.Event()
        self._waiting: deque[asyncio.Future[mgmt.Reply | mgmt.Block]] = deque()
        self._prompt: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None

    @classmethod
    async def connect(
        cls, port: int, password: str | None, timeout: float = 3.0
    ) -> ManagementClient:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", port), timeout
            )
        except (OSError, TimeoutError) as exc:
            raise VpnError(f"management port {port} does not answer: {exc or 'timeout'}") from None
        client = cls(reader, writer)
        client._prompt = asyncio.get_running_loop().create_future()
        client._task = asyncio.create_task(client._read(), name=f"vpn-management-{port}")
        if password is not None:
            try:
                await asyncio.wait_for(asyncio.shield(client._prompt), timeout)
                reply = await client.command(password.encode() + b"\n", timeout, shown="password")
            except (TimeoutError, VpnError):
                await client.close()
                raise VpnError(f"management port {port}: no password exchange") from None
            if not isinstance(reply, mgmt.Reply) or not reply.ok:
                await client.close()
                raise VpnError(f"management port {port} refused the management password")
        return client

    async def _read(self) -> None:
        try:
            while data := await self.reader.read(65536):
                for event in self.parser.feed(data):
                    self._dispatch(event)
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self.closed.set()
            while self._waiting:
                fut = self._waiting.popleft()
                if not fut.done():
                    fut.set_exception(VpnError("openvpn closed the management connection"))

    def _dispatch(self, event: mgmt.Event) -> None:
        if isinstance(event, mgmt.Notification):
            self.notifications.put_nowait(event)
        elif isinstance(event, mgmt.PasswordPrompt):
            if self._prompt is not None and not self._prompt.done():
                self._prompt.set_result(None)
        elif isinstance(event, mgmt.Reply | mgmt.Block):
            if self._waiting:
                fut = self._waiting.popleft()
                if not fut.done():
                    fut.set_result(event)
        else:
            log.debug("unexpected management line", extra={"fields": {"line": event.line[:200]}})

    async def command(
        self, line: bytes, timeout: float = 5.0, shown: str | None = None
    ) -> mgmt.Reply | mgmt.Block:
        """Send one command and wait for its reply; `shown` names a secret line for the parser."""
        if self.closed.is_set():
            raise VpnError("openvpn closed the management connection")
        fut: asyncio.Future[mgmt.Reply | mgmt.Block] = asyncio.get_running_loop().create_future()
        self._waiting.append(fut)
        self.parser.sent(shown or line.decode().strip())
        self.writer.write(line)
        try:
            await self.writer.drain()
            return await asyncio.wait_for(fut, timeout)
        except (OSError, TimeoutError):
            raise VpnError(f"no management reply to {shown or line.decode().strip()}") from None

    async def ok(self, line: bytes, timeout: float = 5.0) -> str:
        reply = await self.command(line, timeout)
        if not isinstance(reply, mgmt.Reply) or not reply.ok:
            text = reply.text if isinstance(reply, mgmt.Reply) else "a block"
            raise VpnError(f"openvpn refused {line.decode().strip()!r}: {redact(text)}")
        return reply.text

    async def state(self) -> mgmt.StateLine | None:
        reply = await self.command(mgmt.STATE)
        if isinstance(reply, mgmt.Block) and reply.lines:
            return mgmt.parse_state(reply.lines[-1])
        return None

    async def byte_totals(self) -> tuple[int, int] | None:
        reply = await self.command(mgmt.STATUS)
        return mgmt.parse_status_bytes(reply.lines) if isinstance(reply, mgmt.Block) else None

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def apply_state(status: TunnelState, line: mgmt.StateLine) -> bool:
    """Fold a state report into the tunnel's state; True when the state name changed."""
    changed = line.name != status.state
    if changed:
        status.state = line.name
        status.since = datetime.fromtimestamp(line.time, UTC)
    if line.name == mgmt.CONNECTED:
        status.local_ip, status.remote_ip = line.local_ip, line.remote_ip
    elif changed:
        status.local_ip = status.remote_ip = None
    return changed


def status_from_record(record: TunnelRecord) -> TunnelState:
    doc = record.status
    since = doc.get("since")
    return TunnelState(
        name=record.name,
        state=str(doc.get("state", "DOWN")),
        since=datetime.fromisoformat(since) if since else None,
        local_ip=doc.get("local_ip"),
        remote_ip=doc.get("remote_ip"),
        bytes_in=int(doc.get("bytes_in", 0)),
        bytes_out=int(doc.get("bytes_out", 0)),
        restarts=int(doc.get("restarts", 0)),
        last_error=doc.get("last_error"),
        pid=record.pid,
        management_port=record.management_port,
    )


def publish(data_dir: Path, record: TunnelRecord, status: TunnelState) -> None:
    record.status = tunnel_document(status)
    write_record(data_dir, record)
