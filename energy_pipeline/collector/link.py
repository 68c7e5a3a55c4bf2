"""The pipe from a worker process to its parent: each of the worker's offers of outcomes, with a
snapshot of the worker's live state, so the parent alone serves the live outputs (one
dashboard, one /metrics, one MQTT connection for the whole site).

A frame is `length | pickle`. Pickle is safe here: both ends are this program, and the pipe is
created by the parent for its own child. The link is best effort, like every live output: a
parent that reads too slowly makes the worker drop offers (counted), never wait, and a parent
that is gone makes writes fail quietly — the lake never depends on the link.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pickle
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from energy_pipeline.collector.state import CollectorState
from energy_pipeline.readings import PollOutcome

log = logging.getLogger("energy_pipeline.collector")

_LENGTH = struct.Struct("<I")
MAX_FRAME = 256 * 1024 * 1024
MAX_BUFFERED = 16 * 1024 * 1024
"""Bytes a worker lets queue for a slow parent before it drops offers."""


@dataclass(slots=True)
class Offer:
    """One offer of a worker's outcomes (one scheduled instant), and its state at that time."""

    state: CollectorState
    outcomes: list[PollOutcome]


def encode(offer: Offer) -> bytes:
    body = pickle.dumps(offer, protocol=pickle.HIGHEST_PROTOCOL)
    return _LENGTH.pack(len(body)) + body


class FrameReader:
    """Splits a byte stream into offers; a frame that does not decode ends the stream."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.broken: str | None = None

    def feed(self, data: bytes) -> list[Offer]:
        if self.broken is not None:
            return []
        self._buffer += data
        offers: list[Offer] = []
        while len(self._buffer) >= _LENGTH.size:
            (length,) = _LENGTH.unpack_from(self._buffer, 0)
            if length > MAX_FRAME:
                self.broken = f"frame of {length} bytes announced"
                return offers
            end = _LENGTH.size + length
            if len(self._buffer) < end:
                break
            body = bytes(self._buffer[_LENGTH.size : end])
            del self._buffer[:end]
            try:
                offer = pickle.loads(body)
            except Exception as exc:
                self.broken = f"undecodable frame: {type(exc).__name__}: {exc}"
                return offers
            if not isinstance(offer, Offer):
                self.broken = f"unexpected {type(offer).__name__} on the link"
                return offers
            offers.append(offer)
        return offers


class LinkSink:
    """The worker's only live output: every offer goes down the pipe to the parent."""

    def __init__(self, fd: int, state: CollectorState):
        self.fd = fd
        self.state = state
        self.dropped = 0
        self._transport: asyncio.WriteTransport | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        pipe = os.fdopen(self.fd, "wb", buffering=0)
        self._transport, _ = await loop.connect_write_pipe(asyncio.Protocol, pipe)

    def offer(self, outcomes: Sequence[PollOutcome]) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        if transport.get_write_buffer_size() > MAX_BUFFERED:
            self.dropped += 1
            return
        transport.write(encode(Offer(self.state, list(outcomes))))

    async def stop(self) -> None:
        if self._transport is not None:
            self._transport.close()


class _ReadProtocol(asyncio.Protocol):
    def __init__(self, name: str, deliver: Callable[[Offer], None], closed: asyncio.Event):
        self.name = name
        self.deliver = deliver
        self.closed = closed
        self.reader = FrameReader()
        self._reported = False

    def data_received(self, data: bytes) -> None:
        for offer in self.reader.feed(data):
            self.deliver(offer)
        if self.reader.broken and not self._reported:
            self._reported = True
            log.error(
                "worker link broken; its live values stop until it restarts",
                extra={"fields": {"worker": self.name, "error": self.reader.broken}},
            )

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed.set()


async def read_link(
    fd: int, name: str, deliver: Callable[[Offer], None]
) -> tuple[asyncio.ReadTransport, asyncio.Event]:
    """Start delivering the offers arriving on `fd`; the event is set when the worker closed it."""
    loop = asyncio.get_running_loop()
    closed = asyncio.Event()
    pipe = os.fdopen(fd, "rb", buffering=0)
    transport, _ = await loop.connect_read_pipe(lambda: _ReadProtocol(name, deliver, closed), pipe)
    return transport, closed
