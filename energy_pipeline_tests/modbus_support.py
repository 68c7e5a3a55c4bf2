"""Real Modbus servers for the tests: pymodbus serving a profile over loopback TCP or a pty
pair, plus misbehaving peers (mute, garbage). Each runs on its own event loop in a thread, so
both asyncio tests and CLI subprocess tests can talk to it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import tty
from collections.abc import Callable, Coroutine, Iterable, Iterator, Mapping
from typing import Any

from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from energy_pipeline.drivers.modbus.codec import encode_point
from energy_pipeline.profiles.model import BIT_TYPES, Profile

_ORDER = ("coil", "discrete", "holding", "input")


def sample_values(profile: Profile) -> dict[str, float | str]:
    """A distinct, encodable value per point (so a swapped word or offset shows)."""
    out: dict[str, float | str] = {}
    for i, p in enumerate(profile.points):
        if p.data_type == "string":
            out[p.name] = "v1.2"[: 2 * p.width]
        elif p.data_type == "bool" or p.register_type in BIT_TYPES:
            out[p.name] = float(i % 2)
        elif p.kind == "state" and p.labels:
            out[p.name] = float(sorted(p.labels)[-1])
        else:
            raw = (i % 50) + 1
            if p.data_type.startswith("int") and i % 3 == 0:
                raw = -raw
            value = raw * p.scale + p.offset
            if p.max is not None:
                value = min(value, p.max)
            if p.min is not None:
                value = max(value, p.min)
            out[p.name] = value
    return out


def simdevice(
    profile: Profile,
    values: Mapping[str, float | str],
    unit_id: int,
    holes: Iterable[tuple[str, int]] = (),
) -> SimDevice:
    """A pymodbus device serving `values`; every register between the profile's first and last
    address exists (zero) except `holes` (register_type, address), which answer exception 2."""
    words: dict[str, dict[int, int]] = {t: {} for t in _ORDER}
    for p in profile.points:
        for k, w in enumerate(encode_point(values[p.name], p)):
            words[p.register_type][p.address + k] = w
    missing = set(holes)
    blocks: list[list[SimData]] = []
    for register_type in _ORDER:
        cells = words[register_type]
        entries: list[SimData] = []
        if cells:
            run: list[int] = []
            start = min(cells)
            for address in range(min(cells), max(cells) + 2):
                if address <= max(cells) and (register_type, address) not in missing:
                    if not run:
                        start = address
                    run.append(cells.get(address, 0))
                elif run:
                    if register_type in BIT_TYPES:
                        entries.append(
                            SimData(start, values=[bool(b) for b in run], datatype=DataType.BITS)
                        )
                    else:
                        entries.append(SimData(start, values=run, datatype=DataType.REGISTERS))
                    run = []
        if not entries:  # pymodbus wants every table non-empty: one cell at the very end
            kind = DataType.BITS if register_type in BIT_TYPES else DataType.REGISTERS
            entries.append(
                SimData(65535, values=[False] if kind == DataType.BITS else [0], datatype=kind)
            )
        blocks.append(entries)
    return SimDevice(id=unit_id, simdata=(blocks[0], blocks[1], blocks[2], blocks[3]))


class LoopThread:
    """An event loop in a daemon thread; `call` runs a coroutine on it and waits."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def call(self, coro: Coroutine[Any, Any, Any], timeout: float = 10) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@contextlib.contextmanager
def tcp_server(devices: list[SimDevice], port: int = 0) -> Iterator[int]:
    """A pymodbus TCP server on 127.0.0.1 (`port`, default any free one); yields its port."""
    lt = LoopThread()

    async def start() -> tuple[ModbusTcpServer, int]:
        server = ModbusTcpServer(devices, address=("127.0.0.1", port))
        await server.serve_forever(background=True)
        return server, server.transport.sockets[0].getsockname()[1]

    server, bound = lt.call(start())
    try:
        yield bound
    finally:
        lt.call(server.shutdown())
        lt.stop()


def _raw_pty() -> tuple[int, int, str]:
    master, slave = os.openpty()
    tty.setraw(slave)
    tty.setraw(master)
    return master, slave, os.ttyname(slave)


@contextlib.contextmanager
def rtu_server(devices: list[SimDevice], baudrate: int = 9600) -> Iterator[str]:
    """A pymodbus RTU server behind a pty pair; yields the tty path a client opens.

    Two ptys with their master sides relayed: the server opens one slave, the client the
    other, both through pyserial, as with a USB-RS485 adapter on each end of a cable.
    """
    lt = LoopThread()
    m1, s1, server_path = _raw_pty()
    m2, s2, client_path = _raw_pty()

    def relay(src: int, dst: int) -> Callable[[], None]:
        def pump() -> None:
            with contextlib.suppress(OSError):
                os.write(dst, os.read(src, 4096))

        return pump

    async def start() -> ModbusSerialServer:
        lt.loop.add_reader(m1, relay(m1, m2))
        lt.loop.add_reader(m2, relay(m2, m1))
        server = ModbusSerialServer(devices, port=server_path, baudrate=baudrate, timeout=1)
        await server.serve_forever(background=True)
        return server

    async def stop(server: ModbusSerialServer) -> None:
        await server.shutdown()
        lt.loop.remove_reader(m1)
        lt.loop.remove_reader(m2)

    server = lt.call(start())
    try:
        yield client_path
    finally:
        lt.call(stop(server))
        lt.stop()
        for fd in (m1, s1, m2, s2):
            os.close(fd)


async def _send(writer: asyncio.StreamWriter, pieces: list[bytes | None]) -> bool:
    """Write the pieces in turn; False where one is b"" (hang up)."""
    for i, piece in enumerate(pieces):
        if piece == b"":
            return False
        if piece:
            if i:
                await asyncio.sleep(0.005)
            writer.write(piece)
            await writer.drain()
    return True


@contextlib.contextmanager
def misbehaving_tcp_server(
    reply: Callable[[bytes], bytes | list[bytes] | None],
) -> Iterator[int]:
    """Accepts connections and answers each request with `reply(request)`: None is silence,
    b"" hangs up, a list is sent piece by piece (a short pause between, so they arrive apart)
    and hangs up where it holds b""."""
    lt = LoopThread()
    handlers: set[asyncio.Task[None]] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while data := await reader.read(260):
                answer = reply(data)
                pieces = answer if isinstance(answer, list) else [answer]
                if not await _send(writer, pieces):
                    break
        writer.close()

    async def start() -> asyncio.Server:
        return await asyncio.start_server(handle, "127.0.0.1", 0)

    server = lt.call(start())
    try:
        yield server.sockets[0].getsockname()[1]
    finally:

        async def stop() -> None:
            server.close()
            for task in handlers:
                task.cancel()
            await asyncio.gather(*handlers, return_exceptions=True)

        lt.call(stop())
        lt.stop()
