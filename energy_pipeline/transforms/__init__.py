"""Pure data transforms over the Parquet lake: in-memory DuckDB SQL and Arrow, no Dagster.

The Dagster assets (`energy_pipeline.defs`) and the CLI (`export`, `sql`) are thin callers of
these functions, so every rule (cleaning, counter deltas, markers, features, exports) is defined
once and tested without a Dagster instance.
"""
