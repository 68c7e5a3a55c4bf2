"""The container files, as far as this machine (no container engine) can check them: the
compose files parse and name only files and commands that exist, every service's command runs
here (`--help`), the Dockerfile copies only what exists and runs as a non-root user, the
PostgreSQL instance settings pass Dagster's own schema, and the image's HEALTHCHECK answers 0
beside a running collector and 1 once its status goes stale."""

from __future__ import annotations

import json
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from energy_pipeline_tests.collector_support import (
    acked,
    collector,
    collector_site,
    janitza,
    wait_for,
)
from energy_pipeline_tests.conftest import REPO, cli_env, run_cli
from energy_pipeline_tests.kit.ports import free_ports
from energy_pipeline_tests.kit.sims import simulators

BIN = Path(sys.executable).parent
OUR_IMAGE = "energy-pipeline:local"


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in dockerfile.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def exec_form(text: str) -> list[str]:
    return json.loads(text) if text.startswith("[") else shlex.split(text)


def dockerfile_run_argv() -> tuple[list[str], list[str], list[str]]:
    """ENTRYPOINT, CMD and HEALTHCHECK CMD of the final stage."""
    final: list[tuple[str, str]] = []
    for word, rest in instructions(REPO / "Dockerfile"):
        if word == "FROM":
            final = []
        final.append((word, rest))
    found = dict(final)
    health = found["HEALTHCHECK"].split(" CMD ", 1)[1]
    return exec_form(found["ENTRYPOINT"]), exec_form(found["CMD"]), exec_form(health)


def compose(name: str = "compose.yaml") -> dict[str, Any]:
    return yaml.safe_load((REPO / name).read_text())


def test_dockerfile_copies_what_exists_and_runs_unprivileged():
    steps = instructions(REPO / "Dockerfile")
    stages = [rest for word, rest in steps if word == "FROM"]
    assert len(stages) >= 2 and " AS " in stages[0].upper(), "multi-stage build"
    for word, rest in steps:
        if word != "COPY" or "--from=" in rest:
            continue
        *sources, _dest = [p for p in rest.split() if not p.startswith("--")]
        for source in sources:
            assert (REPO / source).exists(), f"COPY {source}: no such file in the build context"
    users = [rest for word, rest in steps if word == "USER"]
    assert users and users[-1] not in ("root", "0")
    assert any(word == "VOLUME" and "/data" in rest for word, rest in steps)
    ignored = (REPO / ".dockerignore").read_text().split()
    assert ".venv" in ignored and "data" in ignored  # the context stays small


