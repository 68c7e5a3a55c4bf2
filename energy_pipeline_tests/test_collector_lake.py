"""Encoding, the write-ahead log and sealing: the durable path, on real files and, for the
seal, a real process."""

from __future__ import annotations

import json
import os
import struct
import zlib
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from energy_pipeline.collector import sealjob
from energy_pipeline.collector.encode import OutcomeEncoder
from energy_pipeline.collector.frames import Payload, unpack
from energy_pipeline.collector.sealer import Sealer, SealProcess
from energy_pipeline.collector.wal import WriteAheadLog, decode_frames, encode_frame
from energy_pipeline.lake.layout import HOUR_US, MINUTE_US
from energy_pipeline.lake.schemas import POLLS_SCHEMA, RAW_DICT_SCHEMA, RAW_SCHEMA, TS_TYPE
from energy_pipeline.lake.seal import split_periods
from energy_pipeline.readings import Backfill, PollOutcome, Sample

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


def decoded(encoded) -> Payload:
    return unpack(encoded.payload)


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
    assert (encoded.raw_rows, encoded.poll_rows) == (3, 3)
    p = decoded(encoded)
    assert p.raw.value.tolist() == [1.0, 3.0, 6.0]
    assert [p.metrics[c] for c in p.raw.metric] == [
        "voltage_l1_n",
        "power_active_total",
        "power_active_total",
    ]
    assert [p.devices[c] for c in p.raw.device] == ["a", "a", "b"]
    assert [p.devices[c] for c in p.polls.device] == ["a", "b", "c"]
    assert p.polls.ok.tolist() == [1, 1, 0]
    assert p.polls.attempts.tolist() == [1, 1, 3]
    assert p.polls.error == [None, None, "dev: timeout"]
    assert p.polls.ts_us.tolist() == [int(T0 * 1e6)] * 3


def test_a_payload_carries_the_dictionaries_so_each_frame_decodes_alone():
    enc = OutcomeEncoder()
    enc.encode([outcome("a", T0)])
    later = decoded(enc.encode([outcome("ü-b", T0 + 1, names=("zählerstand",), values=(1.5,))]))
    assert later.devices == ["a", "ü-b"] and later.metrics == [*NAMES, "zählerstand"]
    assert [later.metrics[c] for c in later.raw.metric] == ["zählerstand"]


def test_a_payload_that_is_cut_or_padded_is_refused():
    whole = OutcomeEncoder().encode([outcome("a", T0), failed("b", T0)]).payload
    for bad in (whole[:-1], whole + b"x", whole[:10], b""):
        with pytest.raises(ValueError):
            unpack(bad)


def segment_payloads(path: Path) -> list[Payload]:
    return [unpack(payload) for _, payload in decode_frames(path.read_bytes())]


def test_wal_frames_round_trip_and_a_torn_tail_is_ignored(tmp_path):
    enc = OutcomeEncoder()
    wal = WriteAheadLog(tmp_path / "wal")
    frames = [encode_frame(enc.encode([outcome("a", T0 + i)]).payload) for i in range(3)]
    for f in frames:
        wal.append(f)
    wal.close()
    path = wal.path(wal.segment)
    path.write_bytes(path.read_bytes() + frames[0][:-7])  # torn write
    replayed = segment_payloads(path)
    assert [p.polls.ts_us[0] / 1e6 for p in replayed] == [T0, T0 + 1, T0 + 2]


def test_wal_corrupt_frame_stops_replay_there():
    good = encode_frame(OutcomeEncoder().encode([outcome("a", T0)]).payload)
    frame = bytearray(good)
    frame[-3] ^= 0xFF
    assert len(list(decode_frames(good + bytes(frame) + good))) == 1


def test_wal_cuts_back_a_failed_write_so_later_frames_stay_readable(tmp_path, monkeypatch):
    enc = OutcomeEncoder()
    wal = WriteAheadLog(tmp_path / "wal")
    wal.append(encode_frame(enc.encode([outcome("a", T0)]).payload))
    real_write = os.write

    def half_then_fail(fd, data):
        real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", half_then_fail)
    second = encode_frame(enc.encode([outcome("a", T0 + 1)]).payload)
    with pytest.raises(OSError):
        wal.append(second)
    monkeypatch.setattr(os, "write", real_write)
    wal.append(second)
    wal.close()
    assert [len(p.polls.ts_us) for p in segment_payloads(wal.path(wal.segment))] == [1, 1]


