"""Encoding, the write-ahead log and sealing: the durable path, on real files."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from energy_pipeline.collector.encode import OutcomeEncoder
from energy_pipeline.collector.sealer import Sealer
from energy_pipeline.collector.wal import WriteAheadLog, decode_frames, encode_frame
from energy_pipeline.lake.seal import HOUR_US, MINUTE_US, LakeWriter, split_periods
from energy_pipeline.readings import POLLS_SCHEMA, RAW_SCHEMA, PollOutcome, Sample

NAMES = ("voltage_l1_n", "current_l1", "power_active_total")
T0 = 1_763_870_400.0  # 2025-11-23T04:00:00Z, a minute boundary


def outcome(dev: str, ts: float, values=(230.0, 5.0, 1150.0), names=NAMES) -> PollOutcome:
    at = datetime.fromtimestamp(ts, UTC)
    later = datetime.fromtimestamp(ts + 0.01, UTC)
    return PollOutcome(dev, at, at, later, 1, Sample(names, np.array(values, dtype=float)))


def failed(dev: str, ts: float) -> PollOutcome:
    at = datetime.fromtimestamp(ts, UTC)
    return PollOutcome(dev, at, at, at, 3, None, "dev: timeout", "timeout")


def lake_rows(data_dir: Path, table: str) -> pa.Table:
    files = sorted((data_dir / table).rglob("*.parquet"))
    return pa.concat_tables([pq.read_table(f) for f in files]) if files else pa.table({})


def test_encoder_drops_nan_vectorised_and_counts_per_device():
    enc = OutcomeEncoder()
    encoded = enc.encode(
        [
            outcome("a", T0, (1.0, np.nan, 3.0)),
            outcome("b", T0, (np.nan, np.nan, 6.0)),
            failed("c", T0),
        ]
    )
    assert encoded.invalid == {"a": 1, "b": 2}
    raw = pa.Table.from_batches([encoded.raw]).cast(RAW_SCHEMA)
    assert raw.column("value").to_pylist() == [1.0, 3.0, 6.0]
    assert raw.column("metric").to_pylist() == [
        "voltage_l1_n",
        "power_active_total",
        "power_active_total",
    ]
    assert raw.column("device_id").to_pylist() == ["a", "a", "b"]
    polls = pa.Table.from_batches([encoded.polls])
    assert polls.column("ok").to_pylist() == [True, True, False]
    assert polls.column("attempts").to_pylist() == [1, 1, 3]
    assert polls.column("error").to_pylist() == [None, None, "dev: timeout"]


def test_wal_frames_round_trip_and_a_torn_tail_is_ignored(tmp_path):
    enc = OutcomeEncoder()
    wal = WriteAheadLog(tmp_path / "wal")
    frames = [enc.encode([outcome("a", T0 + i)]) for i in range(3)]
    for e in frames:
        wal.append(encode_frame(e.raw, e.polls))
    wal.close()
    path = wal.path(wal.segment)
    data = path.read_bytes()
    path.write_bytes(data + encode_frame(frames[0].raw, frames[0].polls)[:-7])  # torn write
    replayed = list(WriteAheadLog(tmp_path / "wal").replay())
    assert len(replayed) == 3
    assert [f.polls.column("ts").to_pylist()[0].timestamp() for f in replayed] == [
        T0,
        T0 + 1,
        T0 + 2,
    ]


def test_wal_corrupt_frame_stops_replay_there():
    enc = OutcomeEncoder()
    a = enc.encode([outcome("a", T0)])
    frame = bytearray(encode_frame(a.raw, a.polls))
    good = bytes(frame)
    frame[-3] ^= 0xFF
    assert len(list(decode_frames(good + bytes(frame) + good))) == 1


def test_wal_cuts_back_a_failed_write_so_later_frames_stay_readable(tmp_path, monkeypatch):
    enc = OutcomeEncoder()
    wal = WriteAheadLog(tmp_path / "wal")
    first = enc.encode([outcome("a", T0)])
    wal.append(encode_frame(first.raw, first.polls))
    real_write = os.write

    def half_then_fail(fd, data):
        real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", half_then_fail)
    second = enc.encode([outcome("a", T0 + 1)])
    with pytest.raises(OSError):
        wal.append(encode_frame(second.raw, second.polls))
    monkeypatch.setattr(os, "write", real_write)
    wal.append(encode_frame(second.raw, second.polls))
    wal.close()
    replayed = list(WriteAheadLog(tmp_path / "wal").replay())
    assert [f.polls.num_rows for f in replayed] == [1, 1]


def test_split_periods_groups_by_minute_keeping_order():
    enc = OutcomeEncoder()
    e = enc.encode([outcome("a", T0 + 70), outcome("a", T0 + 5), outcome("b", T0 + 65)])
    parts = split_periods(pa.Table.from_batches([e.raw]), MINUTE_US)
    assert [start for start, _ in parts] == [int(T0 * 1e6), int(T0 * 1e6) + MINUTE_US]
    assert [p.num_rows for _, p in parts] == [3, 6]
    assert len(split_periods(pa.Table.from_batches([e.raw]), HOUR_US)) == 1


def test_sealing_writes_one_file_per_minute_named_by_collector(tmp_path):
    enc = OutcomeEncoder()
    sealer = Sealer(LakeWriter(tmp_path, "main"))
    e = enc.encode([outcome("a", T0 + s) for s in (0, 30, 60, 90)] + [failed("b", T0 + 61)])
    sealer.add(1, pa.Table.from_batches([e.raw]), pa.Table.from_batches([e.polls]))
    sealer.seal(int(T0 * 1e6) + MINUTE_US)  # only the first minute is complete
    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.parquet"))
    assert files == [
        "polls/date=2025-11-23/hour=04/main-20251123T0400.parquet",
        "raw_readings/date=2025-11-23/hour=04/main-20251123T0400.parquet",
    ]
    assert pq.read_schema(tmp_path / files[1]).remove_metadata() == RAW_SCHEMA
    assert pq.read_schema(tmp_path / files[0]).remove_metadata() == POLLS_SCHEMA
    assert sealer.rows == 2 * 3 + 3  # second minute kept: 2 polls x 3 readings, 3 poll rows
    assert sealer.watermark_us == int(T0 * 1e6) + MINUTE_US


def test_sealing_twice_and_replaying_never_duplicates(tmp_path):
    enc = OutcomeEncoder()
    batch = enc.encode([outcome(d, T0 + s) for d in "ab" for s in range(0, 60, 5)])
    for _ in range(3):  # e.g. a crash after sealing, before the WAL segment was deleted
        sealer = Sealer(LakeWriter(tmp_path, "main"))
        sealer.add(1, pa.Table.from_batches([batch.raw]), pa.Table.from_batches([batch.polls]))
        sealer.seal(None)
    late = enc.encode([outcome("c", T0 + 30)])  # a poll that finished after its minute sealed
    sealer.add(2, pa.Table.from_batches([late.raw]), pa.Table.from_batches([late.polls]))
    sealer.seal(None)
    raw = lake_rows(tmp_path, "raw_readings")
    keys = list(
        zip(
            raw.column("device_id").to_pylist(),
            raw.column("ts").to_pylist(),
            raw.column("metric").to_pylist(),
            strict=True,
        )
    )
    assert len(keys) == len(set(keys)) == (2 * 12 + 1) * 3
    assert lake_rows(tmp_path, "polls").num_rows == 2 * 12 + 1
    assert len(list(tmp_path.rglob("*.parquet"))) == 2


def test_other_collectors_files_are_never_touched(tmp_path):
    enc = OutcomeEncoder()
    e = enc.encode([outcome("a", T0)])
    for cid in ("main", "shard2"):
        s = Sealer(LakeWriter(tmp_path, cid))
        s.add(1, pa.Table.from_batches([e.raw]), pa.Table.from_batches([e.polls]))
        s.seal(None)
    names = sorted(p.name for p in (tmp_path / "raw_readings").rglob("*.parquet"))
    assert names == ["main-20251123T0400.parquet", "shard2-20251123T0400.parquet"]


class StillClock:
    def __init__(self, now: float):
        self.now = now

    def time(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_refused_writes_keep_readings_up_to_the_bound_then_land(tmp_path):
    from energy_pipeline.collector.landing import Landing
    from energy_pipeline.collector.state import CollectorState, DeviceState
    from energy_pipeline.config import Config

    blocker = tmp_path / "not-a-dir"
    blocker.write_bytes(b"")  # the WAL folder would live under a file: ENOTDIR, a real OS error
    config = Config.model_validate(
        {
            "storage": {"data_dir": str(tmp_path / "data")},
            "collector": {"wal_dir": str(blocker / "wal"), "max_pending_mb": 0.004},
        }
    )
    state = CollectorState("main", 1, datetime.fromtimestamp(T0, UTC))
    state.devices["a"] = DeviceState("a", 1.0)
    landing = Landing(config, state, StillClock(T0 + 5))
    for s in range(5):
        landing.stage([outcome("a", T0 + s)])
        landing.persist(None)
    assert state.storage_error and "Not a directory" in state.storage_error
    assert state.devices["a"].last_ack_ts is None  # nothing durable, nothing acknowledged
    assert 0 < state.dropped_rows < 5 * 3  # the oldest went once over 4 KB, the newest stayed
    kept = landing.unwritten_rows
    assert kept > 0
    blocker.unlink()  # space (here: the folder) comes back
    landing.persist(None)
    assert state.storage_error is None and landing.unwritten_rows == 0
    assert state.devices["a"].last_ack_ts == datetime.fromtimestamp(T0 + 4, UTC)
    landing.final_seal()
    landed = lake_rows(tmp_path / "data", "polls")
    assert landed.num_rows == kept // 4  # each poll: 3 readings + 1 poll row
