"""The DuckDB warehouse: one view per lake table over its Parquet files, nothing copied; and
the same views created on the fly for `query` (the `sql` verb), so SQL works on any lake.

The file is built new beside the old one and swapped in with `os.replace`, so readers (the
`sql` verb, notebooks) open either the old or the new warehouse, and DuckDB's cross-process
file lock is never held by the pipeline for longer than the build. Views use absolute paths;
hive folder names never become columns (a folder `hour=` must not shadow a table's own `hour`),
so every type comes from the pinned Parquet schemas and views work from any directory; daily
tables are read from their day files, raw and minute tables from their hive folders.
A table without files yet gets an empty view of its declared schema (the caller passes the
tables and their schemas: what the pipeline writes is defined in `transforms.warehouse`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from energy_pipeline.lake.layout import TMP_SUFFIX, table_dir, table_glob, warehouse_path

# Typed, empty stand-ins for tables without files yet, kept out of the main schema.
EMPTY_SCHEMA = "_empty"


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def view_sql(data_dir: Path, name: str) -> str:
    pattern = table_glob(data_dir.resolve(), name)
    folder = table_dir(data_dir.resolve(), name)
    if any(folder.glob(str(Path(pattern).relative_to(folder)))):
        glob = _quote(pattern)
        return (
            f"CREATE VIEW {name} AS SELECT * FROM read_parquet({glob}, "
            "hive_partitioning = false, union_by_name = true)"
        )
    return f"CREATE VIEW {name} AS SELECT * FROM {EMPTY_SCHEMA}.{name}"


READ_ONLY_STATEMENTS = frozenset(
    {
        duckdb.StatementType.SELECT,
        duckdb.StatementType.EXPLAIN,
        duckdb.StatementType.PRAGMA,
    }
)
"""What `query` runs: reading statements only, so nothing in or beside the lake is changed."""


def _create_views(
    con: duckdb.DuckDBPyConnection,
    data_dir: Path,
    tables: dict[str, pa.Schema],
    extra: dict[str, pa.Table],
) -> None:
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"CREATE SCHEMA {EMPTY_SCHEMA}")
    for name, schema in tables.items():
        con.register("empty", schema.empty_table())
        con.execute(f"CREATE TABLE {EMPTY_SCHEMA}.{name} AS SELECT * FROM empty")
        con.unregister("empty")
        con.execute(view_sql(data_dir, name))
    for name, table in extra.items():
        con.register("extra", table)
        con.execute(f"CREATE TABLE {name} AS SELECT * FROM extra")
        con.unregister("extra")


def build_warehouse(
    data_dir: Path, tables: dict[str, pa.Schema], extra: dict[str, pa.Table] | None = None
) -> tuple[Path, dict[str, int]]:
    """Build `warehouse.duckdb` anew with one view per table (and `extra` as small tables, such
    as the catalog's) and swap it in; returns its path and rows per view."""
    target = warehouse_path(data_dir)
    tmp = target.with_name(f".{target.name}.{os.getpid()}{TMP_SUFFIX}")
    tmp.unlink(missing_ok=True)
    counts: dict[str, int] = {}
    try:
        con = duckdb.connect(str(tmp))
        try:
            _create_views(con, data_dir, tables, extra or {})
            for name in [*tables, *(extra or {})]:
                counts[name] = int(con.execute(f"SELECT count(*) FROM {name}").fetchall()[0][0])
            con.execute("CHECKPOINT")
        finally:
            con.close()
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target, counts


def query(
    data_dir: Path,
    sql: str,
    tables: dict[str, pa.Schema],
    extra: dict[str, pa.Table] | None = None,
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run reading statements over views of the lake created on the fly in an in-memory
    database, so it works on any lake, before or without any Dagster run; only SELECT,
    EXPLAIN and PRAGMA are accepted. Returns the last statement's header and rows."""
    con = duckdb.connect()
    try:
        statements = con.extract_statements(sql)
        for statement in statements:
            if statement.type not in READ_ONLY_STATEMENTS:
                raise duckdb.PermissionException(
                    f"read-only: {statement.type.name} statements are not run "
                    f"({statement.query.strip()[:60]!r})"
                )
        _create_views(con, data_dir, tables, extra or {})
        cursor = con
        for statement in statements:
            cursor = con.execute(statement)
        header = [d[0] for d in cursor.description or []]
        return header, cursor.fetchall()
    finally:
        con.close()
