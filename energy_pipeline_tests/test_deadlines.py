"""Shared slot timers for the poll path: asyncio.timeout's contract, one timer per slot."""

from __future__ import annotations

import asyncio

import pytest

from energy_pipeline.deadlines import RESOLUTION, budget, deadlines


def test_a_budget_that_runs_out_raises_timeout_never_early() -> None:
    async def go() -> float:
        loop = asyncio.get_running_loop()
        start = loop.time()
        with pytest.raises(TimeoutError):
            async with budget(0.05):
                await asyncio.sleep(5)
        return loop.time() - start

    took = asyncio.run(go())
    assert 0.05 <= took < 0.05 + RESOLUTION + 0.5


def test_a_block_that_finishes_in_time_is_not_touched_later() -> None:
    async def go() -> str:
        async with budget(0.02):
            await asyncio.sleep(0)
        await asyncio.sleep(0.05)  # the slot fires while the task sleeps here: no cancel
        return "done"

    assert asyncio.run(go()) == "done"


def test_a_cancellation_from_elsewhere_stays_a_cancellation() -> None:
    async def go() -> None:
        async def inner() -> None:
            async with budget(5):
                await asyncio.sleep(5)

        task = asyncio.create_task(inner())
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(go())


def test_deadlines_in_one_slot_share_one_timer() -> None:
    async def go() -> tuple[int, list[int]]:
        loop = asyncio.get_running_loop()
        timers = 0
        real = loop.call_at

        def counting(when, callback, *args, context=None):
            nonlocal timers
            timers += 1
            return real(when, callback, *args, context=context)

        loop.call_at = counting  # type: ignore[method-assign]
        fired: list[int] = []
        slots = deadlines()
        when = (int(loop.time() / RESOLUTION) + 3) * RESOLUTION - RESOLUTION / 2
        for i in range(1000):
            slots.call_at(when, lambda i=i: fired.append(i))
        slots.call_at(when + 2 * RESOLUTION, lambda: fired.append(-1))
        loop.call_at = real  # type: ignore[method-assign]
        await asyncio.sleep(when + 3 * RESOLUTION - loop.time())
        return timers, fired

    timers, fired = asyncio.run(go())
    assert timers == 2
    assert fired == [*range(1000), -1]
