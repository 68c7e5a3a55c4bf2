"""Supervision of site tunnels: what `collect`, `poll-once`, `health` and `vpn up|down|status`
ask for.

A tunnel runs at most once per data directory: whoever needs it first finds the running one
through its record (under a lock) or starts it; everyone else uses that one. `collect` watches
its tunnels through the management interface's state notifications, restarts a tunnel that
exits or stays unconnected past `connect_timeout` with capped backoff, and tells the collector
which devices are behind a tunnel that is down. One-shot verbs bring an `auto` tunnel up for
the call and down after, unless a tunnel already runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from energy_pipeline.collector.backoff import Backoff
from energy_pipeline.collector.state import CollectorState, TunnelState
from energy_pipeline.config import Config, Device
from energy_pipeline.logs import redact
from energy_pipeline.ops.vpn import management as mgmt
from energy_pipeline.ops.vpn.tunnel import (
    ManagementClient,
    TunnelRecord,
    VpnError,
    apply_state,
    is_openvpn,
    kill_wait,
    log_path,
    management_password,
    pid_alive,
    publish,
    read_record,
    remove_record,
    spawn,
    status_from_record,
    tunnel_lock,
    utc_now,
    wait_gone,
)

log = logging.getLogger("energy_pipeline.vpn")

BYTECOUNT_SECONDS = 5
STOP_TIMEOUT = 5.0
RESTART_INITIAL, RESTART_CAP = 1.0, 60.0
MANUAL_RECHECK_CAP = 10.0


@dataclass(slots=True)
class Session:
    """A tunnel this process talks to: its management connection, and its process when this
    process started it."""

    record: TunnelRecord
    client: ManagementClient
    status: TunnelState
    proc: subprocess.Popen[bytes] | None = None


def absorb(status: TunnelState, note: mgmt.Notification) -> bool:
    """Fold a notification into the tunnel's state; True when something worth publishing changed."""
    if note.kind == "STATE":
        line = mgmt.parse_state(note.text)
        if line is None:
            return False
        changed = apply_state(status, line)
        if line.name in ("EXITING", "RECONNECTING") and line.description:
            status.last_error = f"openvpn {line.name.lower()}: {redact(line.description)}"
        return changed or line.name == mgmt.CONNECTED
    if note.kind == "BYTECOUNT":
        counts = mgmt.parse_bytecount(note.text)
        if counts is None:
            return False
        status.bytes_in, status.bytes_out = counts
        return True
    if note.kind == "FATAL":
        status.last_error = f"openvpn: {redact(note.text)}"
        return True
    if note.kind == "PASSWORD" and "Verification Failed" in note.text:
        status.last_error = "the VPN server refused the user name or password"
        return True
    return False


async def _connect_new(
    proc: subprocess.Popen[bytes], port: int, password: str | None
) -> ManagementClient:
    """openvpn opens its management port a moment after it starts: retry until it does."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10.0
    while True:
        try:
            return await ManagementClient.connect(port, password, timeout=2.0)
        except VpnError:
            if proc.poll() is not None:
                raise VpnError(f"openvpn exited with code {proc.returncode}") from None
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.05)


async def _prime(client: ManagementClient, status: TunnelState) -> None:
    """Notifications on, no hold on later restarts, then go (or carry on, if already running)."""
    await client.ok(mgmt.STATE_ON)
    await client.ok(mgmt.HOLD_OFF)
    await client.ok(mgmt.bytecount(BYTECOUNT_SECONDS))
    line = await client.state()
    if line is not None:
        apply_state(status, line)
    await client.ok(mgmt.HOLD_RELEASE)


async def start_tunnel(
    config: Config, name: str, owner: str, status: TunnelState | None = None
) -> Session:
    """Start openvpn for the tunnel and release it; the caller waits for CONNECTED."""
    tunnel = config.vpn[name]
    proc, port = await asyncio.to_thread(spawn, name, tunnel, config)
    record = TunnelRecord(
        name,
        proc.pid,
        port,
        str(config.resolve(tunnel.config)),
        owner,
        os.getpid(),
        utc_now().isoformat(),
    )
    status = status or TunnelState(name)
    status.state, status.since = "CONNECTING", utc_now()
    status.pid, status.management_port = proc.pid, port
    try:
        publish(config.data_dir, record, status)  # from now on a stop finds it, whatever happens
        client = await _connect_new(proc, port, management_password(config.data_dir, name))
        await _prime(client, status)
    except VpnError as exc:
        await asyncio.to_thread(_reap, proc)
        remove_record(config.data_dir, name)
        raise VpnError(
            f"vpn {name}: {exc} (openvpn's log: {log_path(config.data_dir, name)})"
        ) from None
    except BaseException:  # cancelled while starting: leave no openvpn behind
        _reap(proc)
        remove_record(config.data_dir, name)
        raise
    return Session(record, client, status, proc)


def _reap(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        kill_wait(proc.pid, STOP_TIMEOUT)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(1.0)


async def wait_connected(config: Config, session: Session, timeout: float) -> None:
    """Follow the state notifications until CONNECTED; VpnError on exit or timeout."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    status = session.status
    while not status.up:
        left = deadline - loop.time()
        if session.client.closed.is_set() and session.client.notifications.empty():
            raise VpnError(
                f"vpn {status.name}: openvpn stopped ({status.last_error or status.state})"
            )
        if left <= 0:
            raise VpnError(
                f"vpn {status.name}: not connected within {timeout:g} s (state {status.state}"
                + (f", {status.last_error}" if status.last_error else "")
                + f"; openvpn's log: {log_path(config.data_dir, status.name)})"
            )
        with contextlib.suppress(TimeoutError):
            note = await asyncio.wait_for(session.client.notifications.get(), min(left, 0.5))
            if absorb(status, note):
                await asyncio.to_thread(publish, config.data_dir, session.record, status)


