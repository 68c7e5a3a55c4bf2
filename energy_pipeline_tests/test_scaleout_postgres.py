"""Dagster on PostgreSQL instance storage, the way the compose file runs it: a real PostgreSQL
(a throwaway cluster), `dagster instance migrate`, then a real `dagster-daemon` and a real
`dagster-webserver` on deploy/dagster/dagster.postgres.yaml. The sensor's run requests (two
advances of the sealed watermark, its cursor kept in Postgres) and a backfill launched through
the webserver's GraphQL API as the UI does go through the daemon's queue and succeed; the runs,
ticks and materializations are in Postgres and no SQLite storage appears."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest
import yaml

from energy_pipeline.defs.partitions import minute_partitions
from energy_pipeline.defs.sensors import RANGE_START_TAG, floor_minute
from energy_pipeline.lake.layout import MINUTE_READINGS
from energy_pipeline_tests.collector_support import wait_for
from energy_pipeline_tests.conftest import REPO, cli_env
from energy_pipeline_tests.kit.ports import free_port
from energy_pipeline_tests.lakedata import site, write_raw, write_status
from energy_pipeline_tests.postgres_support import postgres_cluster

POSTGRES_YAML = REPO / "deploy" / "dagster" / "dagster.postgres.yaml"
BIN = Path(sys.executable).parent
WORKSPACE = REPO / "workspace.yaml"
P = "power_active_total"

LAUNCH = """
mutation($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
    ... on PartitionKeysNotFoundError { message }
  }
}"""
BACKFILL = """
query($id: String!) {
  partitionBackfillOrError(backfillId: $id) { ... on PartitionBackfill { status } }
}"""
LOCATIONS = """
{ workspaceOrError { ... on Workspace { locationEntries { loadStatus } } } }"""
DONE = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}


def test_postgres_variant_keeps_every_setting_of_the_one_machine_file():
    local = yaml.safe_load((REPO / "dagster.yaml").read_text())
    variant = yaml.safe_load(POSTGRES_YAML.read_text())
    for key, value in local.items():
        assert variant.get(key) == value, f"{POSTGRES_YAML.name}: {key} differs from dagster.yaml"
    db = variant["storage"]["postgres"]["postgres_db"]
    assert db.pop("scheme") == "postgresql+psycopg2"
    assert {k: v.get("env") for k, v in db.items()} == {
        "hostname": "DAGSTER_PG_HOST",
        "port": "DAGSTER_PG_PORT",
        "username": "DAGSTER_PG_USER",
        "password": "DAGSTER_PG_PASSWORD",
        "db_name": "DAGSTER_PG_DB",
    }


def _rows(start: datetime, minutes: int) -> list[tuple[datetime, str, str, float]]:
    return [
        (start + timedelta(seconds=s), dev, P, 100.0 + s)
        for s in range(0, minutes * 60, 20)
        for dev in ("m1", "m2")
    ]


def _graphql(port: int, query: str, variables: dict | None = None) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query, "variables": variables or {}}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        doc = json.loads(response.read())
    assert "errors" not in doc, doc
    return doc["data"]


def _loaded(port: int) -> bool:
    try:
        data = _graphql(port, LOCATIONS)
    except OSError:
        return False
    entries = (data.get("workspaceOrError") or {}).get("locationEntries") or []
    return bool(entries) and all(e["loadStatus"] == "LOADED" for e in entries)


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    # Own session: the daemon's and webserver's code servers and run workers stop with them.
    return subprocess.Popen(
        args,
        env=env,
        cwd=REPO,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _stop(*procs: subprocess.Popen) -> None:
    """SIGTERM to every group first (each takes seconds to shut down), then wait for all."""
    running = [p for p in procs if p.poll() is None]
    for proc in running:
        os.killpg(proc.pid, signal.SIGTERM)
    for proc in running:
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def _sensor_runs(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    return list(
        instance.get_runs(
            filters=dg.RunsFilter(
                tags={"energy_pipeline/reason": "sealed"}, statuses=[dg.DagsterRunStatus.SUCCESS]
            )
        )
    )


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_sensor_and_ui_backfill_run_through_the_daemon_on_postgres(tmp_path, monkeypatch):
    config = site(tmp_path, extra="pipeline: {sensor_interval_seconds: 30}\n")
    data = config.data_dir
    sealed2 = floor_minute(datetime.now(UTC)) - timedelta(minutes=5)
    sealed1 = sealed2 - timedelta(minutes=2)
    first = sealed2 - timedelta(minutes=6)
    write_raw(data, _rows(first, 6))
    write_status(data, sealed1)
    parts = minute_partitions(config)
    backfill_keys = [
        parts.get_partition_key_for_timestamp((first + timedelta(minutes=i)).timestamp())
        for i in range(2)
    ]

    home, local = tmp_path / "dagster_home", tmp_path / "dagster_local"
    home.mkdir()
    shutil.copy(POSTGRES_YAML, home / "dagster.yaml")
    web_port = free_port()
    with postgres_cluster() as pg:
        env = cli_env(
            {
                **pg.dagster_env(),
                "DAGSTER_HOME": str(home),
                "DAGSTER_LOCAL_DIR": str(local),
                "ENERGY_PIPELINE_CONFIG": str(config.path),
            }
        )
        for key in ("DAGSTER_HOME", "DAGSTER_LOCAL_DIR", *pg.dagster_env()):
            monkeypatch.setenv(key, env[key])
        migrate = subprocess.run(
            [str(BIN / "dagster"), "instance", "migrate"],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert migrate.returncode == 0, migrate.stderr
        daemon = _start(
            [str(BIN / "dagster-daemon"), "run", "-w", str(WORKSPACE)], env, tmp_path / "daemon.log"
        )
        web = _start(
            [
                str(BIN / "dagster-webserver"),
                "-w",
                str(WORKSPACE),
                "-h",
                "127.0.0.1",
                "-p",
                str(web_port),
            ],
            env,
            tmp_path / "webserver.log",
        )
        try:
            instance = dg.DagsterInstance.get()
            wait_for(lambda: _loaded(web_port), 120, "the webserver to load the definitions", 1)
            launched = _graphql(
                web_port,
                LAUNCH,
                {
                    "params": {
                        "assetSelection": [{"path": ["minute_readings"]}],
                        "partitionNames": backfill_keys,
                        "title": "two minutes from the UI",
                    }
                },
            )["launchPartitionBackfill"]
            assert launched["__typename"] == "LaunchBackfillSuccess", launched
            backfill_id = launched["backfillId"]

            wait_for(lambda: _sensor_runs(instance), 120, "the sensor's first run", 1)
            write_status(data, sealed2)
            runs = wait_for(
                lambda: (r := _sensor_runs(instance)) and len(r) >= 2 and r,
                120,
                "the sensor's run after the watermark advanced",
                1,
            )
            status = wait_for(
                lambda: (
                    (
                        s := _graphql(web_port, BACKFILL, {"id": backfill_id})[
                            "partitionBackfillOrError"
                        ]["status"]
                    )
                    in DONE
                    and s
                ),
                120,
                "the backfill to finish",
                1,
            )
        finally:
            _stop(web, daemon)
        daemon_log = (tmp_path / "daemon.log").read_text()
        assert status == "COMPLETED_SUCCESS", daemon_log[-3000:]

        # Two sensor runs, in watermark order, the second one starting where the first ended:
        # the cursor lived in Postgres between the ticks.
        assert len(runs) == 2, [r.tags for r in runs]
        starts = sorted(r.tags[RANGE_START_TAG] for r in runs)
        assert starts[1] == parts.get_partition_key_for_timestamp(sealed1.timestamp())
        backfill_runs = list(
            instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
        )
        assert [r.status for r in backfill_runs] == [dg.DagsterRunStatus.SUCCESS]
        done = instance.get_materialized_partitions(dg.AssetKey("minute_readings"))
        last = parts.get_partition_key_for_timestamp((sealed2 - timedelta(minutes=1)).timestamp())
        assert {*backfill_keys, last} <= done

        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
        assert not [p for p in tmp_path.rglob("*.db")], "SQLite storage appeared"
        with _connect(pg) as con, con.cursor() as cur:
            ours = [r.run_id for r in [*runs, *backfill_runs]]
            cur.execute("SELECT status FROM runs WHERE run_id = ANY(%s)", (ours,))
            assert [row[0] for row in cur.fetchall()] == ["SUCCESS"] * 3
            cur.execute(
                "SELECT count(*) FROM event_logs WHERE dagster_event_type = "
                "'ASSET_MATERIALIZATION' AND asset_key LIKE '%minute_readings%'"
            )
            assert cur.fetchone()[0] >= len(done)
            cur.execute(
                "SELECT count(*) FROM job_ticks WHERE type = 'SENSOR' AND status = 'SUCCESS'"
            )
            assert cur.fetchone()[0] >= 2
        instance.dispose()

    files = sorted((data / MINUTE_READINGS).glob("date=*/hour=*/*.parquet"))
    minutes = [r for f in files for r in pq.read_table(f).to_pylist()]
    assert {(r["device_id"], r["metric"]) for r in minutes} == {("m1", P), ("m2", P)}
    assert len({r["ts"] for r in minutes}) == 6


def _connect(pg):
    import psycopg2

    return psycopg2.connect(
        host=pg.host, port=pg.port, user=pg.user, password=pg.password, dbname=pg.db
    )
