"""What an asset reports in Dagster: its column schema (on the definition), and per run the row
count, path, a markdown preview and the lake files it skipped (each logged once)."""

from __future__ import annotations

import dagster as dg
import pyarrow as pa

from energy_pipeline.transforms.schemas import COLUMN_DOCS

PREVIEW_ROWS = 10


def column_schema(schema: pa.Schema) -> dg.TableSchema:
    return dg.TableSchema(
        columns=[
            dg.TableColumn(f.name, str(f.type), description=COLUMN_DOCS[f.name]) for f in schema
        ]
    )


def preview(table: pa.Table, rows: int = PREVIEW_ROWS) -> dg.MetadataValue:
    head = table.slice(0, rows).to_pylist()
    names = table.column_names
    lines = ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]
    for row in head:
        lines.append("| " + " | ".join(_md(row[n]) for n in names) + " |")
    return dg.MetadataValue.md("\n".join(lines))


def _md(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list):
        return f"[{len(value)} items]"
    return "" if value is None else str(value).replace("|", "\\|")


def table_metadata(table: pa.Table, path: object, rows: int | None = None) -> dict[str, object]:
    """A materialization's table facts. The column schema is the asset definition's (every
    table asset declares it), not repeated here: Dagster copies this metadata into the event of
    every partition a range run covers, 1,440 of them for a day of minutes."""
    return {
        "dagster/row_count": table.num_rows if rows is None else rows,
        "path": dg.MetadataValue.path(str(path)),
        "preview": preview(table),
    }


def problems(context: dg.AssetExecutionContext, problems: list[str]) -> dg.MetadataValue:
    for problem in problems:
        context.log.warning(f"lake file skipped: {problem}")
    return dg.MetadataValue.json(problems[:50])
