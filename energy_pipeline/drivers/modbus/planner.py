"""Which read requests cover a device's points: pure, no I/O.

Every request costs a round trip (and on RS-485 a whole bus turn), so the planner covers all
points with the fewest requests: points of one register type, sorted by address, are merged
left to right while the block stays within the per-request limit (125 registers, 2000 bits),
the gap to the next point is at most `max_gap` unused registers, no forbidden address is
touched and the block stays inside one allowed range (when the profile lists any). Every one
of those conditions holds for any sub-run of a valid run, so extending greedily is optimal.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from energy_pipeline.profiles.model import BIT_TYPES, AddressRange, Point, RegisterType

MAX_REGISTERS = 125
MAX_BITS = 2000


@dataclass(frozen=True, slots=True)
class Block:
    """One read request: `count` registers (or bits) of one type from `start`."""

    register_type: RegisterType
    start: int
    count: int

    @property
    def end(self) -> int:
        """Last address read (inclusive)."""
        return self.start + self.count - 1

    def __str__(self) -> str:
        return f"{self.register_type} {self.start}-{self.end}"


def request_limit(register_type: str) -> int:
    return MAX_BITS if register_type in BIT_TYPES else MAX_REGISTERS


def _span(p: Point) -> tuple[int, int]:
    return p.address, p.address + p.width - 1


def block_allowed(
    register_type: str,
    start: int,
    end: int,
    forbidden: Sequence[AddressRange],
    allowed: Sequence[AddressRange],
) -> bool:
    """Whether reading `start..end` (inclusive) respects the profile's address rules."""
    for r in forbidden:
        if r.register_type == register_type and start <= r.end and end >= r.start:
            return False
    if allowed:
        return any(
            r.register_type == register_type and r.start <= start and end <= r.end for r in allowed
        )
    return True


def plan_reads(
    points: Sequence[Point],
    *,
    max_gap: int = 16,
    forbidden: Sequence[AddressRange] = (),
    allowed: Sequence[AddressRange] = (),
    max_registers: int = MAX_REGISTERS,
    max_bits: int = MAX_BITS,
) -> tuple[Block, ...]:
    """The fewest blocks covering every point; ValueError if a point alone cannot be read."""
    by_type: dict[str, list[tuple[int, int]]] = {}
    for p in points:
        by_type.setdefault(p.register_type, []).append(_span(p))
    blocks: list[Block] = []
    order: tuple[RegisterType, ...] = ("holding", "input", "coil", "discrete")
    for register_type in order:
        spans = sorted(by_type.get(register_type, ()))
        limit = max_bits if register_type in BIT_TYPES else max_registers
        start = end = -1
        for lo, hi in spans:
            if start >= 0:
                new_end = max(end, hi)
                if (
                    lo - end - 1 <= max_gap
                    and new_end - start + 1 <= limit
                    and block_allowed(register_type, start, new_end, forbidden, allowed)
                ):
                    end = new_end
                    continue
                blocks.append(Block(register_type, start, end - start + 1))
            if hi - lo + 1 > limit or not block_allowed(register_type, lo, hi, forbidden, allowed):
                raise ValueError(
                    f"{register_type} {lo}-{hi} cannot be read in one request within the "
                    "profile's address rules"
                )
            start, end = lo, hi
        if start >= 0:
            blocks.append(Block(register_type, start, end - start + 1))
    return tuple(blocks)


def points_in(block: Block, points: Sequence[Point]) -> list[Point]:
    """The points a block covers completely."""
    return [
        p
        for p in points
        if p.register_type == block.register_type
        and block.start <= p.address
        and p.address + p.width - 1 <= block.end
    ]


def word_positions(blocks: Sequence[Block], points: Sequence[Point]) -> dict[str, int]:
    """Where each covered point's first word lands when the blocks' words are concatenated."""
    positions: dict[str, int] = {}
    base = 0
    for block in blocks:
        for p in points_in(block, points):
            positions.setdefault(p.name, base + p.address - block.start)
        base += block.count
    return positions
