"""The lake floor: every byte under `data_dir` is placed, named and read here.

`layout` (paths, hive folders from UTC instants), `schemas` (the Arrow schemas of
`raw_readings` and `polls`), `files` (atomic writes), `seal` (the raw lake's sealing writer and
merge), `tables` (hourly and daily table writers), `scan` (file lists of a window,
schema-checked; stored partitions), `maintenance` (compaction, retention), `warehouse` (the
DuckDB file), `status` (collector status files, watermarks), `exports` (the CSV files' names
and writes), `disk` (free space of the lake's file system). Only this package writes or
renames lake files.

It may import `readings` and `config` only: never collector, defs, transforms, live,
simulators, drivers or dagster. Callers pass in what it stores (tables and their schemas).
"""
