"""The bounded queue every output buffers through, and the Home Assistant class mapping."""

from __future__ import annotations

import asyncio

import pytest

from energy_pipeline.catalog import MetricMeaning
from energy_pipeline.live.mqtt import ha_classes
from energy_pipeline.live.queue import DropOldestQueue


def test_full_queue_drops_oldest_and_counts() -> None:
    async def main() -> None:
        q: DropOldestQueue[int] = DropOldestQueue(3)
        for i in range(5):
            q.put(i)
        assert q.dropped == 2 and await q.get_batch(10) == [2, 3, 4]

    asyncio.run(main())


def test_returned_batch_goes_first_and_is_what_overflow_drops() -> None:
    async def main() -> None:
        q: DropOldestQueue[int] = DropOldestQueue(4)
        for i in range(4):
            q.put(i)
        batch = await q.get_batch(2)
        q.put(4)
        q.put_front(batch)  # room for one of the two: the older, 0, is dropped
        assert q.dropped == 1 and await q.get_batch(10) == [1, 2, 3, 4]

    asyncio.run(main())


def test_get_batch_waits_for_an_item() -> None:
    async def main() -> None:
        q: DropOldestQueue[str] = DropOldestQueue(2)
        waiter = asyncio.create_task(q.get_batch(5))
        await asyncio.sleep(0.01)
        assert not waiter.done()
        q.put("x")
        assert await asyncio.wait_for(waiter, 1) == ["x"]

    asyncio.run(main())


@pytest.mark.parametrize(
    ("name", "meta", "expected"),
    [
        ("energy_import", MetricMeaning("kWh", "counter"), ("energy", "total_increasing", "kWh")),
        ("energy_30min", MetricMeaning("kWh", "gauge"), ("energy", None, "kWh")),
        ("power_total", MetricMeaning("W"), ("power", "measurement", "W")),
        ("battery_level", MetricMeaning("%"), ("battery", "measurement", "%")),
        ("load_percent", MetricMeaning("%"), (None, "measurement", "%")),
        ("temperature", MetricMeaning("°C"), ("temperature", "measurement", "°C")),
        ("pulses", MetricMeaning("", "counter"), (None, "total_increasing", None)),
        ("status", MetricMeaning("", "state", {0: "ok"}), ("enum", None, None)),
        ("fault_code", MetricMeaning("", "state"), (None, None, None)),
        ("cos_phi_l1", MetricMeaning(""), ("power_factor", "measurement", None)),
        ("power_factor", MetricMeaning("%"), ("power_factor", "measurement", "%")),
    ],
)
def test_home_assistant_classes(name: str, meta: MetricMeaning, expected: tuple) -> None:
    got = ha_classes(name, meta)
    assert (
        got.get("device_class"),
        got.get("state_class"),
        got.get("unit_of_measurement"),
    ) == expected
