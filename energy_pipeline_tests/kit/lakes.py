"""A lake as a new user has it: `simulate-history` for a Janitza analyser and a heat pump, then
every daily asset (and the forecast) materialized over the whole range in one Dagster run.

Built once per test session (`simulated_lake` in conftest.py) and shared read-only by the
reader, SQL, forecast and notebook tests.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg

from energy_pipeline.config import Config, load_config
from energy_pipeline.defs.assemble import build_definitions
from energy_pipeline_tests.kit.sites import PLANT, write_site

SIM_DEVICES = """
  - {id: umg509, driver: modbus, profile: janitza_umg509pro, interval: 60,
     connection: {transport: tcp, host: 127.0.0.1, port: 15020}}
  - {id: heatpump1, driver: modbus, profile: heatpump_generic, interval: 60,
     connection: {transport: tcp, host: 127.0.0.1, port: 15021}}
"""


def simulate(folder: Path, days: float) -> tuple[Config, list[date]]:
    """A site under `folder` with `days` of simulated history; returns it and the complete
    local days the history covers."""
    from energy_pipeline_tests.conftest import run_cli

    path = write_site(folder, SIM_DEVICES, site={**PLANT, "country": "DE"})
    done = run_cli("simulate-history", "--config", str(path), "--days", str(days), "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    config = load_config(path)
    tz = ZoneInfo(config.site.timezone)
    first = datetime.fromisoformat(summary["start"]).astimezone(tz).date() + timedelta(days=1)
    last = datetime.fromisoformat(summary["end"]).astimezone(tz).date() - timedelta(days=1)
    return config, [first + timedelta(days=i) for i in range((last - first).days + 1)]


def materialize_days(config: Config, days: list[date], selection: list[str]) -> None:
    """`selection` over `days` as one range run, as a backfill with single-run policies does."""
    materialize_range(config, days[0].isoformat(), days[-1].isoformat(), selection)


def materialize_range(config: Config, first: str, last: str, selection: list[str]) -> None:
    """`selection` over the partition keys first..last in one run."""
    defs = build_definitions(config)
    job = defs.resolve_implicit_job_def_def_for_assets([dg.AssetKey(n) for n in selection])
    assert job is not None
    result = job.execute_in_process(
        instance=dg.DagsterInstance.ephemeral(),
        asset_selection=[dg.AssetKey(name) for name in selection],
        tags={
            "dagster/asset_partition_range_start": first,
            "dagster/asset_partition_range_end": last,
        },
    )
    assert result.success
