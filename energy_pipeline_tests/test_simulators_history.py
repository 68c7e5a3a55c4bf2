"""`simulate-history`: the simulators' models landed through the collector's lake writer."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from energy_pipeline.lake.seal import earliest_other_minute
from energy_pipeline.simulators.history import instants
from energy_pipeline_tests.collector_support import collector_site, janitza, read_lake
from energy_pipeline_tests.conftest import run_cli


def test_instants_are_aligned_and_half_open():
    start = datetime(2026, 1, 1, 0, 0, 7, tzinfo=UTC)
    ts = instants(start, start + timedelta(minutes=1), 15)
    assert [datetime.fromtimestamp(t, UTC).second for t in ts] == [15, 30, 45, 0]


@pytest.mark.slow
def test_history_lands_through_the_lake_writer_idempotently(tmp_path):
    config = collector_site(tmp_path, [janitza("umg1", 15020, interval=15), janitza("umg2", 15021)])
    data = tmp_path / "data"
    first = run_cli("simulate-history", "--config", str(config), "--days", "0.01", "--json")
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout)
    assert "device-days" in first.stderr  # the progress bar
    raw = read_lake(data, "raw_readings").to_pandas()
    polls = read_lake(data, "polls").to_pandas()
    assert summary["readings"] == len(raw) > 0
    counts = polls.groupby("device_id").size()
    start, end = (datetime.fromisoformat(summary[k]) for k in ("start", "end"))
    assert end - start == timedelta(days=0.01)
    assert counts["umg1"] == len(instants(start, end, 15)) == 57  # 864 s from :36 past
    assert counts["umg2"] == 864
    assert (polls.ts.dt.second % 15 == 0)[polls.device_id == "umg1"].all()
    assert not raw.duplicated(["device_id", "ts", "metric"]).any()
    assert raw.value.notna().all()
    names = {p.name.split("-")[0] for p in (data / "raw_readings").rglob("*.parquet")}
    assert names == {"history"}
    status = json.loads((data / "state" / "collector-history.json").read_text())
    assert status["sealed_watermark"] == summary["end"]

    again = run_cli("simulate-history", "--config", str(config), "--days", "0.01", "--json")
    assert again.returncode == 0, again.stderr
    raw2 = read_lake(data, "raw_readings").to_pandas()
    assert not raw2.duplicated(["device_id", "ts", "metric"]).any()


def test_history_stops_where_a_live_collector_began(tmp_path):
    live = tmp_path / "polls" / "date=2026-01-02" / "hour=03"
    live.mkdir(parents=True)
    (live / "main-20260102T0304.parquet").write_bytes(b"")
    (live / "history-20260102T0100.parquet").write_bytes(b"")
    assert earliest_other_minute(tmp_path, "history") == datetime(2026, 1, 2, 3, 4, tzinfo=UTC)
    assert earliest_other_minute(tmp_path, "main") == datetime(2026, 1, 2, 1, 0, tzinfo=UTC)


def test_history_rejects_a_bad_collector_id(tmp_path):
    config = collector_site(tmp_path, [janitza("umg1", 15020)])
    done = run_cli("simulate-history", "--config", str(config), "--days", "1", "--id", "../x")
    assert done.returncode == 2 and "--id" in done.stderr
