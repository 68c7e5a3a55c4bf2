"""energy_pipeline: collect readings from energy equipment 24/7 into a Parquet lake and turn them
into clean, queryable, forecast-ready data.

Each subpackage is one floor and imports point down only (README, "Layout"; held by
`energy_pipeline_tests/test_architecture.py`). The modules at this level are the bottom floor
everyone may import: `readings` (the reading record, raw/polls schemas), `sinks` (the outcome
sink protocol), `yamlfile` (YAML with line numbers) and `logs`; `cli`, `__main__` and
`definitions` are the front doors.
"""

__version__ = "0.1.0"
