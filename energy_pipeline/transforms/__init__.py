"""Pure data transforms over the Parquet lake: in-memory DuckDB SQL and Arrow, no Dagster.

The Dagster assets (`energy_pipeline.defs`) and the CLI (`export`, `sql`) are thin callers of
these functions, so every rule (cleaning, counter deltas, markers, features, exports, quality
checks) is defined once and tested without a Dagster instance.

It may import catalog (what a metric means), readings and lake's reading side (file lists of a
window, hive types pinned); never collector, defs, live, simulators, drivers or dagster. Nothing
here writes a file: tables and bytes go back to the caller, and `lake` stores them.
"""
