"""One Modbus device: a pre-built read plan and decoder, run over a shared `Bus`.

Per poll the driver sends the planned requests, copies the words into one array and decodes it
in a few numpy operations. When a block answers "illegal data address" (exception 2) the block
is bisected to find the offending points; they are left out from then on (NaN) and the plan is
rebuilt from the ranges that did answer, so one bad address costs one extra request per poll
instead of the whole poll.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from energy_pipeline.drivers.base import (
    BusKey,
    DeviceError,
    DeviceExceptionReply,
    Driver,
    PortBusyError,
)
from energy_pipeline.drivers.modbus.client import ILLEGAL_ADDRESS, Bus
from energy_pipeline.drivers.modbus.codec import BlockDecoder
from energy_pipeline.drivers.modbus.planner import Block, plan_reads, points_in, word_positions
from energy_pipeline.profiles.model import AddressRange, Point, Profile
from energy_pipeline.readings import Sample

log = logging.getLogger(__name__)
WORDS = np.dtype(">u2")
"""A poll's word array is big-endian, as the wire and the lean client's replies are: filling
it is a plain copy and the decoder reads its bytes without swapping them first."""


def _merged_ranges(blocks: list[Block]) -> list[AddressRange]:
    """Blocks that answered, merged where they touch: the addresses proven readable."""
    merged: list[Block] = []
    for b in sorted(blocks, key=lambda b: (b.register_type, b.start)):
        last = merged[-1] if merged else None
        if last and last.register_type == b.register_type and b.start <= last.end + 1:
            merged[-1] = Block(
                last.register_type, last.start, max(last.end, b.end) - last.start + 1
            )
        else:
            merged.append(b)
    return [AddressRange(register_type=b.register_type, start=b.start, end=b.end) for b in merged]


class ModbusDriver(Driver):
    def __init__(
        self,
        device_id: str,
        profile: Profile,
        bus: Bus,
        *,
        unit_id: int,
        timeout: float,
        retries: int,
        max_gap: int,
    ):
        super().__init__(device_id, timeout=timeout, retries=retries)
        self.profile = profile
        self.bus = bus
        self.unit_id = unit_id
        self.max_gap = max_gap
        self._points = list(profile.points)
        self._dead: set[str] = set()
        self.names: tuple[str, ...] = tuple(p.name for p in self._points if p.data_type != "string")
        self._install(self._plan(self._points))

    def _plan(
        self, points: list[Point], allowed: list[AddressRange] | None = None
    ) -> tuple[Block, ...]:
        return plan_reads(
            points,
            max_gap=self.max_gap,
            forbidden=self.profile.forbidden,
            allowed=self.profile.allowed if allowed is None else allowed,
        )

    def _install(self, blocks: tuple[Block, ...]) -> None:
        """Pre-build everything a poll needs for this plan."""
        self.blocks = blocks
        live = [p for p in self._points if p.name not in self._dead]
        where = word_positions(blocks, live)
        self._offsets = np.cumsum([0, *(b.count for b in blocks)])[:-1].tolist()
        total = sum(b.count for b in blocks)
        pad = max((p.width for p in self._points if p.name not in where), default=0)
        self._size = total + pad
        self._whole = len(blocks) == 1 and pad == 0  # the one reply is the poll's words
        decoded = [p for p in self._points if p.data_type != "string" or p.name in where]
        self._decoder = BlockDecoder(decoded, [where.get(p.name, total) for p in decoded])
        self._missing = np.array(
            [i for i, name in enumerate(self.names) if name not in where], dtype=np.intp
        )

    @property
    def bus_key(self) -> BusKey:
        return self.bus.endpoint.key

    @property
    def requests_per_poll(self) -> int:
        return len(self.blocks)

    async def read(self) -> Sample:
        lock = self.bus.lock  # acquired by hand: `async with` costs two coroutines a poll
        await lock.acquire()
        try:
            words = await self._with_retries()
        finally:
            lock.release()
        values = self._decoder.decode(words)
        if self._missing.size:
            values[self._missing] = math.nan
        attributes = self._decoder.decode_text(words) if self._decoder.text else {}
        return Sample(self.names, values, attributes)

    async def probe(self) -> None:
        """One small read (the first point) under the same retries: the health round trip."""
        first = self.blocks[0]
        width = min(p.width for p in points_in(first, self._points) if p.address == first.start)
        block = Block(first.register_type, first.start, width)
        async with self.bus.lock:
            await self._with_retries(block)

    async def _with_retries(self, probe: Block | None = None) -> np.ndarray:
        last: DeviceError | None = None
        for attempt in range(1, self.retries + 2):
            self.last_attempts = attempt
            try:
                if not self.bus.connected:
                    await self.bus.connect(self.device_id, self.timeout)
                if probe is not None:
                    await self.bus.read(self.device_id, self.unit_id, probe, self.timeout)
                    return np.zeros(0, np.uint16)
                return await self._poll()
            except (DeviceExceptionReply, PortBusyError):
                raise
            except DeviceError as exc:
                self.bus.after_failure(exc)
                last = exc
        assert last is not None
        raise last

    async def _poll(self) -> np.ndarray:
        if self._whole:
            try:
                got = await self.bus.read(
                    self.device_id, self.unit_id, self.blocks[0], self.timeout
                )
            except DeviceExceptionReply as exc:
                if exc.code != ILLEGAL_ADDRESS:
                    raise
                return await self._recover(0, np.zeros(self._size, dtype=WORDS), exc)
            return np.asarray(got, dtype=WORDS)
        words = np.zeros(self._size, dtype=WORDS)
        for i, (block, offset) in enumerate(zip(self.blocks, self._offsets, strict=True)):
            try:
                words[offset : offset + block.count] = await self.bus.read(
                    self.device_id, self.unit_id, block, self.timeout
                )
            except DeviceExceptionReply as exc:
                if exc.code != ILLEGAL_ADDRESS:
                    raise
                return await self._recover(i, words, exc)
        return words

    async def _read_split(
        self, block: Block, points: list[Point]
    ) -> tuple[list[tuple[Block, list[int]]], list[Point]]:
        """Read `block`; on exception 2 bisect its points until the bad ones are isolated."""
        try:
            return [
                (block, await self.bus.read(self.device_id, self.unit_id, block, self.timeout))
            ], []
        except DeviceExceptionReply as exc:
            if exc.code != ILLEGAL_ADDRESS:
                raise
        if len(points) <= 1:
            return [], points
        reads: list[tuple[Block, list[int]]] = []
        dead: list[Point] = []
        half = len(points) // 2
        for part in (points[:half], points[half:]):
            for sub in self._plan(part):
                r, d = await self._read_split(sub, points_in(sub, part))
                reads += r
                dead += d
        return reads, dead

    async def _recover(
        self, failed: int, words: np.ndarray, error: DeviceExceptionReply
    ) -> np.ndarray:
        reads: list[tuple[Block, list[int]]] = [
            (b, words[off : off + b.count].tolist())
            for b, off in zip(self.blocks[:failed], self._offsets, strict=False)
        ]
        dead: list[Point] = []
        live = [p for p in self._points if p.name not in self._dead]
        for block in self.blocks[failed:]:
            pts = sorted(points_in(block, live), key=lambda p: (p.address, p.width))
            r, d = await self._read_split(block, pts)
            reads += r
            dead += d
        if not reads:
            raise error
        for p in dead:
            self._dead.add(p.name)
            log.warning(
                "%s: %s %d (%s) answered 'illegal data address'; it is left out from now on",
                self.device_id,
                p.register_type,
                p.address,
                p.name,
            )
        proven = _merged_ranges([b for b, _ in reads])
        self._install(self._plan([p for p in live if p.name not in self._dead], proven))
        log.info(
            "%s: read plan is now %d requests: %s",
            self.device_id,
            len(self.blocks),
            ", ".join(map(str, self.blocks)),
        )
        cell = {(b.register_type, b.start + k): w for b, regs in reads for k, w in enumerate(regs)}
        fresh = np.zeros(self._size, dtype=WORDS)
        for b, off in zip(self.blocks, self._offsets, strict=True):
            fresh[off : off + b.count] = [
                cell[(b.register_type, a)] for a in range(b.start, b.end + 1)
            ]
        return fresh

    async def close(self) -> None:
        """Drop the (possibly shared) connection once no poll is using it."""
        async with self.bus.lock:
            self.bus.close()
