"""The aligned scheduler and the backoff, with an injected clock."""

from __future__ import annotations

import asyncio
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from energy_pipeline.collector.backoff import Backoff
from energy_pipeline.collector.scheduler import (
    IntervalGroup,
    next_due,
    plan_next,
    sleep_until,
    take,
)
from energy_pipeline_tests.kit.clock import FakeClock


def test_first_tick_is_the_next_aligned_instant():
    assert plan_next(15.0, None, 1_000_003.0).k * 15.0 == 1_000_005.0
    assert plan_next(60.0, None, 120.0).k == 2


def test_first_tick_is_never_in_the_past():
    plan = plan_next(60.0, None, 120.4)
    assert (plan.k, plan.missed) == (3, 0)


def test_a_later_tick_slightly_past_is_still_taken_late():
    plan = plan_next(60.0, 1, 120.4)
    assert (plan.k, plan.missed) == (2, 0)


def test_next_tick_follows_the_last_one_without_drift():
    group = IntervalGroup(0.1, ["a"])
    now = 1000.0
    ks = []
    for _ in range(1000):
        instant, _ = next_due([group], now)
        now = instant + 0.003
        ks.append(take(group, now)[0])
    assert ks == list(range(ks[0], ks[0] + 1000))
    assert group.missed == 0


def test_overrun_skips_and_counts_missed_ticks():
    # last tick at 100 s, interval 10 s; the poll ended at 136 s: 110, 120, 130 are gone
    # (130 is more than half an interval late), 140 is next.
    plan = plan_next(10.0, 10, 136.0)
    assert (plan.k, plan.missed) == (14, 3)
    # 4 s late is within grace: the tick is still taken, late.
    plan = plan_next(10.0, 10, 134.0)
    assert (plan.k, plan.missed) == (13, 2)


def test_clock_step_forward_skips_to_next_aligned_tick_and_counts():
    group = IntervalGroup(60.0, ["a"], last_k=100)
    now = 101 * 60.0 + 3600.0 + 10.0  # an hour-long step, 10 s into a minute
    assert take(group, now) == (161, 60)
    assert group.missed == 60


def test_clock_step_back_never_repeats_a_taken_tick():
    group = IntervalGroup(60.0, ["a"], last_k=100)
    now = 95 * 60.0  # clock stepped back five minutes
    assert take(group, now) is None  # tick 101 is not due yet: wait for it
    instant, _ = next_due([group], now)
    assert instant == 101 * 60.0


def test_groups_due_at_the_same_instant_tick_together():
    fast, slow = IntervalGroup(15.0, ["a"]), IntervalGroup(60.0, ["b"])
    instant, due = next_due([fast, slow], 3599.0)
    assert instant == 3600.0
    assert set(map(id, due)) == {id(fast), id(slow)}
    for group in due:
        take(group, 3600.0)
    instant, due = next_due([fast, slow], 3601.0)
    assert instant == 3615.0 and due == [fast]


@given(
    interval=st.sampled_from([0.5, 1.0, 15.0, 60.0, 86400.0]),
    last_k=st.integers(0, 10**6),
    offset=st.floats(-1e5, 1e5, allow_nan=False),
)
def test_plan_is_aligned_never_repeats_and_counts_exactly(interval, last_k, offset):
    now = (last_k + 1) * interval + offset
    plan = plan_next(interval, last_k, now)
    assert plan.k > last_k
    assert plan.missed == plan.k - last_k - 1
    # a tick is only skipped when it passed more than half an interval ago
    assert (plan.k - 1) * interval < now - interval / 2 or plan.missed == 0


def test_sleep_until_follows_a_clock_step():
    clock = FakeClock(100.0)
    clock.step_after_sleep = 30.0  # NTP steps forward during the first sleep
    asyncio.run(sleep_until(clock, 110.0))
    assert clock.sleeps == [1.0]  # woke after one chunk, saw it was past, returned
    assert clock.now >= 110.0


def test_sleep_until_sleeps_in_chunks_so_steps_are_noticed():
    clock = FakeClock(0.0)
    asyncio.run(sleep_until(clock, 3.5))
    assert clock.sleeps == [1.0, 1.0, 1.0, 0.5]


def test_backoff_first_failure_retries_next_tick_then_grows_to_cap():
    b = Backoff(2.0, 60.0, random.Random(1))
    assert b.delay(1) == 0.0
    delays = [b.delay(n) for n in range(2, 12)]
    for n, d in zip(range(2, 12), delays, strict=True):
        full = min(60.0, 2.0 * 2 ** (n - 2))
        assert full / 2 <= d <= full
    assert max(delays) <= 60.0


def test_backoff_jitter_spreads_devices_that_failed_together():
    b = Backoff(2.0, 300.0, random.Random(7))
    assert len({round(b.delay(5), 6) for _ in range(50)}) > 40


@pytest.mark.parametrize("failures", [10**6])
def test_backoff_survives_huge_failure_counts(failures):
    assert Backoff(1.0, 300.0).delay(failures) <= 300.0
