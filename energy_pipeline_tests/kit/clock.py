"""The fake wall clock, and an event loop that keeps its time.

Standalone, `FakeClock.sleep` jumps the clock forward: the scheduler's pure functions are
stepped that way. `FakeClock.run(coro)` runs a coroutine on an event loop whose `time()` is
this clock: asyncio sleeps, timeouts and `wait_for` all follow it, and the clock moves only
when every task waits on a timer (never while a worker thread is busy). A collector service
test of several seconds so takes milliseconds, and every instant in it is exact, not "about".
"""

from __future__ import annotations

import asyncio
import math
import selectors
from collections.abc import Callable, Coroutine
from concurrent.futures import Executor
from datetime import UTC, datetime
from typing import Any, TypeVar

T = TypeVar("T")

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC).timestamp()
"""Where fake clocks start unless told: an ordinary instant, a whole minute."""

THREAD_POLL = 0.05
"""How long the loop waits, in real seconds, for a worker thread before it looks again."""


class FakeClock:
    """A wall clock the test moves; `sleep` advances it (optionally with a step on the way)."""

    def __init__(self, now: float = T0):
        self.now = now
        self.sleeps: list[float] = []
        self.step_after_sleep: float = 0.0
        self._loop: _ClockLoop | None = None

    def time(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if self._loop is not None:
            await asyncio.sleep(seconds)  # the loop moves the clock once everyone waits
            return
        self.now += seconds + self.step_after_sleep
        self.step_after_sleep = 0.0

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run `coro` to completion on an event loop that keeps this clock's time."""
        with asyncio.Runner(loop_factory=lambda: _ClockLoop(self)) as runner:
            self._loop = runner.get_loop()  # type: ignore[assignment]
            try:
                return runner.run(coro)
            finally:
                self._loop = None


class _ClockSelector:
    """The loop's selector, which turns "wait `timeout` for I/O" into "move the clock"."""

    def __init__(self, loop_clock: FakeClock, busy: Callable[[], bool]):
        self._real = selectors.DefaultSelector()
        self._clock = loop_clock
        self._busy = busy

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is None:
            return self._real.select(None)
        if timeout <= 0:
            return self._real.select(0)
        if self._busy():
            return self._real.select(min(timeout, THREAD_POLL))
        events = self._real.select(0)
        if not events:  # one step past the timer, which the loop fires only once it is behind
            self._clock.now = math.nextafter(self._clock.now + timeout, math.inf)
        return events

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


class _ClockLoop(asyncio.SelectorEventLoop):
    def __init__(self, clock: FakeClock):
        self._clock = clock
        self._in_threads = 0
        super().__init__(_ClockSelector(clock, lambda: self._in_threads > 0))  # type: ignore[arg-type]

    def time(self) -> float:
        return self._clock.now

    def run_in_executor(
        self, executor: Executor | None, func: Callable[..., T], *args: Any
    ) -> asyncio.Future[T]:
        self._in_threads += 1
        future = super().run_in_executor(executor, func, *args)
        future.add_done_callback(self._thread_done)
        return future

    def _thread_done(self, _future: asyncio.Future[Any]) -> None:
        self._in_threads -= 1
