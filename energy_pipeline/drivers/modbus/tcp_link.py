"""A lean asyncio Modbus TCP client for the four reads: one socket, one request at a time.

The collector sends thousands of requests a second from one event loop, and a tick's last
device starts late by the sum of the CPU its predecessors' requests cost. pymodbus spends most
of its per-request CPU on machinery this room does not use (transaction manager, framer
objects, PDU classes, `wait_for`, logging); here a request is one `write` and one future with a
timer, and a reply is parsed straight from the received bytes (`mbap`).

What `Bus` relies on, the same as with its pymodbus client:
- a frame for another transaction or unit (a late reply to a request that timed out) is
  skipped, so the request ends at its timeout as `NoReply`, which counts the bytes received;
- the peer hanging up fails the request in flight at once;
- bytes that cannot start a frame fail the request at once (`mbap.FramingLost`) and drop the
  connection, as nothing after them can be trusted.
"""

from __future__ import annotations

import asyncio

import numpy as np

from energy_pipeline.deadlines import Deadlines, deadlines
from energy_pipeline.drivers.modbus.mbap import (
    FUNCTION,
    HEADER_SIZE,
    BadReply,
    ExceptionReply,
    FramingLost,
    parse_read_reply,
    read_request,
    split_frame,
)


class NoReply(Exception):
    """No reply to the request within its timeout; `received` bytes arrived meanwhile."""

    def __init__(self, received: int):
        self.received = received
        super().__init__(f"no reply ({received} bytes received)")


class TcpLink(asyncio.Protocol):
    def __init__(self, host: str, port: int):
        self.host = host
        self.port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._deadlines: Deadlines | None = None
        self._transport: asyncio.Transport | None = None
        self._lost = False
        self._buffer = b""
        self._pending: asyncio.Future[np.ndarray] | None = None
        self._transaction = 0
        self._unit = -1
        self._function = 0
        self._count = 0
        self.received = 0
        """Bytes received since the last request was sent."""

    @property
    def connected(self) -> bool:
        return self._transport is not None and not self._lost

    async def connect(self) -> bool:
        """True once connected (the pymodbus client's contract); OSError if refused."""
        self._loop = asyncio.get_running_loop()
        self._deadlines = deadlines(self._loop)
        await self._loop.create_connection(lambda: self, self.host, self.port)
        return True

    def close(self) -> None:
        self._lost = True
        if self._transport is not None:
            self._transport.close()

    async def read(
        self, register_type: str, start: int, count: int, unit: int, timeout: float
    ) -> np.ndarray:
        """Words (uint16) or bits (0/1) of one read; the exceptions of `mbap`, NoReply,
        ConnectionError."""
        transport, loop, slots = self._transport, self._loop, self._deadlines
        if transport is None or loop is None or slots is None or self._lost:
            raise ConnectionError("not connected")
        self._transaction = self._transaction % 0xFFFF + 1
        self._unit, self._function, self._count = unit, FUNCTION[register_type], count
        self.received = 0
        pending = self._pending = loop.create_future()
        transport.write(read_request(self._transaction, unit, register_type, start, count))
        slots.call_at(loop.time() + timeout, lambda: self._time_out(pending))
        try:
            return await pending
        finally:
            self._pending = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._fail(ConnectionError("closed by the peer" if exc is None else str(exc)))

    def data_received(self, data: bytes) -> None:
        self.received += len(data)
        if self._buffer:
            data, self._buffer = self._buffer + data, b""
        offset = 0
        try:
            while (frame := split_frame(data, offset)) is not None:
                transaction, unit, end = frame
                if transaction == self._transaction and unit == self._unit:
                    self._answer(data, offset + HEADER_SIZE, end)
                offset = end
        except FramingLost as exc:
            self._fail(exc)
            self.close()
            return
        if offset < len(data):
            self._buffer = data[offset:]

    def _answer(self, data: bytes, start: int, end: int) -> None:
        pending = self._pending
        if pending is None or pending.done():
            return
        try:
            pending.set_result(parse_read_reply(data, start, end, self._function, self._count))
        except (ExceptionReply, BadReply) as exc:
            pending.set_exception(exc)

    def _time_out(self, pending: asyncio.Future[np.ndarray]) -> None:
        if not pending.done():
            pending.set_exception(NoReply(self.received))

    def _fail(self, exc: Exception) -> None:
        pending = self._pending
        if pending is not None and not pending.done():
            pending.set_exception(exc)
