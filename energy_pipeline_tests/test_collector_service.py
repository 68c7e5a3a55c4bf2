"""The collect service in-process with stand-in drivers: isolation, backoff, stop, lock.

The protocol stacks are exercised by test_collector_integration.py against the real simulators;
here the drivers are plain objects so the scheduling behaviour is observed exactly. The service
runs on the kit's fake clock: its ticks, the drivers' delays and every timeout follow one clock
that moves only when all tasks wait, so seconds of collecting take milliseconds and each instant
is exact.
"""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from energy_pipeline.collector.lock import CollectorRunning
from energy_pipeline.collector.service import CollectorService
from energy_pipeline.collector.state import DeviceState
from energy_pipeline.config import Config
from energy_pipeline.drivers.base import DeviceConnectionError, Driver
from energy_pipeline.lake.status import read_status
from energy_pipeline.readings import Sample
from energy_pipeline_tests.kit.clock import FakeClock

NAMES = tuple(f"m{i}" for i in range(10))
INTERVAL = 0.5


class Healthy(Driver):
    def __init__(self, device_id: str):
        super().__init__(device_id, timeout=0.3, retries=0)
        self.reads = 0

    @property
    def bus_key(self) -> None:
        return None

    async def read(self) -> Sample:
        self.reads += 1
        values = np.arange(len(NAMES), dtype=float)
        values[0] = np.nan  # an invalid reading every poll: dropped and counted
        return Sample(NAMES, values)

    async def close(self) -> None:
        pass


class Hung(Healthy):
    async def read(self) -> Sample:
        self.reads += 1
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")


class Slow(Healthy):
    """Answers after most of a tick (commit_wait caps at 0.8 x interval: it often lands late)."""

    async def read(self) -> Sample:
        await asyncio.sleep(INTERVAL * 0.9)
        return await super().read()


class Flaky(Healthy):
    """Refuses connections for its first `bad` polls, then answers."""

    def __init__(self, device_id: str, bad: int):
        super().__init__(device_id)
        self.bad = bad

    async def read(self) -> Sample:
        self.reads += 1
        if self.reads <= self.bad:
            raise DeviceConnectionError(self.device_id, "connection refused")
        return await super().read()


def make_config(data_dir: Path, ids: list[str], **collector) -> Config:
    devices = [
        {
            "id": i,
            "driver": "luxtronik",
            "interval": INTERVAL,
            "connection": {"host": "127.0.0.1", "timeout": 0.3, "retries": 0},
        }
        for i in ids
    ]
    settings = {"seal_delay": 0, "backoff_initial": 0.4, "backoff_max": 0.8, **collector}
    return Config.model_validate(
        {"storage": {"data_dir": str(data_dir)}, "devices": devices, "collector": settings}
    )


def service_on(
    clock: FakeClock, config: Config, drivers: dict[str, Driver], **kw
) -> CollectorService:
    return CollectorService(config, drivers, clock=clock, rng=random.Random(7), **kw)


async def run_for(service: CollectorService, seconds: float) -> None:
    task = asyncio.create_task(service.run())
    await asyncio.sleep(seconds)
    service.stop()
    await asyncio.wait_for(task, 10)


def lake(data_dir: Path, table: str) -> pa.Table:
    files = sorted((data_dir / table).rglob("*.parquet"))
    return pa.concat_tables([pq.read_table(f) for f in files])


def test_hung_device_never_delays_the_others(tmp_path, fake_clock):
    drivers = {"hung": Hung("hung"), "a": Healthy("a"), "b": Healthy("b")}
    service = service_on(fake_clock, make_config(tmp_path, list(drivers)), drivers)
    fake_clock.run(run_for(service, 3.0))
    polls = lake(tmp_path, "polls").to_pandas()
    for dev in ("a", "b"):
        mine = polls[polls.device_id == dev].sort_values("ts")
        assert mine.ok.all()
        steps = mine.ts.diff().dropna().dt.total_seconds().round(3).unique().tolist()
        assert steps == [INTERVAL], f"{dev} lost ticks: {steps}"
        assert (mine.started_at == mine.ts).all()  # on the tick to the microsecond
        assert service.state.devices[dev].missed_ticks == 0
    hung = service.state.devices["hung"]
    assert hung.state == "down" and hung.last_error_kind == "timeout"
    assert hung.missed_ticks + hung.backoff_skips > 0  # it polled far less often than the others
    assert drivers["hung"].reads < drivers["a"].reads


