"""Deadlines on the poll path, one event-loop timer per 10 ms slot instead of one per request.

A collector tick sends a thousand requests at once, each with a read timeout and a poll budget.
As asyncio timers (`call_at`, `asyncio.timeout`) that is two heap entries per poll, pushed and
compared in Python, most of them cancelled and swept later: on the profile of a 1,000-device
worker they cost as much as the socket writes, on the path that decides how late the last read
of a tick starts. Here every deadline falling in the same slot shares one timer, and a deadline
that is no longer needed is simply ignored when its slot fires. A deadline fires up to
`RESOLUTION` late, never early, which is noise against Modbus timeouts of a second or more.
"""

from __future__ import annotations

import asyncio
import math
import weakref
from collections.abc import Callable
from types import TracebackType

RESOLUTION = 0.01
"""Seconds per slot."""


class Deadlines:
    """The slots of one event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self._loop = loop
        self._slots: dict[int, list[Callable[[], None]]] = {}

    def call_at(self, when: float, callback: Callable[[], None]) -> None:
        """Call `callback` once the loop's clock passed `when`; it checks whether it is still
        needed (there is no cancel)."""
        slot = math.ceil(when / RESOLUTION)
        waiting = self._slots.get(slot)
        if waiting is None:
            waiting = self._slots[slot] = []
            self._loop.call_at(slot * RESOLUTION, self._fire, slot)
        waiting.append(callback)

    def _fire(self, slot: int) -> None:
        for callback in self._slots.pop(slot, ()):
            callback()


_per_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Deadlines] = (
    weakref.WeakKeyDictionary()
)


def deadlines(loop: asyncio.AbstractEventLoop | None = None) -> Deadlines:
    """The running (or given) loop's slots."""
    loop = loop or asyncio.get_running_loop()
    found = _per_loop.get(loop)
    if found is None:
        found = _per_loop[loop] = Deadlines(loop)
    return found


class budget:
    """`async with budget(seconds):` — asyncio.timeout's contract (TimeoutError out of the
    block once the time is up; a cancellation from elsewhere still propagates) on a shared slot
    timer."""

    __slots__ = ("_cancelling", "_expired", "_left", "_seconds", "_task")

    def __init__(self, seconds: float):
        self._seconds = seconds
        self._expired = False
        self._left = False

    async def __aenter__(self) -> None:
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("budget() must be used inside a task")
        self._task = task
        self._cancelling = task.cancelling()
        loop = asyncio.get_running_loop()
        deadlines(loop).call_at(loop.time() + self._seconds, self._expire)

    def _expire(self) -> None:
        if not self._left:
            self._expired = True
            self._task.cancel()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._left = True
        if not self._expired:
            return
        if self._task.uncancel() <= self._cancelling and exc_type is asyncio.CancelledError:
            raise TimeoutError from exc
