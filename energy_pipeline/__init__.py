"""energy_pipeline: collect readings from energy equipment 24/7 into a Parquet lake and turn them
into clean, queryable, forecast-ready data."""

__version__ = "0.1.0"
