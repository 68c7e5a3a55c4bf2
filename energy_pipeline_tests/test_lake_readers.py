"""Every lake table folder opens as it is in pandas, pyarrow (hive), polars and DuckDB, with
the same rows; daily tables are one file per local day; old hive-layout lakes are migrated."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import pandas as pd
import polars as pl
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from energy_pipeline.lake.layout import DAILY_READINGS, DAILY_TABLES, day_path, hour_dir
from energy_pipeline.lake.maintenance import migrate_daily_tables
from energy_pipeline.transforms.timegrid import day_window
from energy_pipeline.transforms.warehouse import TABLES


def _counts(folder: Path) -> dict[str, int]:
    path = str(folder)
    return {
        "pandas": len(pd.read_parquet(path)),
        "pyarrow": ds.dataset(path, partitioning="hive").count_rows(),
        "polars": pl.scan_parquet(path + "/**/*.parquet", hive_partitioning=True)
        .select(pl.len())
        .collect()
        .item(),
        "duckdb": duckdb.sql(
            f"SELECT count(*) FROM read_parquet('{path}/**/*.parquet', hive_partitioning = true)"
        ).fetchall()[0][0],
    }


@pytest.mark.parametrize("table", sorted(TABLES))
def test_every_reader_opens_every_table_folder(simulated_lake, table: str) -> None:
    config, days = simulated_lake
    folder = config.data_dir / table
    if not folder.is_dir():
        pytest.skip(f"{table} is not written by the simulated lake")
    counts = _counts(folder)
    assert len(set(counts.values())) == 1, counts
    assert counts["duckdb"] > 0
    if table in DAILY_TABLES:
        files = sorted(folder.iterdir())
        assert not list(folder.glob("*=*"))
        for path in files:  # one file per local day, named by its rows' `day`
            days_in = pq.read_table(path, columns=["day"]).column("day").unique().to_pylist()
            assert [f"{d}.parquet" for d in days_in] in ([path.name], [])
        if table != "load_forecast" and table != "forecast_accuracy":
            assert [p.name for p in files] == [f"{d}.parquet" for d in days]
    else:
        names = {f.name for f in pq.read_schema(next(folder.rglob("*.parquet")))}
        assert not names & {"date", "hour"}  # no column named like a hive folder


def test_daily_files_hold_their_local_day_and_types_are_stable(simulated_lake) -> None:
    config, days = simulated_lake
    schemas = {
        str(pq.read_schema(day_path(config.data_dir, DAILY_READINGS, d)).remove_metadata())
        for d in days
    }
    assert len(schemas) == 1
    table = pq.read_table(day_path(config.data_dir, DAILY_READINGS, days[0]))
    start, end = day_window(days[0], ZoneInfo(config.site.timezone))
    ts = table.column("ts").to_pylist()
    assert min(ts) == start and max(ts) < end


def test_old_hive_layout_is_migrated(simulated_lake, tmp_path: Path) -> None:
    config, days = simulated_lake
    source = day_path(config.data_dir, DAILY_READINGS, days[0])
    old = (
        hour_dir(tmp_path, DAILY_READINGS, day_window(days[0], ZoneInfo(config.site.timezone))[0])
        / "data.parquet"
    )
    old.parent.mkdir(parents=True)
    old.write_bytes(source.read_bytes())
    assert old.parent.parent.name.startswith("date=")
    moved = migrate_daily_tables(tmp_path)
    assert moved == [day_path(tmp_path, DAILY_READINGS, days[0])]
    assert sorted(p.name for p in (tmp_path / DAILY_READINGS).iterdir()) == [f"{days[0]}.parquet"]
    assert pq.read_table(moved[0]).equals(pq.read_table(source))
    assert migrate_daily_tables(tmp_path) == []