def test_split_periods_groups_by_minute_keeping_order():
    rows = pa.table(
        {
            "ts": pa.array([int((T0 + s) * 1e6) for s in (70, 5, 65)], TS_TYPE),
            "device_id": ["a", "a", "b"],
        }
    )
    parts = split_periods(rows, MINUTE_US)
    assert [start for start, _ in parts] == [int(T0 * 1e6), int(T0 * 1e6) + MINUTE_US]
    assert [p["device_id"].to_pylist() for _, p in parts] == [["a"], ["a", "b"]]
    assert len(split_periods(rows, HOUR_US)) == 1


class Inline:
    """The seal job run in this process, at once (one test below runs the real process)."""

    def __init__(self, job: dict):
        self.report = sealjob.run(job)

    def poll(self) -> dict:
        return self.report

    def wait(self) -> dict:
        return self.report


class Site:
    """A collector's WAL folder and a sealer over it."""

    def __init__(self, root: Path, collector_id: str = "main"):
        self.root = root
        self.enc = OutcomeEncoder()
        self.wal = WriteAheadLog(root / f"wal-{collector_id}")
        self.sealer = Sealer(root, collector_id, self.wal.path, launch=Inline)

    def commit(self, outcomes: list[PollOutcome]) -> None:
        e = self.enc.encode(outcomes)
        frame = encode_frame(e.payload)
        seq = self.wal.append(frame)
        last = max(int(o.ts.timestamp() * 1e6) for o in outcomes)
        self.sealer.add(seq, e.raw_rows + e.poll_rows, e.first_us, last, len(frame))

    def seal(self, before_us: int | None) -> int:
        self.wal.rotate()
        return self.sealer.seal(before_us).files

    def record_jobs(self) -> list[list[int]]:
        """From now on each job runs inline and its segment numbers are appended here."""
        jobs: list[list[int]] = []

        def launch(job: dict) -> Inline:
            jobs.append([s["seq"] for s in job["segments"]])
            return Inline(job)

        self.sealer.launch = launch
        return jobs


def test_sealing_writes_one_file_per_minute_named_by_collector(tmp_path):
    site = Site(tmp_path)
    site.commit([outcome("a", T0 + s) for s in (0, 30, 60, 90)] + [failed("b", T0 + 61)])
    assert site.seal(int(T0 * 1e6) + MINUTE_US) == 2  # only the first minute is complete
    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.parquet"))
    assert files == [
        "polls/date=2025-11-23/hour=04/main-20251123T0400.parquet",
        "raw_readings/date=2025-11-23/hour=04/main-20251123T0400.parquet",
    ]
    assert pq.read_schema(tmp_path / files[1]).remove_metadata() == RAW_SCHEMA
    assert pq.read_schema(tmp_path / files[0]).remove_metadata() == POLLS_SCHEMA
    assert site.sealer.rows == 2 * 3 + 3  # second minute kept: 2 polls x 3 readings, 3 poll rows
    assert site.sealer.watermark_us == int(T0 * 1e6) + MINUTE_US
    assert site.sealer.oldest_segment() == 0  # its segment still holds the second minute
    site.seal(None)
    assert site.sealer.segments == {}
    polls = lake_rows(tmp_path, "polls")
    errors = dict(zip(polls["device_id"].to_pylist(), polls["error"].to_pylist(), strict=True))
    assert polls.num_rows == 5 and errors == {"a": None, "b": "dev: timeout"}


def test_a_segment_sealed_in_parts_lands_each_row_once(tmp_path):
    site = Site(tmp_path)
    site.commit([outcome("a", T0 + s) for s in range(0, 180, 20)])
    for minute in (1, 2, 3):
        site.seal(int(T0 * 1e6) + minute * MINUTE_US)
    assert site.sealer.segments == {}
    raw = lake_rows(tmp_path, "raw_readings")
    assert raw.num_rows == 9 * 3
    assert len(set(zip(raw["ts"].to_pylist(), raw["metric"].to_pylist(), strict=True))) == 27