def test_failing_device_backs_off_and_logs_state_changes_only(tmp_path, caplog, fake_clock):
    drivers = {"flaky": Flaky("flaky", bad=4), "a": Healthy("a")}
    service = service_on(fake_clock, make_config(tmp_path, list(drivers)), drivers)
    with caplog.at_level("INFO", logger="energy_pipeline.collector"):
        fake_clock.run(run_for(service, 5.0))
    flaky = service.state.devices["flaky"]
    assert flaky.state == "up" and flaky.polls_failed == 4 and flaky.backoff_skips > 0
    messages = [r.getMessage() for r in caplog.records if "flaky" in str(r.__dict__)]
    assert messages.count("device down") == 1
    assert messages.count("device up again") == 1


def test_stop_seals_everything_and_empties_the_wal(tmp_path, fake_clock):
    drivers = {"a": Healthy("a"), "b": Healthy("b"), "slow": Slow("slow")}
    service = service_on(fake_clock, make_config(tmp_path, list(drivers)), drivers)
    fake_clock.run(run_for(service, 1.8))
    raw = lake(tmp_path, "raw_readings")
    polls = lake(tmp_path, "polls")
    # every poll started, including the one in flight at stop and the late ones, landed
    assert polls.num_rows == sum(d.reads for d in drivers.values())
    assert raw.num_rows == polls.num_rows * (len(NAMES) - 1)  # the NaN was dropped
    assert not list((tmp_path / "state" / "wal-main").glob("*.wal"))
    status = read_status(tmp_path, "main")
    assert status["devices"]["a"]["invalid_values"] == drivers["a"].reads
    assert status["devices"]["a"]["state"] == "up"
    last = max(polls.column("ts").to_pylist()).isoformat()
    assert status["devices"]["a"]["last_ack_ts"] == last


def test_a_second_collector_with_the_same_id_refuses(tmp_path, fake_clock):
    cfg = make_config(tmp_path, ["a"])

    async def both() -> None:
        first = service_on(fake_clock, cfg, {"a": Healthy("a")})
        task = asyncio.create_task(first.run())
        await asyncio.sleep(0.3)
        with pytest.raises(CollectorRunning, match=r"already running .* \(pid \d+\)"):
            await service_on(fake_clock, cfg, {"a": Healthy("a")}).run()
        other = make_config(tmp_path, ["a"], id="shard2")
        second = service_on(fake_clock, other, {"a": Healthy("a")})
        task2 = asyncio.create_task(second.run())
        await asyncio.sleep(0.3)
        first.stop()
        second.stop()
        await asyncio.gather(task, task2)

    fake_clock.run(both())
    names = {p.name.split("-")[0] for p in (tmp_path / "polls").rglob("*.parquet")}
    assert names == {"main", "shard2"}


class RecordingSink:
    def __init__(self) -> None:
        self.started = self.stopped = False
        self.offers: list[list] = []

    async def start(self) -> None:
        self.started = True

    def offer(self, outcomes) -> None:
        self.offers.append(list(outcomes))

    async def stop(self) -> None:
        self.stopped = True


def test_sinks_get_every_outcome_once(tmp_path, fake_clock):
    drivers = {"a": Healthy("a"), "b": Healthy("b")}
    sink = RecordingSink()
    service = service_on(fake_clock, make_config(tmp_path, list(drivers)), drivers, sinks=[sink])
    fake_clock.run(run_for(service, 1.5))
    assert sink.started and sink.stopped
    offered = [(o.device_id, o.ts) for batch in sink.offers for o in batch]
    assert len(offered) == len(set(offered)) == drivers["a"].reads + drivers["b"].reads
    assert all(len({o.ts for o in batch}) == 1 for batch in sink.offers)  # one instant each


