"""Minute aggregation: gauges, counter deltas across resets/rollovers/gaps, and cleaning."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from energy_pipeline.catalog import build_catalog
from energy_pipeline.lake.layout import RAW_READINGS, hour_dir
from energy_pipeline.transforms.minute import compute_minutes
from energy_pipeline_tests.lakedata import site, table, write_raw

T0 = datetime(2025, 1, 15, 10, 0, tzinfo=UTC)
NOW = datetime(2025, 1, 16, tzinfo=UTC)
E = "energy_active_import_total"
WRAP = 2.0**32


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def rows_by(table, device: str, metric: str) -> dict[datetime, dict]:
    return {
        r["ts"]: r for r in table.to_pylist() if r["device_id"] == device and r["metric"] == metric
    }


@pytest.fixture
def lake(tmp_path: Path):
    config = site(tmp_path)
    counter = [
        (0, 100.0),
        (20, 110.0),
        (40, 130.0),  # minute 0: steps 10 + 20 (first has no prev)
        (60, 150.0),
        (80, 160.0),
        (100, 170.0),  # minute 1: 20 + 10 + 10 = 40
        # minutes 2-3: gap, no readings
        (240, 200.0),
        (260, 5.0),
        (280, 15.0),  # minute 4: 30, reset -> 5, 10 = 45, 1 reset
    ]
    rows = [(at(s), "m1", E, v) for s, v in counter]
    rows += [(at(s), "m1", "voltage_l1_n", v) for s, v in ((0, 229.0), (20, 231.0), (40, 233.0))]
    # m2's uint32 counter wraps: 4294967290 -> 4 is +10, not a reset
    rows += [(at(0), "m2", E, WRAP - 6), (at(30), "m2", E, 4.0)]
    write_raw(config.data_dir, rows)
    return config


def test_gauges_and_counters_match_hand_computed_values(lake) -> None:
    out, stats = compute_minutes(
        lake.data_dir, build_catalog(lake), T0, T0 + timedelta(minutes=5), NOW
    )
    volts = rows_by(out, "m1", "voltage_l1_n")[T0]
    assert (volts["avg"], volts["min"], volts["max"], volts["last"]) == (231.0, 229.0, 233.0, 233.0)
    assert volts["count"] == 3 and volts["delta"] is None

    energy = rows_by(out, "m1", E)
    assert sorted(energy) == [T0, at(60), at(240)]  # the gap stays a gap
    assert energy[T0]["delta"] == 30.0 and energy[T0]["avg"] is None
    assert energy[at(60)]["delta"] == 40.0
    assert energy[at(240)]["delta"] == 45.0 and energy[at(240)]["resets"] == 1
    assert energy[at(240)]["last"] == 15.0
    assert rows_by(out, "m2", E)[T0]["delta"] == 10.0
    assert stats.resets == 2  # the reset and the rollover are both drops of the reading
    assert stats.rows_read == 14


def test_window_takes_previous_value_from_before_the_window(lake) -> None:
    out, _ = compute_minutes(lake.data_dir, build_catalog(lake), at(60), at(300), NOW)
    energy = rows_by(out, "m1", E)
    assert energy[at(60)]["delta"] == 40.0  # 150 - 130 counted although 130 is outside
    assert min(r["ts"] for r in out.to_pylist()) == at(60)


def test_dropped_readings_are_counted_by_reason(tmp_path: Path) -> None:
    config = site(tmp_path)
    rows = [
        (at(0), "m1", "voltage_l1_n", 230.0),
        (at(1), "m1", "voltage_l1_n", 999.0),  # above the profile's max 400
        (at(2), "m1", "voltage_l1_n", math.nan),
        (at(3), "m1", "power_active_total", math.inf),
    ]
    write_raw(config.data_dir, rows)
    folder = hour_dir(config.data_dir, RAW_READINGS, T0)
    # a reading filed in the wrong hour folder, and one stamped in the future
    from energy_pipeline.lake.files import atomic_write_parquet

    atomic_write_parquet(
        table([(T0 + timedelta(hours=3), "m1", "voltage_l1_n", 231.0)]), folder / "c1-odd.parquet"
    )
    future = NOW + timedelta(seconds=5)
    write_raw(config.data_dir, [(future, "m1", "voltage_l1_n", 232.0)], collector="c9")
    out, stats = compute_minutes(
        config.data_dir, build_catalog(config), T0, NOW + timedelta(minutes=1), NOW
    )
    assert (stats.out_of_range, stats.invalid, stats.misfiled, stats.future) == (1, 2, 1, 1)
    (row,) = out.to_pylist()  # power had only an infinite reading: no row at all
    assert (row["count"], row["avg"], row["max"]) == (1, 230.0, 230.0)  # 999 V left out


def test_duplicates_across_overlapping_files_are_removed(tmp_path: Path) -> None:
    config = site(tmp_path)
    rows = [(at(s), "m1", "voltage_l1_n", 230.0 + s) for s in (0, 10, 20)]
    write_raw(config.data_dir, rows, collector="c1")
    write_raw(config.data_dir, rows[:2], collector="c2")  # a second collector polled m1 too
    out, stats = compute_minutes(config.data_dir, build_catalog(config), T0, at(60), NOW)
    (row,) = out.to_pylist()
    assert row["count"] == 3 and row["avg"] == 240.0
    assert stats.duplicates == 2


def test_corrupt_and_foreign_files_are_reported_and_skipped(tmp_path: Path) -> None:
    config = site(tmp_path)
    write_raw(config.data_dir, [(at(0), "m1", "voltage_l1_n", 230.0)])
    folder = hour_dir(config.data_dir, RAW_READINGS, T0)
    (folder / "broken.parquet").write_bytes(b"PAR1 this is not parquet")
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"when": [1], "what": ["x"]}), folder / "foreign.parquet")
    (folder / "notes.txt").write_text("hello")
    (folder / ".c1-x.parquet.123.tmp").write_bytes(b"half")
    out, stats = compute_minutes(config.data_dir, build_catalog(config), T0, at(60), NOW)
    assert out.num_rows == 1
    skipped = "\n".join(stats.skipped_files)
    assert "broken.parquet: not a readable Parquet file" in skipped
    assert "foreign.parquet: foreign schema" in skipped
    assert "notes.txt: foreign file" in skipped
    assert ".tmp" not in skipped and len(stats.skipped_files) == 3
