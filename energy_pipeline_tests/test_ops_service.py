"""systemd units: the text from a site config, `systemd-analyze verify` on what `service
install` writes (system and user units, serial ports, VPN), and install/uninstall/status
driving a stand-in `systemctl` on PATH (these machines have no systemd as PID 1)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from energy_pipeline.config import load_config
from energy_pipeline.ops.units import (
    COLLECT_UNIT,
    DAEMON_UNIT,
    UNITS,
    WEBSERVER_UNIT,
    PlanError,
    config_needs_tun,
    plan_units,
    render_units,
)
from energy_pipeline_tests.conftest import REPO, require_program, run_cli

BIN = Path(sys.executable).parent


def site(tmp_path: Path, data_dir: str, **extra) -> Path:
    doc = {
        "storage": {"data_dir": data_dir},
        "devices": [
            {
                "id": "ups1",
                "driver": "modbus",
                "profile": "must_ep20",
                "connection": {"transport": "rtu", "serial_port": "/dev/ttyUSB0", "unit_id": 10},
            },
            {
                "id": "meter1",
                "driver": "echonet_broute",
                "connection": {"serial_port": "/dev/serial/by-id/usb-wisun-if00"},
                "credentials": {"rbid": "0" * 32, "password": "SECRETPW1234"},
            },
            {
                "id": "umg1",
                "driver": "modbus",
                "profile": "janitza_umg509pro",
                "connection": {"transport": "tcp", "host": "127.0.0.1", "port": 502},
            },
        ],
        **extra,
    }
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def lines(text: str) -> list[str]:
    return text.splitlines()


def test_units_from_a_site_with_serial_ports(tmp_path):
    config = load_config(
        site(
            tmp_path,
            "/srv/energy/data",
            collector={"wal_dir": "/var/lib/energy-wal"},
            logging={"file": "/var/log/energy-pipeline/collect.log"},
        )
    )
    plan = plan_units(config, bin_dir=BIN, user_mode=False, needs_tun=False, run_as="energy")
    units = render_units(plan)
    assert set(units) == set(UNITS)
    collect = lines(units[COLLECT_UNIT])
    for expected in (
        "Type=notify",
        "NotifyAccess=main",
        "WatchdogSec=60",
        "Restart=on-failure",
        f"ExecStart={BIN.absolute()}/energy-pipeline collect --config {tmp_path}/site.yaml",
        "EnvironmentFile=-/etc/energy-pipeline/env",
        f"Environment=ENERGY_PIPELINE_CONFIG={tmp_path}/site.yaml",
        "User=energy",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=read-only",
        "ReadWritePaths=/srv/energy/data /var/lib/energy-wal /var/log/energy-pipeline",
        "PrivateTmp=yes",
        "DevicePolicy=closed",
        "DeviceAllow=/dev/ttyUSB0 rw",
        "DeviceAllow=/dev/serial/by-id/usb-wisun-if00 rw",
        "SupplementaryGroups=dialout",
        "CapabilityBoundingSet=",
        "WantedBy=multi-user.target",
    ):
        assert expected in collect, expected
    assert not any("NET_ADMIN" in ln or "/dev/net/tun" in ln for ln in collect)
    for name in (WEBSERVER_UNIT, DAEMON_UNIT):
        other = lines(units[name])
        assert "PrivateDevices=yes" in other and not any("DeviceAllow" in ln for ln in other)
        assert "Environment=DAGSTER_HOME=/srv/energy/data/dagster" in other
    assert (
        f"{BIN.absolute()}/dagster-daemon run -m energy_pipeline.definitions"
        in (units[DAEMON_UNIT])
    )


def test_a_vpn_adds_net_admin_and_tun_and_data_under_home_drops_protect_home(tmp_path):
    config = load_config(site(tmp_path, "/home/pi/energy/data"))
    plan = plan_units(config, bin_dir=BIN, user_mode=False, needs_tun=True)
    collect = lines(render_units(plan)[COLLECT_UNIT])
    assert "CapabilityBoundingSet=CAP_NET_ADMIN" in collect
    assert "AmbientCapabilities=CAP_NET_ADMIN" in collect
    assert "DeviceAllow=/dev/net/tun rw" in collect
    assert not any(ln.startswith("ProtectHome") for ln in collect)
    webserver = lines(render_units(plan)[WEBSERVER_UNIT])
    assert not any("NET_ADMIN" in ln for ln in webserver)


def test_user_units_and_a_site_without_serial_ports(tmp_path):
    path = tmp_path / "tcp.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "storage": {"data_dir": "/srv/d"},
                "devices": [
                    {
                        "id": "lux1",
                        "driver": "luxtronik",
                        "connection": {"host": "127.0.0.1", "port": 8889},
                    }
                ],
            }
        )
    )
    config = load_config(path)
    plan = plan_units(config, bin_dir=BIN, user_mode=True, needs_tun=False, run_as="energy")
    collect = lines(render_units(plan)[COLLECT_UNIT])
    assert "PrivateDevices=yes" in collect
    assert not any(ln.startswith(("User=", "SupplementaryGroups", "Capability")) for ln in collect)
    assert "WantedBy=default.target" in collect
    assert f"EnvironmentFile=-{Path('~').expanduser()}/.config/energy-pipeline/env" in collect
    with pytest.raises(PlanError, match="CAP_NET_ADMIN"):
        plan_units(config, bin_dir=BIN, user_mode=True, needs_tun=True)


def test_no_vpn_in_the_config_means_no_tun():
    assert config_needs_tun(load_config(REPO / "energy-pipeline.yaml")) is False


def verify(unit_dir: Path, user: bool, tmp_path: Path) -> None:
    analyze = require_program("systemd-analyze")
    env = None
    if user:  # the user manager wants a runtime dir, which a root shell here lacks
        runtime = tmp_path / "runtime"
        runtime.mkdir(mode=0o700, exist_ok=True)
        env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime)}
    files = sorted(str(p) for p in unit_dir.glob("*.service"))
    assert len(files) == 3
    done = subprocess.run(
        [analyze, "verify", "--man=no", *(["--user"] if user else []), *files],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    # verify exits 0 on unknown keys and bad values too: any message is a failure here
    assert done.returncode == 0 and not done.stderr.strip() and not done.stdout.strip(), (
        done.stdout + done.stderr
    )


@pytest.mark.parametrize("user", [False, True], ids=["system", "user"])
def test_installed_units_pass_systemd_analyze_verify(tmp_path, user):
    config = site(tmp_path, str(tmp_path / "data"), logging={"file": str(tmp_path / "log/c.log")})
    units = tmp_path / "units"
    args = ["service", "install", "--config", str(config), "--unit-dir", str(units)]
    done = run_cli(*args, *(["--user"] if user else []))
    assert done.returncode == 0, done.stderr
    assert f"not enabled: units written to {units} only" in done.stdout
    assert (tmp_path / "data" / "dagster" / "dagster.yaml").is_file()
    verify(units, user, tmp_path)


def test_units_with_a_vpn_pass_verify(tmp_path):
    config = load_config(site(tmp_path, str(tmp_path / "data")))
    plan = plan_units(config, bin_dir=BIN, user_mode=False, needs_tun=True, run_as="root")
    units = tmp_path / "units"
    units.mkdir()
    for name, text in render_units(plan).items():
        (units / name).write_text(text)
    verify(units, False, tmp_path)


def test_dry_run_into_the_system_folder_says_what_it_would_do_and_writes_nothing(tmp_path):
    config = site(tmp_path, str(tmp_path / "data"))
    done = run_cli(
        "service", "install", "--config", str(config), "--dry-run", "--env-file", "/srv/site.env"
    )
    assert done.returncode == 0, done.stderr
    assert "    EnvironmentFile=-/srv/site.env" in done.stdout
    assert "would write /etc/systemd/system/energy-pipeline-collect.service" in done.stdout
    assert "would run: systemctl daemon-reload" in done.stdout
    assert f"would run: systemctl enable --now {' '.join(UNITS)}" in done.stdout
    assert "    Type=notify" in done.stdout  # the unit text itself is shown
    assert not (tmp_path / "data").exists()
    removed = run_cli("service", "uninstall", "--config", str(config), "--dry-run")
    assert f"would run: systemctl disable --now {' '.join(UNITS)}" in removed.stdout


def stand_in_systemctl(folder: Path, canned: dict[str, str]) -> dict[str, str]:
    """A `systemctl` that logs its arguments and answers `show` from canned text per unit."""
    bin_dir = folder / "bin"
    answers = folder / "answers"
    bin_dir.mkdir()
    answers.mkdir()
    for unit, text in canned.items():
        (answers / unit).write_text(text)
    script = bin_dir / "systemctl"
    script.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> "{folder}/calls"\n'
        'for last in "$@"; do :; done\n'
        f'if [ "$1" = show ] || [ "$2" = show ]; then cat "{answers}/$last"; fi\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}


def calls(folder: Path) -> list[str]:
    return (folder / "calls").read_text().splitlines()


def test_user_install_and_uninstall_drive_systemctl(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = {**stand_in_systemctl(tmp_path, {}), "HOME": str(home)}
    config = site(tmp_path, str(tmp_path / "data"))
    done = run_cli("service", "install", "--user", "--config", str(config), env=env)
    assert done.returncode == 0, done.stderr
    unit_dir = home / ".config" / "systemd" / "user"
    assert sorted(p.name for p in unit_dir.iterdir()) == sorted(UNITS)
    assert calls(tmp_path) == ["--user daemon-reload", f"--user enable --now {' '.join(UNITS)}"]
    assert f"running: systemctl --user enable --now {' '.join(UNITS)}" in done.stdout
    gone = run_cli("service", "uninstall", "--user", "--config", str(config), env=env)
    assert gone.returncode == 0, gone.stderr
    assert list(unit_dir.iterdir()) == []
    assert calls(tmp_path)[2:] == [
        f"--user disable --now {' '.join(UNITS)}",
        "--user daemon-reload",
    ]
    assert (tmp_path / "data").is_dir(), "uninstall keeps the data"


SHOW = (
    "LoadState=loaded\nActiveState={active}\nSubState={sub}\n"
    "ActiveEnterTimestamp=Wed 2026-12-02 03:01:12 UTC\nNRestarts={restarts}\n"
    "ExecMainStatus={exit}\n"
)


def test_service_status_reads_systemctl_show(tmp_path):
    canned = {
        COLLECT_UNIT: SHOW.format(active="active", sub="running", restarts=3, exit=0),
        WEBSERVER_UNIT: SHOW.format(active="active", sub="running", restarts=0, exit=0),
        DAEMON_UNIT: SHOW.format(active="failed", sub="failed", restarts=5, exit=1),
    }
    env = stand_in_systemctl(tmp_path, canned)
    done = run_cli("service", "status", "--json", env=env)
    assert done.returncode == 1  # one unit is not active
    rows = json.loads(done.stdout)
    assert rows[COLLECT_UNIT] == {
        "loaded": "loaded",
        "active": "active",
        "sub": "running",
        "since": "Wed 2026-12-02 03:01:12 UTC",
        "restarts": 3,
        "last_exit": 0,
    }
    assert rows[DAEMON_UNIT]["active"] == "failed" and rows[DAEMON_UNIT]["last_exit"] == 1
    assert calls(tmp_path)[0] == (
        "show -p LoadState,ActiveState,SubState,ActiveEnterTimestamp,NRestarts,ExecMainStatus "
        f"{COLLECT_UNIT}"
    )
    text = run_cli("service", "status", env=env).stdout
    assert "energy-pipeline-collect.service" in text and "restarts 3" in text
    assert "failed/failed" in text and "last exit 1" in text
    canned[DAEMON_UNIT] = SHOW.format(active="active", sub="running", restarts=0, exit=0)
    (tmp_path / "answers" / DAEMON_UNIT).write_text(canned[DAEMON_UNIT])
    assert run_cli("service", "status", "--user", env=env).returncode == 0
    assert calls(tmp_path)[-1].startswith("--user show -p")