def test_sealing_twice_and_replaying_never_duplicates(tmp_path):
    batch = [outcome(d, T0 + s) for d in "ab" for s in range(0, 60, 5)]
    for _ in range(3):  # e.g. a crash after sealing, before the WAL segment was deleted
        site = Site(tmp_path / "site")
        site.commit(batch)
        site.seal(None)
    site.commit([outcome("c", T0 + 30)])  # a poll that finished after its minute sealed
    site.seal(None)
    raw = lake_rows(tmp_path / "site", "raw_readings")
    keys = list(
        zip(
            raw.column("device_id").to_pylist(),
            raw.column("ts").to_pylist(),
            raw.column("metric").to_pylist(),
            strict=True,
        )
    )
    assert len(keys) == len(set(keys)) == (2 * 12 + 1) * 3
    assert lake_rows(tmp_path / "site", "polls").num_rows == 2 * 12 + 1
    assert len(list((tmp_path / "site").rglob("*.parquet"))) == 2


def test_a_backlog_lands_in_batches_and_the_watermark_waits_for_the_last(tmp_path):
    site = Site(tmp_path)
    jobs = site.record_jobs()
    for s in range(5):
        site.commit([outcome("a", T0 + s)])
        site.wal.rotate()
    sizes = {seg.size for seg in site.sealer.segments.values()}
    assert len(sizes) == 1 and sizes.pop() == (site.wal.path(0)).stat().st_size
    site.sealer.batch_bytes = 2 * site.sealer.segments[0].size
    target = int(T0 * 1e6) + MINUTE_US
    for expected in ([0, 1], [2, 3]):
        site.sealer.start(target)
        report = site.sealer.finish(block=True)
        assert jobs[-1] == expected and report is not None and not report.whole
        assert site.sealer.watermark_us is None  # minutes are complete only once all is read
    site.sealer.start(target)
    assert site.sealer.finish(block=True).whole and jobs[-1] == [4]
    assert site.sealer.watermark_us == target and site.sealer.segments == {}
    assert lake_rows(tmp_path, "polls").num_rows == 5


def test_a_segment_over_the_batch_size_kept_for_its_later_rows_never_stalls_the_watermark(
    tmp_path,
):
    """One process past ~1,400 devices writes more than a batch in a minute's segment, and that
    segment stays (it holds the next minute's first seconds) while newer ones pile up behind
    it. A batch must still complete the minute, and the kept segment is not read again."""
    site = Site(tmp_path)
    jobs = site.record_jobs()
    site.sealer.batch_bytes = 1  # every segment is over it
    site.commit([outcome("a", T0 + s) for s in range(0, 66, 5)])  # minute T0 and 5 s after
    site.wal.rotate()
    site.commit([outcome("a", T0 + 66)])
    site.wal.rotate()
    target = int(T0 * 1e6) + MINUTE_US
    site.sealer.start(target)
    report = site.sealer.finish(block=True)
    assert jobs == [[0]] and report is not None and report.whole
    assert site.sealer.watermark_us == target
    site.commit([outcome("a", T0 + 67)])
    site.wal.rotate()
    site.sealer.start(target)  # nothing before the target is left: no job at all
    assert site.sealer.running is None and jobs == [[0]]
    assert lake_rows(tmp_path, "polls").num_rows == 12


def test_a_backfilled_reading_older_than_its_poll_makes_its_segment_due(tmp_path):
    site = Site(tmp_path)
    site.commit([outcome("a", T0 + 60)])
    site.wal.rotate()
    poll = outcome("a", T0 + 61)
    poll.sample.backfill = Backfill(
        np.array([int((T0 + 30) * 1e6)]), ("voltage_l1_n",), np.array([229.0])
    )
    site.commit([poll])
    site.wal.rotate()
    assert site.sealer.segments[1].first_us == int((T0 + 30) * 1e6)
    site.sealer.start(int(T0 * 1e6) + MINUTE_US)
    site.sealer.finish(block=True)
    raw = lake_rows(tmp_path, "raw_readings")
    assert raw["ts"].to_pylist() == [datetime.fromtimestamp(T0 + 30, UTC)]


