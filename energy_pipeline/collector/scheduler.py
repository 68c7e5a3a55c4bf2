"""Wall-clock-aligned ticks, computed from the clock every time so nothing drifts.

Instants are integer multiples of a device's interval since the Unix epoch (a 15 s device at
:00/:15/:30/:45). Ticks are counted by their index `k` (instant = k * interval), so float error
never accumulates. Pure: the clock is passed in, which is how the tests step it forwards and
backwards.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass
from typing import Protocol

MAX_SLEEP = 1.0
"""Sleeps are cut into pieces this long so a clock step is noticed within a second."""


class Clock(Protocol):
    def time(self) -> float:
        """Wall-clock seconds since the epoch (steps when NTP steps)."""

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def time(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


@dataclass(frozen=True, slots=True)
class Plan:
    """The next tick to take and how many aligned ticks are given up before it."""

    k: int
    missed: int


def grace(interval: float) -> float:
    """How late a tick may still be taken; later than this it is skipped and counted."""
    return interval / 2


def plan_next(interval: float, last_k: int | None, now: float) -> Plan:
    """The tick after `last_k` given the wall clock `now`.

    A first tick is the next aligned instant (or one that passed less than `grace` ago). After
    an overrun or a clock step forwards, ticks that passed more than `grace` ago are skipped and
    counted. After a step backwards the answer is still `last_k + 1`: the caller waits for it, so
    a tick already taken is never taken again.
    """
    earliest = math.ceil((now - grace(interval)) / interval)
    if last_k is None:
        return Plan(earliest, 0)
    nxt = last_k + 1
    if earliest <= nxt:
        return Plan(nxt, 0)
    return Plan(earliest, earliest - nxt)


async def sleep_until(clock: Clock, instant: float) -> None:
    """Sleep until the wall clock reads `instant`, re-reading it so clock steps are followed."""
    while True:
        remaining = instant - clock.time()
        if remaining <= 0:
            return
        await clock.sleep(min(remaining, MAX_SLEEP))


@dataclass(slots=True)
class IntervalGroup:
    """The devices sharing one interval tick together; `last_k` is the last tick taken."""

    interval: float
    device_ids: list[str]
    last_k: int | None = None
    missed: int = 0

    def plan(self, now: float) -> Plan:
        return plan_next(self.interval, self.last_k, now)

    def instant(self, k: int) -> float:
        return k * self.interval


def next_due(groups: list[IntervalGroup], now: float) -> tuple[float, list[IntervalGroup]]:
    """The earliest instant any group is due at, and the groups due then."""
    plans = [(g.instant(g.plan(now).k), g) for g in groups]
    first = min(t for t, _ in plans)
    return first, [g for t, g in plans if t == first]


def take(group: IntervalGroup, now: float) -> tuple[int, int] | None:
    """Take the group's due tick at `now`: (k, newly missed), or None if it is not due yet.

    Called after sleeping until the planned instant; if the clock stepped meanwhile, the plan
    is recomputed here so a step forwards skips (and counts) and a step back waits.
    """
    plan = group.plan(now)
    if group.instant(plan.k) > now:
        return None
    group.last_k = plan.k
    group.missed += plan.missed
    return plan.k, plan.missed
