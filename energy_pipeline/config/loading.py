"""The root model and loading: ${VAR} substitution, validation, cross-checks, and error
messages that name file, key path and line without echoing secrets."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from pydantic import (
    Field,
    PrivateAttr,
    ValidationError,
)

from energy_pipeline.config.base import CONFIG_ENV, DEFAULT_CONFIG, Strict
from energy_pipeline.config.devices import (
    DRIVER_NAMES,
    Device,
    EchonetDevice,
    ModbusDevice,
    ModbusRtu,
)
from energy_pipeline.config.logsettings import LoggingSettings
from energy_pipeline.config.outputs import Alerts, Outputs
from energy_pipeline.config.sections import CollectorSettings, Pipeline, Site, Storage
from energy_pipeline.config.vpn import TunnelName, VpnTunnel, vpn_problems
from energy_pipeline.logs import register_secret
from energy_pipeline.yamlfile import ConfigError, KeyPath, LoadedYaml, Problem, load_yaml

_SECRET_KEY = re.compile(r"password|passwd|secret|token|rbid|psk|key$", re.IGNORECASE)
_UNION_TAGS = (*DRIVER_NAMES, "tcp", "rtu")


class Config(Strict):
    site: Site = Field(default_factory=Site)
    storage: Storage = Field(default_factory=Storage)
    devices: list[Device] = Field(default_factory=list)
    outputs: Outputs = Field(default_factory=Outputs)
    alerts: Alerts = Field(default_factory=Alerts)
    pipeline: Pipeline = Field(default_factory=Pipeline)
    collector: CollectorSettings = Field(default_factory=CollectorSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    vpn: dict[TunnelName, VpnTunnel] = Field(default_factory=dict)

    _path: Path = PrivateAttr(default=Path(DEFAULT_CONFIG))

    @property
    def path(self) -> Path:
        return self._path

    @property
    def base_dir(self) -> Path:
        return self._path.parent

    @property
    def data_dir(self) -> Path:
        return self.resolve(self.storage.data_dir)

    def resolve(self, path: str | Path) -> Path:
        """Paths in the file are relative to the file, whatever the working directory.

        Symlinks are kept, not followed: a `/dev/serial/by-id/...` name must still point at the
        right adapter after a replug, and a simulator's pty link must stay manageable.
        """
        p = Path(path).expanduser()
        return Path(os.path.normpath(p if p.is_absolute() else self.base_dir / p))

    def device(self, device_id: str) -> Device:
        for dev in self.devices:
            if dev.id == device_id:
                return dev
        known = ", ".join(d.id for d in self.devices) or "none"
        raise KeyError(f"no device {device_id!r} in {self._path} (known: {known})")


def config_path(arg: str | Path | None) -> Path:
    """--config, else $ENERGY_PIPELINE_CONFIG, else ./energy-pipeline.yaml."""
    chosen = arg or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG
    return Path(chosen).expanduser().resolve()


def load_config(path: str | Path | None = None, env: dict[str, str] | None = None) -> Config:
    loaded = load_yaml(config_path(path), env)
    for secret in loaded.secrets:
        register_secret(secret)
    data = loaded.data if loaded.data is not None else {}
    if not isinstance(data, dict):
        raise ConfigError([loaded.problem((), "expected a mapping with site, storage, devices")])
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_problems(exc, loaded)) from None
    config._path = loaded.path
    for dev in config.devices:
        if isinstance(dev, EchonetDevice):
            register_secret(dev.credentials.password.get_secret_value())
            register_secret(dev.credentials.rbid.get_secret_value())
    for secret in config.outputs.secrets():
        register_secret(secret)
    problems = _cross_checks(config, loaded)
    if problems:
        raise ConfigError(problems)
    return config


def _cross_checks(config: Config, loaded: LoadedYaml) -> list[Problem]:
    from energy_pipeline.profiles import ProfileNotFound, load_profile

    problems: list[Problem] = []
    seen: dict[str, int] = {}
    buses: dict[str, tuple[int, tuple[object, ...]]] = {}
    for i, dev in enumerate(config.devices):
        if dev.id in seen:
            problems.append(
                loaded.problem(
                    ("devices", i, "id"),
                    f"duplicate device id {dev.id!r} (first used by devices[{seen[dev.id]}]); "
                    "expected ids unique in the file",
                )
            )
        seen.setdefault(dev.id, i)
        settings: tuple[object, ...] = (dev.driver, dev.id)
        if isinstance(dev, ModbusDevice):
            try:
                profile = load_profile(dev.profile, config.base_dir)
            except ProfileNotFound as exc:
                problems.append(loaded.problem(("devices", i, "profile"), str(exc)))
                continue
            except ConfigError as exc:
                problems.append(
                    loaded.problem(
                        ("devices", i, "profile"), f"profile {dev.profile!r} is invalid (below)"
                    )
                )
                problems.extend(exc.problems)
                continue
            conn = dev.connection
            if isinstance(conn, ModbusRtu):
                settings = (
                    "modbus",
                    conn.baudrate or profile.serial.baudrate,
                    f"{conn.bytesize}{conn.parity or profile.serial.parity}"
                    f"{conn.stopbits or profile.serial.stopbits}",
                )
        port = getattr(dev.connection, "serial_port", None)
        if port is None:
            continue
        real = os.path.realpath(config.resolve(port))
        if real in buses and buses[real][1] != settings:
            j, first = buses[real]
            problems.append(
                loaded.problem(
                    ("devices", i, "connection", "serial_port"),
                    f"serial port {port} is also used by devices[{j}] "
                    f"({config.devices[j].id}) with {' '.join(map(str, first))}, this device "
                    f"asks for {' '.join(map(str, settings))}; expected one protocol and one "
                    "set of line settings per port",
                )
            )
        buses.setdefault(real, (i, settings))
    problems += config.outputs.unknown_devices(seen, loaded)
    problems += vpn_problems(config.vpn, [d.vpn for d in config.devices], config.resolve, loaded)
    if config.outputs.influxdb is not None:
        problems += config.outputs.influxdb.problems(loaded)
    for i, rule in enumerate(config.alerts.rules):
        if rule.device != "*" and rule.device not in seen:
            problems.append(
                loaded.problem(("alerts", "rules", i, "device"), f"no device {rule.device!r}")
            )
    return problems


def _data_path(loc: tuple[Any, ...], data: Any) -> KeyPath:
    """Map a pydantic location to the YAML key path, dropping union tags pydantic inserts."""
    path: list[str | int] = []
    node = data
    for part in loc:
        if isinstance(node, dict) and str(part) in node:
            node = node[str(part)]
            path.append(str(part))
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
            path.append(part)
        elif isinstance(node, dict) and isinstance(part, str) and part not in _UNION_TAGS:
            path.append(part)
            node = None
        elif node is None:
            path.append(part)
    return tuple(path)


def _is_secret(key: KeyPath, loaded: LoadedYaml) -> bool:
    if key in loaded.substituted:
        return True
    return any(isinstance(k, str) and _SECRET_KEY.search(k) for k in key)


def _problems(exc: ValidationError, loaded: LoadedYaml) -> list[Problem]:
    problems: list[Problem] = []
    for err in exc.errors(include_url=False):
        key = _data_path(err["loc"], loaded.data)
        msg = err["msg"]
        if msg.startswith("Value error, "):
            msg = msg.removeprefix("Value error, ")
        if err["type"] == "union_tag_invalid":
            ctx = err.get("ctx", {})
            key = (*key, str(ctx.get("discriminator", "")).strip("'"))
            msg = f"unknown value; expected one of {ctx.get('expected_tags', '')}"
        elif err["type"] == "missing":
            msg = "required key is missing"
        elif err["type"] == "extra_forbidden":
            msg = "unknown key (check spelling; see `energy-pipeline config schema`)"
        value = err.get("input")
        if (
            err["type"] not in ("missing", "extra_forbidden")
            and not isinstance(value, dict | list)
            and not _is_secret(key, loaded)
        ):
            msg += f" (got {value!r})"
        problems.append(loaded.problem(key, msg))
    return problems


def json_schema() -> dict[str, Any]:
    schema = Config.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "energy-pipeline site configuration"
    return schema