def test_a_blocking_seal_goes_on_batch_by_batch_and_sums_the_reports(tmp_path):
    site = Site(tmp_path)
    for s in range(3):
        site.commit([outcome("a", T0 + s), outcome("b", T0 + 10 * s)])
        site.wal.rotate()
    site.sealer.batch_bytes = 1  # every job still takes one segment
    report = site.sealer.seal(None)
    assert report.whole and report.polls == 6 and site.sealer.segments == {}
    assert report.last_ack == {"a": int((T0 + 2) * 1e6), "b": int((T0 + 20) * 1e6)}
    assert lake_rows(tmp_path, "raw_readings").num_rows == 6 * 3


def test_other_collectors_files_are_never_touched(tmp_path):
    for cid in ("main", "shard2"):
        site = Site(tmp_path, cid)
        site.commit([outcome("a", T0)])
        site.seal(None)
    names = sorted(p.name for p in (tmp_path / "raw_readings").rglob("*.parquet"))
    assert names == ["main-20251123T0400.parquet", "shard2-20251123T0400.parquet"]


def arrow_frame(outcomes: list[PollOutcome]) -> bytes:
    """A frame as collectors before the packed payload wrote it: two Arrow IPC streams."""

    def stream(table: pa.Table) -> bytes:
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        return sink.getvalue().to_pybytes()

    raw = pa.table(
        {
            "ts": pa.array([o.ts for o in outcomes for _ in o.sample.names], TS_TYPE),
            "device_id": [o.device_id for o in outcomes for _ in o.sample.names],
            "metric": [n for o in outcomes for n in o.sample.names],
            "value": [float(v) for o in outcomes for v in o.sample.values],
        },
        schema=RAW_SCHEMA,
    ).cast(RAW_DICT_SCHEMA)
    polls = pa.table(
        {
            "ts": [o.ts for o in outcomes],
            "device_id": [o.device_id for o in outcomes],
            "ok": [o.ok for o in outcomes],
            "started_at": [o.started_at for o in outcomes],
            "finished_at": [o.finished_at for o in outcomes],
            "latency_ms": [o.latency_ms for o in outcomes],
            "attempts": [o.attempts for o in outcomes],
            "error": [o.error for o in outcomes],
        },
        schema=POLLS_SCHEMA,
    )
    raw_bytes = stream(raw)
    payload = struct.pack("<I", len(raw_bytes)) + raw_bytes + stream(polls)
    return struct.pack("<4sII", b"EPW1", len(payload), zlib.crc32(payload)) + payload


def test_a_log_left_by_an_arrow_era_collector_still_lands(tmp_path):
    site = Site(tmp_path)
    site.wal.append(arrow_frame([outcome("old", T0), outcome("old", T0 + 1)]))
    site.commit([outcome("new", T0 + 2)])
    site.sealer.found(site.wal.segments())
    report = (site.wal.rotate(), site.sealer.seal(None))[1]
    assert report.polls == 3
    assert report.last_ack == {"old": int((T0 + 1) * 1e6), "new": int((T0 + 2) * 1e6)}
    raw = lake_rows(tmp_path, "raw_readings")
    assert sorted(set(raw["device_id"].to_pylist())) == ["new", "old"]
    assert raw.num_rows == 3 * 3


def test_the_seal_process_lands_rows_and_reports_os_errors_and_crashes(tmp_path):
    site = Site(tmp_path / "ok")
    site.sealer.launch = SealProcess  # the real `python -m energy_pipeline.collector.sealjob`
    site.commit([outcome("a", T0)])
    assert site.seal(None) == 2
    assert lake_rows(tmp_path / "ok", "polls").num_rows == 1

    blocker = tmp_path / "a-file"
    blocker.write_bytes(b"")
    site = Site(blocker / "lake")
    site.wal = WriteAheadLog(tmp_path / "wal2")
    site.sealer = Sealer(blocker / "lake", "main", site.wal.path)
    site.commit([outcome("a", T0)])
    with pytest.raises(NotADirectoryError):  # the child's OSError, errno and all
        site.seal(None)
    assert site.sealer.rows == 4 and site.wal.segments() == [0]  # nothing forgotten

    with pytest.raises(OSError, match="seal process exited with 1: KeyError"):
        SealProcess({"segments": []}).wait()


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
            "collector": {"wal_dir": str(blocker / "wal"), "max_pending_mb": 0.0005},
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
    assert 0 < state.dropped_rows < 5 * 3  # the oldest went once over 512 B, the newest stayed
    kept = landing.unwritten_rows
    assert kept > 0
    blocker.unlink()  # space (here: the folder) comes back
    landing.persist(None)
    assert state.storage_error is None and landing.unwritten_rows == 0
    assert state.devices["a"].last_ack_ts == datetime.fromtimestamp(T0 + 4, UTC)
    landing.final_seal()
    landed = lake_rows(tmp_path / "data", "polls")
    assert landed.num_rows == kept // 4  # each poll: 3 readings + 1 poll row


