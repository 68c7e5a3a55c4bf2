"""Dagster definitions, thin: one small function per asset that asks `transforms` for the table
and `lake` to store it, the shared per-day loop once; partitions, resources, checks (their SQL
in `transforms.quality`), sensors, schedules and the upkeep job. `energy_pipeline.definitions`
assembles them from the site config.

The orchestration floor, the only one below the face that imports dagster. It may import
transforms, lake, catalog, config and readings; never collector, simulators, live or drivers:
the pipeline starts from what the collectors sealed, found through their status files.
"""
