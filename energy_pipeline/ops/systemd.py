"""`energy-pipeline service install|uninstall|status`: unit files on disk and `systemctl`.

Every step is printed as it is done (or, with --dry-run, as it would be done), so an operator
sees exactly what changed on the machine. With --unit-dir the units are only written there:
that is how they are checked without a running systemd (`systemd-analyze verify`).
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import energy_pipeline
from energy_pipeline.config import Config
from energy_pipeline.lake.files import atomic_write_bytes
from energy_pipeline.ops.units import (
    SYSTEM_UNIT_DIR,
    UNITS,
    USER_UNIT_DIR,
    UnitPlan,
    config_needs_tun,
    plan_units,
    render_units,
)

Run = Callable[[Sequence[str]], subprocess.CompletedProcess[str]]
SHOW_PROPERTIES = (
    "LoadState",
    "ActiveState",
    "SubState",
    "ActiveEnterTimestamp",
    "NRestarts",
    "ExecMainStatus",
)


def run_command(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, check=False)


def unit_dir(user_mode: bool, chosen: Path | None) -> Path:
    if chosen is not None:
        return chosen.absolute()
    return (USER_UNIT_DIR if user_mode else SYSTEM_UNIT_DIR).expanduser()


def systemctl(user_mode: bool, *args: str) -> list[str]:
    return ["systemctl", *(["--user"] if user_mode else []), *args]


def dagster_yaml_source(config_dir: Path) -> Path | None:
    """The instance settings to seed DAGSTER_HOME with: beside the config, else the checkout's."""
    for candidate in (
        config_dir / "dagster.yaml",
        Path(energy_pipeline.__file__).parents[1] / "dagster.yaml",
    ):
        if candidate.is_file():
            return candidate
    return None


@dataclass
class Installer:
    plan: UnitPlan
    target: Path
    manage: bool
    dry_run: bool
    say: Callable[[str], None] = print
    run: Run = run_command

    def _command(self, argv: list[str]) -> bool:
        self.say(("would run: " if self.dry_run else "running: ") + " ".join(argv))
        if self.dry_run:
            return True
        done = self.run(argv)
        if done.returncode != 0:
            self.say(f"  failed ({done.returncode}): {(done.stderr or done.stdout).strip()}")
        return done.returncode == 0

    def install(self) -> bool:
        units = render_units(self.plan)
        verb = "would write" if self.dry_run else "wrote"
        for folder in (*self.plan.writable, self.plan.dagster_home):
            if not folder.is_dir():
                self.say(f"{'would create' if self.dry_run else 'created'} {folder}")
                if not self.dry_run:
                    folder.mkdir(parents=True, exist_ok=True)
                    self._own(folder)
        seed = self.plan.dagster_home / "dagster.yaml"
        source = dagster_yaml_source(self.plan.config.parent)
        if source is not None and not seed.exists():
            self.say(f"{'would copy' if self.dry_run else 'copied'} {source} to {seed}")
            if not self.dry_run:
                shutil.copyfile(source, seed)
        if not self.dry_run:
            self.target.mkdir(parents=True, exist_ok=True)
        for name, text in units.items():
            path = self.target / name
            if not self.dry_run:
                atomic_write_bytes(path, text.encode())
            self.say(f"{verb} {path}")
            if self.dry_run:
                self.say(text.rstrip("\n").replace("\n", "\n    ").join(["    ", ""]))
        if not self.plan.env_file.exists():
            self.say(f"secrets for ${{VAR}} values go in {self.plan.env_file} (not there yet)")
        if not self.manage:
            self.say(f"not enabled: units written to {self.target} only (--unit-dir)")
            return True
        user = self.plan.user_mode
        return self._command(systemctl(user, "daemon-reload")) and self._command(
            systemctl(user, "enable", "--now", *units)
        )

    def uninstall(self) -> bool:
        ok = True
        user = self.plan.user_mode
        if self.manage:
            ok = self._command(systemctl(user, "disable", "--now", *UNITS))
        for name in UNITS:
            path = self.target / name
            if path.exists():
                self.say(f"{'would remove' if self.dry_run else 'removed'} {path}")
                if not self.dry_run:
                    path.unlink()
        if self.manage:
            ok = self._command(systemctl(user, "daemon-reload")) and ok
        self.say(f"kept the data in {self.plan.data_dir}")
        return ok

    def _own(self, folder: Path) -> None:
        """A folder made by root for a system unit's User= belongs to that user."""
        if self.plan.run_as and os.geteuid() == 0:
            shutil.chown(folder, user=self.plan.run_as)


def owner(path: Path) -> str | None:
    """The config file's owner runs the system units (root only if root owns the config)."""
    try:
        return pwd.getpwuid(path.stat().st_uid).pw_name
    except (KeyError, OSError):
        return None


def installer_for(
    config: Config,
    *,
    user_mode: bool,
    chosen_dir: Path | None,
    dry_run: bool,
    env_file: Path | None,
    run_as: str | None,
) -> Installer:
    """Units for the venv running this command; systemctl only when no folder was chosen.
    Raises PlanError for a combination the units cannot honour."""
    plan = plan_units(
        config,
        bin_dir=Path(sys.executable).parent,
        user_mode=user_mode,
        needs_tun=config_needs_tun(config),
        env_file=env_file,
        run_as=run_as or owner(config.path),
    )
    return Installer(plan, unit_dir(user_mode, chosen_dir), chosen_dir is None, dry_run)


def parse_show(text: str) -> dict[str, str]:
    """`systemctl show -p A,B unit` prints one `A=value` per line."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            out[key] = value
    return out


def unit_status(properties: dict[str, str]) -> dict[str, object]:
    def number(key: str) -> int | None:
        value = properties.get(key, "")
        return int(value) if value.isdigit() else None

    since = properties.get("ActiveEnterTimestamp") or None
    return {
        "loaded": properties.get("LoadState", "unknown"),
        "active": properties.get("ActiveState", "unknown"),
        "sub": properties.get("SubState", "unknown"),
        "since": since,
        "restarts": number("NRestarts"),
        "last_exit": number("ExecMainStatus"),
    }


def service_status(user_mode: bool, as_json: bool, run: Run = run_command) -> int:
    """Per unit: active state, since when, restarts and the main process's last exit status;
    exit 0 when every unit is active, 1 otherwise (also when systemctl is missing)."""
    rows: dict[str, dict[str, object]] = {}
    for name in UNITS:
        argv = systemctl(user_mode, "show", "-p", ",".join(SHOW_PROPERTIES), name)
        try:
            done = run(argv)
        except FileNotFoundError:
            print("error: systemctl not found; is this a systemd machine?")
            return 1
        rows[name] = unit_status(parse_show(done.stdout))
    if as_json:
        print(json.dumps(rows, indent=2))
    else:
        width = max(len(n) for n in rows)
        for name, row in rows.items():
            print(
                f"{name:<{width}}  {row['active']}/{row['sub']}  since {row['since'] or '-'}  "
                f"restarts {row['restarts'] if row['restarts'] is not None else '-'}  "
                f"last exit {row['last_exit'] if row['last_exit'] is not None else '-'}"
            )
    return 0 if all(r["active"] == "active" for r in rows.values()) else 1