async def take_down(config: Config, name: str) -> bool:
    """Stop the tunnel's openvpn, whoever started it; False when none was running."""
    data_dir = config.data_dir
    record = read_record(data_dir, name)
    if record is None or not is_openvpn(record.pid):
        remove_record(data_dir, name)
        return False
    try:
        client = await ManagementClient.connect(
            record.management_port, management_password(data_dir, name), timeout=1.5
        )
        try:
            await client.ok(mgmt.signal("SIGTERM"), timeout=2.0)
        finally:
            await client.close()
        gone = await asyncio.to_thread(wait_gone, record.pid, STOP_TIMEOUT)
    except VpnError:  # its management port is held (a collector watches it): signal the pid
        gone = False
    if not gone:
        await asyncio.to_thread(kill_wait, record.pid, STOP_TIMEOUT)
    remove_record(data_dir, name)
    return True


async def probe(config: Config, name: str) -> TunnelState | None:
    """The running tunnel's state, None when none runs (a stale record is removed). A tunnel
    watched by a live process is read from its record: the management port takes one client."""
    data_dir = config.data_dir
    record = read_record(data_dir, name)
    if record is None:
        return None
    if not is_openvpn(record.pid):
        remove_record(data_dir, name)
        return None
    status = status_from_record(record)
    if record.owner_pid != os.getpid() and pid_alive(record.owner_pid):
        return status
    try:
        client = await ManagementClient.connect(
            record.management_port, management_password(data_dir, name), timeout=1.5
        )
    except VpnError:
        return status
    try:
        line = await client.state()
        if line is not None:
            apply_state(status, line)
        counts = await client.byte_totals()
        if counts is not None:
            status.bytes_in, status.bytes_out = counts
    finally:
        await client.close()
    return status


# -- one-shot verbs ------------------------------------------------------------------------


def tunnels_of(devices: Sequence[Device]) -> list[str]:
    return sorted({d.vpn for d in devices if d.vpn})


async def bring_up(config: Config, name: str, owner: str) -> tuple[TunnelState, bool]:
    """The tunnel's state once CONNECTED, and whether this call started it. An already running
    tunnel is used as it is."""
    async with tunnel_lock(config.data_dir):
        running = await probe(config, name)
        if running is not None:
            return running, False
        session = await start_tunnel(config, name, owner)
    try:
        await wait_connected(config, session, config.vpn[name].connect_timeout)
    except VpnError:
        await session.client.close()
        await take_down(config, name)
        if session.proc is not None:
            await asyncio.to_thread(_reap, session.proc)
        raise
    await session.client.close()
    return session.status, True


