"""The DuckDB warehouse: one view per lake table over its Parquet files, nothing copied.

The file is built new beside the old one and swapped in with `os.replace`, so readers (the
`sql` verb, notebooks) open either the old or the new warehouse, and DuckDB's cross-process
file lock is never held by the pipeline for longer than the build. Views use absolute paths;
hive folder names never become columns (a folder `hour=` must not shadow a table's own `hour`),
so every type comes from the pinned Parquet schemas and views work from any directory.
A table without files yet gets an empty view of its declared schema (the caller passes the
tables and their schemas: what the pipeline writes is defined in `transforms.warehouse`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from energy_pipeline.lake.layout import TMP_SUFFIX, table_dir, warehouse_path

# Typed, empty stand-ins for tables without files yet, kept out of the main schema.
EMPTY_SCHEMA = "_empty"


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def view_sql(data_dir: Path, name: str) -> str:
    folder = table_dir(data_dir.resolve(), name)
    if any(folder.glob("date=*/hour=*/*.parquet")):
        glob = _quote(str(folder / "date=*" / "hour=*" / "*.parquet"))
        return (
            f"CREATE VIEW {name} AS SELECT * FROM read_parquet({glob}, "
            "hive_partitioning = false, union_by_name = true)"
        )
    return f"CREATE VIEW {name} AS SELECT * FROM {EMPTY_SCHEMA}.{name}"


def build_warehouse(data_dir: Path, tables: dict[str, pa.Schema]) -> tuple[Path, dict[str, int]]:
    """Build `warehouse.duckdb` anew with one view per table and swap it in; returns its path
    and rows per view."""
    target = warehouse_path(data_dir)
    tmp = target.with_name(f".{target.name}.{os.getpid()}{TMP_SUFFIX}")
    tmp.unlink(missing_ok=True)
    counts: dict[str, int] = {}
    try:
        con = duckdb.connect(str(tmp))
        try:
            con.execute("SET TimeZone = 'UTC'")
            con.execute(f"CREATE SCHEMA {EMPTY_SCHEMA}")
            for name, schema in tables.items():
                con.register("empty", schema.empty_table())
                con.execute(f"CREATE TABLE {EMPTY_SCHEMA}.{name} AS SELECT * FROM empty")
                con.unregister("empty")
                con.execute(view_sql(data_dir, name))
                counts[name] = int(con.execute(f"SELECT count(*) FROM {name}").fetchall()[0][0])
            con.execute("CHECKPOINT")
        finally:
            con.close()
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target, counts


def query(data_dir: Path, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run one query on the warehouse, read-only (DuckDB rejects writes on this connection)."""
    path = warehouse_path(data_dir)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} does not exist yet; materialize the `warehouse` asset first"
        )
    con = duckdb.connect(str(path), read_only=True)
    try:
        con.execute("SET TimeZone = 'UTC'")
        cursor = con.execute(sql)
        header = [d[0] for d in cursor.description or []]
        return header, cursor.fetchall()
    finally:
        con.close()
