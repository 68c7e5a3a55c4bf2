"""The I/O edge: one client per TCP endpoint or serial port, read-only.

Devices on one RS-485 port share one client and take turns under `lock` (a bus carries one
request at a time). The only Modbus functions this module can send are the four reads; there
is no code path that writes. Everything that goes wrong becomes a typed `DeviceError` naming
the device and the register block; `driver` holds the plan and the decoding.

TCP endpoints use the lean `tcp_link` client (the collector's hot path), serial ports pymodbus,
reached only through `pymodbus_adapter` and imported only when a bus needs it.
ENERGY_PIPELINE_MODBUS_TCP=pymodbus puts TCP back on pymodbus: a fallback for a device the
lean client cannot talk to, and the benches' baseline. Both are a `Link` raising the same
exceptions, so both give the same typed errors (test_modbus_driver runs on both).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from energy_pipeline.drivers.base import (
    BusKey,
    DeviceConnectionError,
    DeviceError,
    DeviceExceptionReply,
    DeviceProtocolError,
    DeviceTimeout,
)
from energy_pipeline.drivers.modbus.mbap import BadReply, ExceptionReply, FramingLost
from energy_pipeline.drivers.modbus.planner import Block
from energy_pipeline.drivers.modbus.tcp_link import NoReply, TcpLink
from energy_pipeline.drivers.serial_lock import hold_port
from energy_pipeline.yamlfile import ConfigError, Problem

EXCEPTION_NAMES = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
    5: "acknowledge",
    6: "server device busy",
    10: "gateway path unavailable",
    11: "gateway target device failed to respond",
}
ILLEGAL_ADDRESS = 2
TCP_CLIENT_ENV = "ENERGY_PIPELINE_MODBUS_TCP"
TCP_CLIENTS = ("lean", "pymodbus")
Words = np.ndarray | list[int]
"""One block's words (or bits as 0/1): numpy from the lean client, a list from pymodbus."""


def tcp_client_choice(environ: Mapping[str, str]) -> str:
    """Which client TCP endpoints use: `lean` unless the environment says `pymodbus`."""
    chosen = environ.get(TCP_CLIENT_ENV, "lean")
    if chosen not in TCP_CLIENTS:
        message = f"expected one of {', '.join(TCP_CLIENTS)}, got {chosen!r}"
        raise ConfigError([Problem(Path(f"${TCP_CLIENT_ENV}"), (), message)])
    return chosen


@dataclass(frozen=True, slots=True)
class TcpEndpoint:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def key(self) -> BusKey:
        return ("tcp", self.host, str(self.port))


@dataclass(frozen=True, slots=True)
class SerialEndpoint:
    port: str
    baudrate: int
    parity: str
    stopbits: int
    bytesize: int

    def __str__(self) -> str:
        return f"{self.port} {self.baudrate} {self.bytesize}{self.parity}{self.stopbits}"

    @property
    def key(self) -> BusKey:
        """The port's real path, so two names of one device (a by-id link) are one bus."""
        return ("serial", os.path.realpath(self.port))


Endpoint = TcpEndpoint | SerialEndpoint


def _where(unit_id: int, block: Block) -> str:
    return f"unit {unit_id}, {block}"


class Link(Protocol):
    """One connection's client: `TcpLink`, or pymodbus behind `PymodbusLink`.

    `read` raises ExceptionReply, NoReply, FramingLost, BadReply or OSError.
    """

    received: int

    @property
    def connected(self) -> bool: ...

    async def connect(self) -> bool: ...

    def close(self) -> None: ...

    async def read(
        self, register_type: str, start: int, count: int, unit: int, timeout: float
    ) -> Words: ...