def test_compose_names_only_files_that_exist_and_vpn_bits_only_in_its_variant():
    doc = compose()
    services = doc["services"]
    assert {"collector", "dagster-webserver", "dagster-daemon", "postgres", "mosquitto"} <= set(
        services
    )
    assert services["mosquitto"]["profiles"] == ["mqtt"]
    for name, svc in services.items():
        build = svc.get("build")
        if build:
            context = REPO / build["context"]
            assert context.is_dir(), f"{name}: build context {context}"
            assert (context / build.get("dockerfile", "Dockerfile")).is_file()
        for volume in svc.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith((".", "/")):
                assert (REPO / source).exists(), f"{name}: mounts missing {source}"
        for env_file in svc.get("env_file", []):
            assert isinstance(env_file, dict) and env_file["required"] is False
    dagster = [services[s] for s in ("dagster-webserver", "dagster-daemon")]
    for svc in dagster:
        assert svc["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert svc["environment"]["DAGSTER_PG_HOST"] == "postgres"
    collector = services["collector"]
    assert collector["devices"] and "dialout" in collector["group_add"]
    text = (REPO / "compose.yaml").read_text()
    assert "NET_ADMIN" not in text and "/dev/net/tun" not in text
    vpn = compose("compose.vpn.yaml")["services"]
    assert set(vpn) == {"collector"}
    assert vpn["collector"]["cap_add"] == ["NET_ADMIN"]
    assert "/dev/net/tun:/dev/net/tun" in vpn["collector"]["devices"]


def service_commands() -> dict[str, list[str]]:
    entrypoint, cmd, _ = dockerfile_run_argv()
    out = {}
    for name, svc in compose()["services"].items():
        if svc.get("image") != OUR_IMAGE:
            continue
        out[name] = svc.get("entrypoint", entrypoint) + svc.get("command", cmd)
    return out


@pytest.mark.parametrize("service", ["collector", "dagster-webserver", "dagster-daemon"])
def test_each_service_command_runs_here(service):
    argv = service_commands()[service]
    program = BIN / argv[0]
    assert program.is_file(), f"{argv[0]} is not installed by the package"
    done = subprocess.run(
        [str(program), *argv[1:], "--help"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "usage" in done.stdout.lower()


def test_healthchecks_name_installed_programs():
    for name, svc in compose()["services"].items():
        test = svc.get("healthcheck", {}).get("test")
        if svc.get("image") == OUR_IMAGE and test:
            assert test[0] == "CMD" and (BIN / test[1]).is_file(), name
    assert dockerfile_run_argv()[2] == ["energy-pipeline", "status", "--check"]


def test_the_compose_site_config_is_valid():
    done = run_cli("config", "validate", str(REPO / "deploy/compose/energy-pipeline.yaml"))
    assert done.returncode == 0, done.stderr


def test_postgres_instance_settings_pass_dagsters_schema(tmp_path, monkeypatch):
    from dagster._core.errors import DagsterInvalidConfigError
    from dagster._core.instance.config import dagster_instance_config

    for key, value in {
        "DAGSTER_PG_HOST": "postgres",
        "DAGSTER_PG_PORT": "5432",
        "DAGSTER_PG_USER": "dagster",
        "DAGSTER_PG_PASSWORD": "pw",
        "DAGSTER_PG_DB": "dagster",
        "DAGSTER_LOCAL_DIR": str(tmp_path / "local"),
    }.items():
        monkeypatch.setenv(key, value)
    shutil.copy(REPO / "deploy/dagster/dagster.postgres.yaml", tmp_path / "dagster.yaml")
    settings, _ = dagster_instance_config(str(tmp_path))
    assert set(settings["storage"]) == {"postgres"}
    assert settings["storage"]["postgres"]["postgres_db"]["hostname"] == {"env": "DAGSTER_PG_HOST"}
    assert settings["concurrency"]["runs"]["max_concurrent_runs"] == 2
    broken = (tmp_path / "dagster.yaml").read_text().replace("db_name:", "database:")
    (tmp_path / "dagster.yaml").write_text(broken)
    with pytest.raises(DagsterInvalidConfigError):
        dagster_instance_config(str(tmp_path))


def test_the_image_healthcheck_answers_for_a_running_collector(tmp_path):
    _, _, health = dockerfile_run_argv()
    (port,) = free_ports(1)
    config = collector_site(tmp_path, [janitza("umg1", port)])
    check = [str(BIN / health[0]), *health[1:]]
    env = {"ENERGY_PIPELINE_CONFIG": str(config)}  # as the image sets it

    def run(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*check, *extra], capture_output=True, text=True, env=cli_env(env), timeout=60
        )

    assert run().returncode == 1  # no collector yet
    data = tmp_path / "data"
    with simulators(config):
        proc = collector(config, tmp_path / "collector.log")
        try:
            wait_for(lambda: acked(data, proc.pid), 30, "first acknowledgement")
            fresh = run()
            assert fresh.returncode == 0, fresh.stderr
            assert "collector main: fresh" in fresh.stdout
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0
    time.sleep(1.2)
    stale = run("--max-age", "1")
    assert stale.returncode == 1 and "stale" in stale.stderr
    assert run().returncode == 0  # within the default 30 s a stopped collector is still fresh