def test_restart_sweeps_temp_files_a_crash_left_mid_seal(tmp_path, fake_clock):
    cfg = make_config(tmp_path, ["a"])
    now = datetime.fromtimestamp(fake_clock.time(), UTC)
    folder = tmp_path / "raw_readings" / f"date={now:%Y-%m-%d}" / f"hour={now:%H}"
    folder.mkdir(parents=True)
    stale = folder / f".main-{now:%Y%m%dT%H%M}.parquet.99999.tmp"
    foreign = folder / f".main-2-{now:%Y%m%dT%H%M}.parquet.99999.tmp"  # collector "main-2"
    stale.write_bytes(b"PAR1 half")
    foreign.write_bytes(b"PAR1 half")
    fake_clock.run(run_for(service_on(fake_clock, cfg, {"a": Healthy("a")}), 0.2))
    assert not stale.exists()
    assert foreign.exists()  # another collector's file is not ours to remove


class TunnelWindow:
    """Stands in for the site VPN (the collector's `Routes`): device `behind`'s tunnel is down
    from `down_at` to `up_at` seconds after start. Real tunnels: test_vpn_tunnel.py."""

    def __init__(self, clock: FakeClock, down_at: float, up_at: float):
        self.clock, self.down_at, self.up_at = clock, down_at, up_at
        self.t0: float | None = None
        self.stopped = False
        self.watched: DeviceState | None = None
        self.seen: list[str] = []  # the watched device's state at each poll

    async def start(self) -> None:
        self.t0 = self.clock.time()

    def blocked(self, device_id: str) -> str | None:
        assert self.t0 is not None, "polled before the tunnels were started"
        if self.watched is not None and device_id == self.watched.device_id:
            self.seen.append(self.watched.state)
        since = self.clock.time() - self.t0
        down = device_id == "behind" and self.down_at <= since < self.up_at
        return f"{device_id}: vpn site-a is down (RECONNECTING)" if down else None

    async def stop(self) -> None:
        self.stopped = True


def test_a_device_behind_a_down_tunnel_is_vpn_down_not_asked_and_not_backed_off(
    tmp_path, caplog, fake_clock
):
    drivers = {"behind": Healthy("behind"), "a": Healthy("a")}
    routes = TunnelWindow(fake_clock, down_at=1.0, up_at=2.6)
    service = service_on(fake_clock, make_config(tmp_path, list(drivers)), drivers, routes=routes)
    routes.watched = service.state.devices["behind"]
    with caplog.at_level("INFO", logger="energy_pipeline.collector"):
        fake_clock.run(run_for(service, 4.0))
    assert routes.stopped
    polls = lake(tmp_path, "polls").to_pandas().sort_values("ts")
    behind = polls[polls.device_id == "behind"]
    blocked = behind[~behind.ok]
    assert len(blocked) == 4  # the ticks at 1.0, 1.5, 2.0 and 2.5 s
    assert blocked.error.str.contains("vpn site-a is down").all()
    assert drivers["behind"].reads == behind.ok.sum()  # a blocked poll never asks the device
    first_after = behind[behind.ts > blocked.ts.max()].iloc[0]
    assert first_after.ok, "the first tick after the tunnel is back reads the device"
    assert polls[polls.device_id == "a"].ok.all()
    st = service.state.devices["behind"]
    assert st.state == "up" and st.backoff_skips == 0 and st.consecutive_failures == 0
    seen = ["starting", "up", "up", *["vpn_down"] * 4, "up"]  # at the polls from 0 to 3.5 s
    assert routes.seen == seen
    messages = [r.getMessage() for r in caplog.records if "behind" in str(r.__dict__)]
    assert messages.count("device unreachable: vpn down") == 1
    assert messages.count("device up again") == 1
