"""What the warehouse shows: the tables it has a view of, with their schemas, and the rendering
of a query's result for the `sql` verb. Building the file is `lake.warehouse`'s job."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pyarrow as pa

from energy_pipeline.lake.layout import (
    DAILY_DEVICE_SUMMARY,
    DAILY_READINGS,
    FORECAST_ACCURACY,
    FORECAST_FEATURES,
    LOAD_FORECAST,
    MINUTE_READINGS,
    POLLS,
    RAW_READINGS,
)
from energy_pipeline.lake.schemas import POLLS_SCHEMA, RAW_SCHEMA
from energy_pipeline.transforms.schemas import (
    DAILY_READINGS_SCHEMA,
    FEATURES_SCHEMA,
    FORECAST_ACCURACY_SCHEMA,
    LOAD_FORECAST_SCHEMA,
    MINUTE_SCHEMA,
    SUMMARY_SCHEMA,
)

TABLES: dict[str, pa.Schema] = {
    RAW_READINGS: RAW_SCHEMA,
    POLLS: POLLS_SCHEMA,
    MINUTE_READINGS: MINUTE_SCHEMA,
    DAILY_READINGS: DAILY_READINGS_SCHEMA,
    DAILY_DEVICE_SUMMARY: SUMMARY_SCHEMA,
    FORECAST_FEATURES: FEATURES_SCHEMA,
    LOAD_FORECAST: LOAD_FORECAST_SCHEMA,
    FORECAST_ACCURACY: FORECAST_ACCURACY_SCHEMA,
}


def render(header: list[str], rows: list[tuple[Any, ...]], fmt: str) -> str:
    """A query result as an aligned text table, CSV, or a JSON list of objects."""
    if fmt == "json":
        return json.dumps([dict(zip(header, row, strict=True)) for row in rows], default=str)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(["" if v is None else v for v in row] for row in rows)
        return out.getvalue().rstrip("\n")
    cells = [[("NULL" if v is None else str(v)) for v in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    lines.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(lines)