def refusing_lake(tmp_path: Path):
    """A landing of device "a" on a still clock at T0 whose lake refuses writes (ENOTDIR, a
    real OS error) while its WAL, in another folder, takes appends; unlink `data/raw_readings`
    to end the outage."""
    from energy_pipeline.collector.landing import Landing
    from energy_pipeline.collector.state import CollectorState, DeviceState
    from energy_pipeline.config import Config

    data = tmp_path / "data"
    data.mkdir()
    (data / "raw_readings").write_bytes(b"")
    config = Config.model_validate(
        {"storage": {"data_dir": str(data)}, "collector": {"wal_dir": str(tmp_path / "wal")}}
    )
    state = CollectorState("main", 1, datetime.fromtimestamp(T0, UTC))
    state.devices["a"] = DeviceState("a", 1.0)
    clock = StillClock(T0)
    return data, state, clock, Landing(config, state, clock)


def test_after_a_lake_outage_the_backlog_lands_one_batch_a_tick(tmp_path):
    data, state, clock, landing = refusing_lake(tmp_path)
    landing.sealer.launch = Inline
    landing.sealer.batch_bytes = 1
    landing.recover()
    for minute in range(4):
        clock.now = T0 + 60 * minute + 5
        landing.stage([outcome("a", T0 + 60 * minute)])
        landing.persist(None)
    assert state.storage_error and "Not a directory" in state.storage_error
    assert state.devices["a"].last_ack_ts == datetime.fromtimestamp(T0 + 180, UTC)
    backlog = landing.wal.segments()
    assert len(backlog) >= 4
    (data / "raw_readings").unlink()
    clock.now = T0 + 200  # past the retry backoff, still before the next minute's seal
    ticks = 0
    while state.sealed_watermark != datetime.fromtimestamp(T0 + 180, UTC):
        landing.persist(None)
        ticks += 1
        assert ticks <= len(backlog)
    # a job for each segment but the newest (it holds only the open minute T0 + 180 and is
    # not read), and one tick more to take the last report
    assert ticks == len(backlog)
    assert state.storage_error is None
    assert lake_rows(data, "polls").num_rows == 3  # the minute T0 + 180 is still open
    landing.final_seal()
    assert lake_rows(data, "polls").num_rows == 4 and landing.wal.segments() == []


def test_a_refusing_lake_is_retried_with_capped_backoff_not_every_tick(tmp_path, caplog):
    data, state, clock, landing = refusing_lake(tmp_path)
    launches: list[float] = []

    def launch(job: dict) -> Inline:
        launches.append(clock.now - T0)
        return Inline(job)

    landing.sealer.launch = launch
    landing.recover()
    assert launches == []  # an empty log needs no seal process at start-up
    failing = []
    for s in range(251):
        clock.now = T0 + s
        if s == 180:
            (data / "raw_readings").unlink()
        landing.stage([outcome("a", T0 + s)])
        landing.persist(None)
        assert state.devices["a"].last_ack_ts == datetime.fromtimestamp(T0 + s, UTC)
        failing.append(state.storage_error is not None)
    # nothing before T0 to land, so no process until 65: the minute T0, refused, then retried
    # after 1, 2, 4, ... s up to 60 s; 188 lands it; 245 the next
    assert launches == [65, 66, 68, 72, 80, 96, 128, 188, 245]
    assert failing == [False] * 65 + [True] * (189 - 65) + [False] * (251 - 189)
    said = [r.getMessage() for r in caplog.records]
    assert said.count("data directory writable again") == 1  # one state change, said once
    assert state.sealed_watermark == datetime.fromtimestamp(T0 + 240, UTC)
    assert lake_rows(data, "polls").num_rows == 240


