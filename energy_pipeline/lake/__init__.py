"""The Parquet lake: layout, atomic files, collector status files."""
