"""The vectorised line-protocol encoder against a per-value reference written from the InfluxDB
docs' rules, on random samples with NaN, infinities, states and awkward names."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest

from energy_pipeline.live.lineprotocol import (
    PointEncoder,
    epoch_us,
    escape_key,
    escape_measurement,
    series_key,
)
from energy_pipeline.readings import PollOutcome, Sample

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SCALE = {"ns": 1000, "us": 1, "ms": 1 / 1000, "s": 1 / 1_000_000}


def test_escaping_follows_the_docs() -> None:
    assert escape_measurement('cpu load,"x"=1') == 'cpu\\ load\\,"x"=1'
    assert escape_key("a b,c=d") == "a\\ b\\,c\\=d"
    assert escape_key("two\nlines") == "two lines"
    key = series_key("energy", {"site": "Main st, 5", "device_id": "m1", "empty": "", "z": "a=b"})
    assert key == "energy,device_id=m1,site=Main\\ st\\,\\ 5,z=a\\=b"


def reference(outcome: PollOutcome, series: str, ints: frozenset[str], precision: str) -> str:
    """The naive way: one f-string per value."""
    sample = outcome.sample
    assert sample is not None
    fields = []
    for name, value in zip(sample.names, sample.values.tolist(), strict=True):
        if not np.isfinite(value):
            continue
        text = f"{int(value)}i" if name in ints else repr(value)
        fields.append(f"{escape_key(name)}={text}")
    stamp = epoch_us(outcome.ts) * SCALE[precision]
    return f"{series} {','.join(fields)} {int(stamp)}" if fields else ""


def parse(line: str) -> tuple[str, dict[str, str], str]:
    """Series key, fields and timestamp, split at the unescaped separators."""
    series, fields, stamp = re.split(r"(?<!\\) ", line)
    pairs = (re.split(r"(?<!\\)=", pair) for pair in re.split(r"(?<!\\),", fields))
    return series, dict(pairs), stamp


@pytest.mark.parametrize("precision", ["ns", "us", "ms", "s"])
def test_batches_match_the_per_value_reference(precision: str) -> None:
    rng = np.random.default_rng(7)
    names = (*(f"metric_{i}" for i in range(20)), "mode", "with space")
    encoder = PointEncoder(
        "energy", precision, {"a": {"room": "1, 2"}}, {"a": frozenset({"mode"})}, {"site": "s"}
    )
    outcomes = []
    for i in range(200):
        values = rng.normal(0, 10.0 ** rng.integers(-8, 12), len(names))
        values[rng.random(len(names)) < 0.1] = np.nan
        values[rng.random(len(names)) < 0.02] = np.inf
        values[-2] = float(rng.integers(0, 5))
        ts = T0 + timedelta(milliseconds=250 * i)
        device = "a" if i % 3 else "b"
        outcomes.append(PollOutcome(device, ts, ts, ts, 1, Sample(names, values)))
    outcomes.append(
        PollOutcome("b", T0, T0, T0, 1, Sample(("x",), np.array([np.nan])))
    )  # no field: no line
    body = encoder.outcomes(outcomes).decode()
    expected = [
        reference(
            o,
            encoder.series(o.device_id),
            encoder.integer_fields.get(o.device_id, frozenset()),
            precision,
        )
        for o in outcomes
    ]
    lines = body.splitlines()
    assert body.endswith("\n") and len(lines) == len([e for e in expected if e])
    for line, want in zip(lines, [e for e in expected if e], strict=True):
        (series, got, stamp), (ref_series, ref, ref_stamp) = parse(line), parse(want)
        assert (series, stamp) == (ref_series, ref_stamp)
        assert got.keys() == ref.keys()
        for key, text in got.items():  # Arrow and repr may spell a float differently
            if text.endswith("i"):
                assert text == ref[key]
            else:
                assert float(text) == float(ref[key])


def test_lake_rows_encode_like_polls() -> None:
    encoder = PointEncoder("energy", "ms", {}, {"m1": frozenset({"state"})}, {"site": "s"})
    names = ("power", "state", "volts")
    polls = [
        PollOutcome(dev, ts, ts, ts, 1, Sample(names, np.array([1.5 * k, 2.0, np.nan])))
        for k, (dev, ts) in enumerate([("m1", T0), ("m1", T0 + timedelta(seconds=1)), ("m2", T0)])
    ]
    rows = [
        (p.ts, p.device_id, n, v)
        for p in polls
        for n, v in zip(names, p.sample.values.tolist(), strict=True)  # type: ignore[union-attr]
        if v == v
    ]
    table = pa.table(
        {
            "ts": pa.array([r[0] for r in rows], pa.timestamp("us", tz="UTC")),
            "device_id": [r[1] for r in rows],
            "metric": [r[2] for r in rows],
            "value": [r[3] for r in rows],
        }
    )
    assert encoder.long_table(table) == encoder.outcomes(polls)
    assert b"state=2i" in encoder.long_table(table) and b"state=2 " in encoder.outcomes(polls)