@contextlib.contextmanager
def tunnels_for_call(
    config: Config, devices: Sequence[Device], owner: str
) -> Iterator[dict[str, str]]:
    """For `poll-once`/`health`: the running tunnels of these devices are used; an `auto`
    tunnel that does not run is brought up for the call and down after. Yields device id ->
    why it cannot be reached (its tunnel is down)."""
    started: list[str] = []
    down: dict[str, str] = {}
    try:
        for name in tunnels_of(devices):
            tunnel = config.vpn[name]
            try:
                if tunnel.auto:
                    status, ours = asyncio.run(bring_up(config, name, owner))
                    if ours:
                        started.append(name)
                else:
                    status = asyncio.run(probe(config, name)) or TunnelState(name)
            except VpnError as exc:
                down[name] = str(exc)
                continue
            if not status.up:
                hint = (
                    "" if tunnel.auto else f"; start it with `energy-pipeline vpn up --name {name}`"
                )
                down[name] = f"vpn {name} is down (state {status.state}){hint}"
        yield {d.id: down[d.vpn] for d in devices if d.vpn in down}
    finally:
        for name in started:
            asyncio.run(take_down(config, name))


# -- the collector's tunnels -----------------------------------------------------------------


class TunnelSupervisor:
    """Keeps one tunnel up for the collector: adopts a running one or (if `auto`) starts it,
    watches its notifications, restarts it with capped backoff, and publishes its state."""

    def __init__(self, config: Config, name: str, status: TunnelState, rng: random.Random):
        self.config = config
        self.name = name
        self.tunnel = config.vpn[name]
        self.status = status
        cap = RESTART_CAP if self.tunnel.auto else MANUAL_RECHECK_CAP
        self.backoff = Backoff(RESTART_INITIAL, cap, rng)
        self.connected = asyncio.Event()
        # the collector need not wait longer before its first poll: connected, or (without
        # `auto`) found not running, or given up
        self.settled = asyncio.Event()
        self.failures = 0
        self.session: Session | None = None
        self._adopted_owner: tuple[str, int | None] | None = None
        self._logged: str | None = None

    async def run(self) -> None:
        while True:
            try:
                self.session = await self._open()
                await self._watch(self.session)
            except VpnError as exc:
                self.status.last_error = str(exc)
                if not self.tunnel.auto:
                    self.settled.set()
            await self._drop()
            self.failures += 1
            retries = self.tunnel.max_retries
            if self.tunnel.auto and retries is not None and self.failures > retries:
                self._set("FAILED")
                self._log_change(f"gave up after {retries} restarts")
                self.settled.set()
                return
            await asyncio.sleep(self.backoff.delay(self.failures + 1))
            self.status.restarts += 1

    async def _open(self) -> Session:
        data_dir = self.config.data_dir
        async with tunnel_lock(data_dir):
            record = read_record(data_dir, self.name)
            if record is not None and is_openvpn(record.pid):
                return await self._adopt(record)
            if not self.tunnel.auto:
                self._set("DOWN")
                raise VpnError(
                    f"vpn {self.name} is not running and not auto; start it with "
                    f"`energy-pipeline vpn up --name {self.name}`"
                )
            return await start_tunnel(self.config, self.name, "collect", self.status)

    async def _adopt(self, record: TunnelRecord) -> Session:
        if record.owner_pid != os.getpid() and pid_alive(record.owner_pid):
            raise VpnError(f"vpn {self.name} is held by pid {record.owner_pid} ({record.owner})")
        client = await ManagementClient.connect(
            record.management_port, management_password(self.config.data_dir, self.name)
        )
        if record.owner == "vpn-up":  # the user's: handed back on stop, not stopped
            self._adopted_owner = (record.owner, record.owner_pid)
        record.owner, record.owner_pid = "collect", os.getpid()
        self.status.pid, self.status.management_port = record.pid, record.management_port
        self._set("CONNECTING")
        await _prime(client, self.status)
        return Session(record, client, self.status)

    async def _watch(self, session: Session) -> None:
        """Until openvpn stops or stays unconnected past connect_timeout (VpnError); a
        connection resets the count of failures in a row."""
        loop = asyncio.get_running_loop()
        timeout = self.tunnel.connect_timeout
        down_since = loop.time()
        await self._publish()
        while True:
            if self.status.up:
                self.connected.set()
                self.settled.set()
                self.failures = 0
                self.status.last_error = None
                self._log_change()
            else:
                self.connected.clear()
                self._log_change()
                if loop.time() - down_since > timeout:
                    raise VpnError(f"vpn {self.name}: not connected within {timeout:g} s")
            if session.client.closed.is_set() and session.client.notifications.empty():
                raise VpnError(f"vpn {self.name}: openvpn stopped ({self.status.state})")
            with contextlib.suppress(TimeoutError):
                note = await asyncio.wait_for(session.client.notifications.get(), 0.5)
                was_up = self.status.up
                if note.kind == "HOLD":
                    await session.client.ok(mgmt.HOLD_RELEASE)
                if absorb(self.status, note):
                    await self._publish()
                if was_up and not self.status.up:
                    down_since = loop.time()

    def _set(self, state: str) -> None:
        if state != self.status.state:
            self.status.state, self.status.since = state, utc_now()
        if state != mgmt.CONNECTED:
            self.status.local_ip = self.status.remote_ip = None

    def _log_change(self, detail: str | None = None) -> None:
        state = self.status.state
        if state == self._logged:
            return
        self._logged = state
        fields = {"tunnel": self.name, "state": state}
        if self.status.up:
            log.info("vpn up", extra={"fields": {**fields, "local_ip": self.status.local_ip}})
        elif state not in (
            "CONNECTING",
            "WAIT",
            "AUTH",
            "GET_CONFIG",
            "ASSIGN_IP",
            "ADD_ROUTES",
            "RESOLVE",
            "TCP_CONNECT",
        ):
            error = detail or self.status.last_error
            log.warning("vpn down", extra={"fields": {**fields, "error": error}})

    async def _publish(self) -> None:
        if self.session is not None:
            await asyncio.to_thread(publish, self.config.data_dir, self.session.record, self.status)

    async def _drop(self) -> None:
        """After a failure: this tunnel's openvpn is unhealthy; end it so a fresh one starts."""
        self.connected.clear()
        session, self.session = self.session, None
        if session is not None:
            await session.client.close()
            if self.tunnel.auto:  # a tunnel the user runs (`vpn up`) is theirs to restart
                await take_down(self.config, self.name)
            if session.proc is not None:
                await asyncio.to_thread(_reap, session.proc)
        self.status.pid = self.status.management_port = None
        if self.status.state != "FAILED":
            self._set("DOWN")
        self._log_change()

    async def shutdown(self) -> None:
        """On the collector's stop (after `run` is cancelled): the openvpn it runs goes down;
        one it adopted from `vpn up` keeps running and is handed back."""
        data_dir = self.config.data_dir
        session, self.session = self.session, None
        if session is not None:
            await session.client.close()
        record = read_record(data_dir, self.name)
        if record is None or record.owner_pid != os.getpid():
            return
        if self._adopted_owner is not None:
            record.owner, record.owner_pid = self._adopted_owner
            await asyncio.to_thread(publish, data_dir, record, self.status)
            return
        await take_down(self.config, self.name)
        if session is not None and session.proc is not None:
            await asyncio.to_thread(_reap, session.proc)
        self._set("DOWN")


