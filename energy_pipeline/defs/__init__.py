"""Dagster definitions, one module per layer and thin over `energy_pipeline.transforms`:
partitions, resources, assets, checks, sensors, schedules. `energy_pipeline.definitions`
assembles them from the site config."""
