"""The Definitions object `workspace.yaml` loads: built from the site config the CLI uses
(`ENERGY_PIPELINE_CONFIG`, else ./energy-pipeline.yaml), so one variable points the collector,
the CLI and the UI at one site."""

from __future__ import annotations

from energy_pipeline.config import load_config
from energy_pipeline.defs.assemble import build_definitions

defs = build_definitions(load_config())