class VpnRoutes:
    """The collector's view of its tunnels: started before the first poll, asked before each
    poll, stopped after the last (the collector's `Routes` protocol)."""

    def __init__(self, config: Config, state: CollectorState, rng: random.Random | None = None):
        self.state = state
        self.device_tunnel = {d.id: d.vpn for d in config.devices if d.vpn}
        rng = rng or random.Random()
        self.supervisors: dict[str, TunnelSupervisor] = {}
        for name in tunnels_of(config.devices):
            status = state.vpn.setdefault(name, TunnelState(name))
            self.supervisors[name] = TunnelSupervisor(config, name, status, rng)
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Bring every tunnel up, waiting at most each one's connect_timeout; the collector
        polls either way (devices behind a tunnel still down are `vpn_down`)."""
        waits = []
        for name, sup in self.supervisors.items():
            self._tasks.append(asyncio.create_task(sup.run(), name=f"vpn-{name}"))
            waits.append(asyncio.wait_for(sup.settled.wait(), sup.tunnel.connect_timeout))
        await asyncio.gather(*waits, return_exceptions=True)

    def blocked(self, device_id: str) -> str | None:
        name = self.device_tunnel.get(device_id)
        if name is None:
            return None
        tunnel = self.state.vpn[name]
        return None if tunnel.up else f"{device_id}: vpn {name} is down ({tunnel.state})"

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for sup in self.supervisors.values():
            try:
                await sup.shutdown()
            except Exception:
                log.exception("vpn tunnel failed to stop", extra={"fields": {"tunnel": sup.name}})


def collector_routes(config: Config, state: CollectorState) -> VpnRoutes | None:
    """What `collect` gets: the supervision of its devices' tunnels, or None without any."""
    return VpnRoutes(config, state) if tunnels_of(config.devices) else None