def test_seal_retries_double_up_to_the_cap_and_never_overflow():
    from energy_pipeline.collector.landing import SEAL_RETRY_MAX_S, seal_retry_delay

    assert [seal_retry_delay(n) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert seal_retry_delay(100_000) == SEAL_RETRY_MAX_S  # 2.0 ** 99_999 would raise


def test_polls_are_acknowledged_while_the_seal_process_runs(tmp_path):
    from energy_pipeline.collector.landing import Landing
    from energy_pipeline.collector.state import CollectorState, DeviceState
    from energy_pipeline.config import Config

    config = Config.model_validate({"storage": {"data_dir": str(tmp_path / "data")}})
    state = CollectorState("main", 1, datetime.fromtimestamp(T0, UTC))
    state.devices["a"] = DeviceState("a", 1.0)
    clock = StillClock(T0 + 50)
    landing = Landing(config, state, clock)
    landing.recover()
    for s in range(50):
        landing.stage([outcome("a", T0 + s)])
    landing.persist(None)  # the first tick's seal: nothing before T0, the watermark moves there
    landing.settle()
    assert state.sealed_watermark == datetime.fromtimestamp(T0, UTC)
    clock.now = T0 + 66  # the minute T0 is complete: its seal starts
    landing.stage([outcome("a", T0 + 65)])
    landing.persist(None)
    assert landing.sealer.running is not None
    clock.now = T0 + 67
    landing.stage([outcome("a", T0 + 66)])
    landing.persist(None)  # a process start alone takes longer than this
    assert landing.sealer.running is not None
    assert state.devices["a"].last_ack_ts == datetime.fromtimestamp(T0 + 66, UTC)
    assert state.sealed_watermark == datetime.fromtimestamp(T0, UTC)  # not until it reports
    landing.settle()
    assert state.sealed_watermark == datetime.fromtimestamp(T0 + 60, UTC)
    assert lake_rows(tmp_path / "data", "polls").num_rows == 50
    assert landing.wal.segments() == [2, 3]  # segment 1 held only the sealed minute: gone
    clock.now = T0 + 130  # stopping: polls drained, every minute before this one is complete
    landing.final_seal()
    landing.close()
    assert lake_rows(tmp_path / "data", "polls").num_rows == 52
    assert state.sealed_watermark == datetime.fromtimestamp(T0 + 120, UTC)  # in the status
    assert landing.wal.segments() == []


def test_a_seal_process_dies_with_its_collector_and_drops_an_orphaned_job(tmp_path):
    """kill -9 of the collector mid-seal leaves what a crash inside it would (temp files, an
    intact WAL), never a seal still writing while a restarted collector replays."""
    import signal
    import subprocess
    import sys
    import time

    job_r, job_w = os.pipe()  # this test holds the write end: the job never comes, no EOF either
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import subprocess, sys, time\n"
            "child = subprocess.Popen([sys.executable, '-m', 'energy_pipeline.collector.sealjob'],"
            " stdin=int(sys.argv[1]))\n"
            "print(child.pid, flush=True)\n"
            "time.sleep(60)\n",
            str(job_r),
        ],
        stdout=subprocess.PIPE,
        text=True,
        pass_fds=(job_r,),
    )
    os.close(job_r)
    child = int(parent.stdout.readline())
    stat = Path(f"/proc/{child}/stat")
    niced = min(19, os.getpriority(os.PRIO_PROCESS, 0) + sealjob.NICE)  # under `nice` too
    deadline = time.monotonic() + 30
    while int(stat.read_text().rsplit(")", 1)[1].split()[16]) != niced:  # armed, then niced
        assert time.monotonic() < deadline, "the seal process never started"
        time.sleep(0.02)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    while stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] != "Z":
        assert time.monotonic() < deadline + 10, "the seal process outlived its collector"
        time.sleep(0.02)
    os.close(job_w)

    job = {"data_dir": str(tmp_path), "collector_id": "main", "before_us": None, "segments": []}
    orphan = subprocess.run(
        [sys.executable, "-m", "energy_pipeline.collector.sealjob"],
        input=json.dumps({**job, "parent_pid": 1}).encode(),
        capture_output=True,
        check=False,
    )
    assert orphan.returncode == sealjob.EXIT_ORPHANED and orphan.stdout == b""