class Bus:
    """One connection (TCP socket or serial port) and the lock its devices poll under."""

    def __init__(self, endpoint: Endpoint, data_dir: Path, *, tcp_client: str = "lean"):
        self.endpoint = endpoint
        self.data_dir = data_dir
        self.lean = isinstance(endpoint, TcpEndpoint) and tcp_client == "lean"
        self._lock = asyncio.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: Link | None = None
        self._port_hold = contextlib.ExitStack()

    @property
    def lock(self) -> asyncio.Lock:
        """The bus lock of the running event loop (a CLI may run several loops in turn)."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._forget()
            self._loop = loop
            self._lock = asyncio.Lock()
        return self._lock

    def _forget(self) -> None:
        """Drop a connection that belongs to an event loop that is gone."""
        if self._client is not None:
            with contextlib.suppress(RuntimeError):
                self._client.close()
            self._client = None
        self._port_hold.close()

    @property
    def is_serial(self) -> bool:
        return isinstance(self.endpoint, SerialEndpoint)

    def _make_client(self, timeout: float) -> Link:
        ep = self.endpoint
        if isinstance(ep, TcpEndpoint) and self.lean:
            return TcpLink(ep.host, ep.port)
        from energy_pipeline.drivers.modbus import pymodbus_adapter as pm

        if isinstance(ep, TcpEndpoint):
            return pm.tcp_link(ep.host, ep.port, timeout=timeout)
        return pm.rtu_link(
            ep.port,
            baudrate=ep.baudrate,
            bytesize=ep.bytesize,
            parity=ep.parity,
            stopbits=ep.stopbits,
            timeout=timeout,
        )

    def _hold_serial(self, port: str, device_id: str) -> None:
        if not Path(port).exists():
            raise DeviceConnectionError(device_id, f"serial port {port} does not exist")
        self._port_hold.enter_context(hold_port(port, self.data_dir, owner=device_id))

    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.connected

    async def connect(self, device_id: str, timeout: float) -> None:
        """Open the connection if it is not open (a serial port only while holding its lock)."""
        if self.connected:
            return
        self.close()
        if isinstance(self.endpoint, SerialEndpoint):
            self._hold_serial(self.endpoint.port, device_id)
        client = self._make_client(timeout)
        try:
            ok = await asyncio.wait_for(client.connect(), timeout + 0.5)
        except (TimeoutError, OSError) as exc:
            ok = False
            reason = str(exc) or type(exc).__name__
        else:
            reason = "refused or unreachable"
        if not ok:
            client.close()
            self._port_hold.close()
            raise DeviceConnectionError(device_id, f"cannot connect to {self.endpoint}: {reason}")
        self._client = client

    async def read(self, device_id: str, unit_id: int, block: Block, timeout: float) -> Words:
        """Words (or bits as 0/1) of one block; a typed error naming device and block."""
        client = self._client
        if client is None or not client.connected:
            raise DeviceConnectionError(device_id, "not connected", where=_where(unit_id, block))
        try:
            words = await client.read(
                block.register_type, block.start, block.count, unit_id, timeout
            )
        except (ExceptionReply, NoReply, FramingLost, BadReply, OSError) as exc:
            raise self._typed(exc, device_id, timeout, _where(unit_id, block)) from None
        if len(words) != block.count:
            raise DeviceProtocolError(
                device_id,
                f"asked for {block.count} values, got {len(words)}",
                where=_where(unit_id, block),
            )
        return words

    def _typed(self, exc: Exception, device_id: str, timeout: float, where: str) -> DeviceError:
        """The DeviceError for what a link raised (built only when a read fails)."""
        if isinstance(exc, ExceptionReply):
            name = EXCEPTION_NAMES.get(exc.code, "unknown exception")
            message = f"exception {exc.code} ({name})"
            return DeviceExceptionReply(device_id, message, code=exc.code, where=where)
        if isinstance(exc, NoReply):
            if exc.received:  # garbage, or a reply for another unit or transaction
                message = f"{exc.received} bytes received but no valid reply within {timeout:g} s"
                return DeviceProtocolError(device_id, message, where=where)
            return DeviceTimeout(device_id, f"no reply within {timeout:g} s", where=where)
        if isinstance(exc, FramingLost | BadReply):
            received = self._client.received if self._client is not None else 0
            message = f"{received} bytes received but no valid reply: {exc}"
            return DeviceProtocolError(device_id, message, where=where)
        return DeviceConnectionError(device_id, f"connection lost: {exc}", where=where)

    def after_failure(self, error: DeviceError) -> None:
        """Drop the connection so the next read reconnects; a bus survives one mute device."""
        if isinstance(error, DeviceExceptionReply):
            return
        if self.is_serial and isinstance(error, DeviceTimeout | DeviceProtocolError):
            return
        self.close()

    def close(self) -> None:
        self._forget()
