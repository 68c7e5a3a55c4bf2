"""The worker → parent link codec (pure: offers in, bytes, offers out)."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa

from energy_pipeline.collector.link import FrameReader, Offer, OfferEncoder
from energy_pipeline.collector.state import CollectorState, DeviceState
from energy_pipeline.readings import PollOutcome, Sample

T0 = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
NAMES = ("power_active_total", "voltage_l1", "energy_active_import_total")


def offer(second: int, names: tuple[str, ...] = NAMES) -> Offer:
    ts = T0 + timedelta(seconds=second)
    state = CollectorState("site-w1", 4242, T0, commits=second)
    state.devices = {
        "a": DeviceState("a", 1.0, "up", last_ack_ts=ts, polls_ok=second, last_latency_ms=1.5),
        "b": DeviceState("b", 1.0, "down", last_error="b: no answer", consecutive_failures=3),
    }
    later = ts + timedelta(milliseconds=4)
    values = np.array([1200.5, np.nan, 10.0 + second])
    backfill = pa.table({"x": [1, 2]})
    return Offer(
        state,
        [
            PollOutcome("a", ts, ts, later, 1, Sample(names, values, {"fw": "1.2"}, backfill)),
            PollOutcome("b", ts, ts, later, 2, None, "b: no answer", "timeout"),
            PollOutcome("c", ts, ts, later, 1, Sample(("t",), np.array([21.5]))),
        ],
    )


def same(a: Offer, b: Offer) -> None:
    assert a.state.devices == b.state.devices
    assert (a.state.collector_id, a.state.pid, a.state.commits) == (
        b.state.collector_id,
        b.state.pid,
        b.state.commits,
    )
    assert len(a.outcomes) == len(b.outcomes)
    for x, y in zip(a.outcomes, b.outcomes, strict=True):
        assert (x.device_id, x.ts, x.started_at, x.finished_at, x.attempts) == (
            y.device_id,
            y.ts,
            y.started_at,
            y.finished_at,
            y.attempts,
        )
        assert (x.error, x.error_kind) == (y.error, y.error_kind)
        assert (x.sample is None) == (y.sample is None)
        if x.sample is not None and y.sample is not None:
            assert x.sample.names == y.sample.names
            np.testing.assert_array_equal(x.sample.values, y.sample.values)
            assert x.sample.attributes == y.sample.attributes
            assert (x.sample.backfill is None) == (y.sample.backfill is None)
            if x.sample.backfill is not None:
                assert x.sample.backfill.equals(y.sample.backfill)


def test_offers_round_trip_through_frames_split_anywhere() -> None:
    encoder, reader = OfferEncoder(), FrameReader()
    sent = [offer(s) for s in range(3)]
    stream = b"".join(encoder.encode(o) for o in sent)
    got = []
    for i in range(0, len(stream), 7):
        got.extend(reader.feed(stream[i : i + 7]))
    assert reader.broken is None
    assert len(got) == 3
    for a, b in zip(sent, got, strict=True):
        same(a, b)


def test_value_names_travel_once_per_device_and_again_when_they_change() -> None:
    encoder, reader = OfferEncoder(), FrameReader()
    first = encoder.encode(offer(0))
    steady = encoder.encode(offer(1))
    changed = encoder.encode(offer(2, ("power_active_total", "voltage_l2", "energy")))
    assert b"voltage_l1" in first and b"voltage_l1" not in steady
    assert b"voltage_l2" in changed
    got = reader.feed(first + steady + changed)
    assert [o.outcomes[0].sample.names for o in got] == [
        NAMES,
        NAMES,
        ("power_active_total", "voltage_l2", "energy"),
    ]


def test_a_frame_that_does_not_decode_ends_the_stream_and_says_why() -> None:
    reader = FrameReader()
    good = OfferEncoder().encode(offer(0))
    junk = pickle.dumps({"not": "an offer"})
    frame = len(junk).to_bytes(4, "little") + junk
    got = reader.feed(good + frame + good)
    assert len(got) == 1
    assert reader.broken is not None and "undecodable frame" in reader.broken
    assert reader.feed(good) == []


def test_names_the_parent_never_got_break_the_stream() -> None:
    encoder = OfferEncoder()
    encoder.encode(offer(0))  # written to a pipe this reader never saw
    reader = FrameReader()
    assert reader.feed(encoder.encode(offer(1))) == []
    assert reader.broken is not None and "KeyError" in reader.broken


def test_an_announced_giant_frame_is_refused_before_buffering_it() -> None:
    reader = FrameReader()
    assert reader.feed((2**31).to_bytes(4, "little") + b"x") == []
    assert reader.broken is not None and "announced" in reader.broken
