"""The site configuration: one YAML file, typed, validated up front.

Every process (CLI, collector, simulators, Dagster code server) loads the same file the same way,
so `ENERGY_PIPELINE_CONFIG` points all of them at one site. Errors name file, key path and line
and say what was expected; values that came from ${VAR} or look like secrets are never echoed.
"""

from __future__ import annotations

import os
import re
import zoneinfo
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from energy_pipeline.logs import register_secret
from energy_pipeline.yamlfile import ConfigError, KeyPath, LoadedYaml, Problem, load_yaml

CONFIG_ENV = "ENERGY_PIPELINE_CONFIG"
DEFAULT_CONFIG = "energy-pipeline.yaml"
DEVICE_ID_PATTERN = r"^[a-z0-9_-]+$"
_SECRET_KEY = re.compile(r"password|passwd|secret|token|rbid|psk|key$", re.IGNORECASE)

DeviceId = Annotated[str, Field(pattern=DEVICE_ID_PATTERN, min_length=1, max_length=64)]
UnitId = Annotated[int, Field(ge=1, le=247)]
Port = Annotated[int, Field(ge=1, le=65535)]
Timeout = Annotated[float, Field(gt=0, le=300)]
Retries = Annotated[int, Field(ge=0, le=10)]


class Strict(BaseModel):
    """Unknown keys are typos until proven otherwise: reject them with their line."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Site(Strict):
    name: str = "site"
    timezone: str = "UTC"
    country: str | None = Field(
        None, description="ISO 3166 country code for the holiday calendar feature, e.g. DE"
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r}; expected an IANA name such as Europe/Berlin"
            ) from None
        return value


class Storage(Strict):
    data_dir: Path = Field(Path("data"), description="relative to the config file's folder")


class ModbusTcp(Strict):
    transport: Literal["tcp"]
    host: str = Field(min_length=1)
    port: Port = 502
    unit_id: UnitId | None = Field(None, description="default: the profile's unit id, else 1")
    timeout: Timeout = 2.0
    retries: Retries = 2


class ModbusRtu(Strict):
    transport: Literal["rtu"]
    serial_port: str = Field(min_length=1, description="best a /dev/serial/by-id/... path")
    baudrate: int | None = Field(None, gt=0, description="default: the profile's, else 9600")
    parity: Literal["N", "E", "O"] | None = None
    stopbits: Literal[1, 2] | None = None
    bytesize: Literal[7, 8] = 8
    unit_id: UnitId | None = None
    timeout: Timeout = 1.0
    retries: Retries = 2


class DeviceBase(Strict):
    id: DeviceId
    interval: float = Field(60.0, gt=0, le=86400, description="seconds, wall-clock aligned")
    tags: dict[str, str] = Field(default_factory=dict)


class ModbusDevice(DeviceBase):
    driver: Literal["modbus"]
    profile: str = Field(min_length=1, description="built-in profile name or path to a YAML")
    connection: Annotated[ModbusTcp | ModbusRtu, Field(discriminator="transport")]
    max_gap: int = Field(16, ge=0, le=124, description="unused registers a single read may bridge")


class LuxtronikConnection(Strict):
    host: str = Field(min_length=1)
    port: Port = 8889
    timeout: Timeout = 5.0
    retries: Retries = 1


class LuxtronikDevice(DeviceBase):
    driver: Literal["luxtronik"]
    connection: LuxtronikConnection


class EchonetConnection(Strict):
    serial_port: str = Field(min_length=1)
    baudrate: int = Field(115200, gt=0)
    timeout: Timeout = 10.0
    retries: Retries = 2


class BRouteCredentials(Strict):
    rbid: SecretStr = Field(description="32-character route-B ID from the power company")
    password: SecretStr = Field(description="12-character route-B password")

    @field_validator("rbid")
    @classmethod
    def _rbid_shape(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) != 32:
            raise ValueError("expected the 32-character route-B ID")
        return value

    @field_validator("password")
    @classmethod
    def _password_shape(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) != 12:
            raise ValueError("expected the 12-character route-B password")
        return value


class EchonetDevice(DeviceBase):
    driver: Literal["echonet_broute"]
    connection: EchonetConnection
    credentials: BRouteCredentials


class HttpOutput(Strict):
    """The dashboard, JSON API and /metrics, served from inside the collector process."""

    host: str = Field("127.0.0.1", min_length=1, description="listen address; loopback by default")
    port: Annotated[int, Field(ge=0, le=65535)] = Field(8080, description="0 picks a free port")
    token: SecretStr | None = Field(None, description="bearer token required on every request")
    history_minutes: int = Field(60, ge=1, le=1440, description="chart span kept in memory")
    chart: list[Annotated[str, Field(pattern=r"^[a-z0-9_-]+\.[A-Za-z0-9_]+$")]] = Field(
        default_factory=list,
        description="'device.metric' charted on the dashboard; default: published gauges",
    )
    cards: dict[DeviceId, list[str]] = Field(
        default_factory=dict, description="metrics shown per device card; default: published"
    )


class MqttTls(Strict):
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    insecure: bool = Field(False, description="skip host name verification (testing only)")


class MqttOutput(Strict):
    host: str = Field(min_length=1)
    port: Port = 1883
    client_id: str | None = None
    username: str | None = None
    password: SecretStr | None = None
    tls: MqttTls | None = None
    prefix: str = Field("energy_pipeline", pattern=r"^[^#+]+$")
    discovery: bool = True
    discovery_prefix: str = Field("homeassistant", pattern=r"^[^#+]+$")
    publish: dict[DeviceId, list[str]] = Field(
        default_factory=dict, description="metrics announced to Home Assistant per device"
    )
    qos: Literal[0, 1, 2] = 1
    keepalive: int = Field(30, ge=5, le=3600)
    queue_size: int = Field(1000, ge=1, le=1_000_000)
    reconnect_min: float = Field(1.0, gt=0, le=300)
    reconnect_max: float = Field(60.0, gt=0, le=3600)


class WebhookOutput(Strict):
    url: str = Field(pattern=r"^https?://", description="http:// or https:// endpoint")
    secret: SecretStr | None = Field(None, description="HMAC-SHA256 key for the signature header")
    batch_size: int = Field(100, ge=1, le=10_000)
    queue_size: int = Field(10_000, ge=1, le=1_000_000)
    timeout: Timeout = 5.0
    max_attempts: int = Field(5, ge=1, le=100)
    backoff_initial: float = Field(1.0, gt=0, le=600)
    backoff_max: float = Field(60.0, gt=0, le=3600)


class FileOutput(Strict):
    path: Path = Field(Path("data/live"), description="folder; relative to the config file")
    format: Literal["jsonl", "csv"] = "jsonl"
    queue_size: int = Field(10_000, ge=1, le=1_000_000)


class Outputs(Strict):
    http: HttpOutput | None = None
    mqtt: MqttOutput | None = None
    webhook: WebhookOutput | None = None
    file: FileOutput | None = None

    def secrets(self) -> list[str]:
        found = []
        if self.http and self.http.token:
            found.append(self.http.token.get_secret_value())
        if self.mqtt and self.mqtt.password:
            found.append(self.mqtt.password.get_secret_value())
        if self.webhook and self.webhook.secret:
            found.append(self.webhook.secret.get_secret_value())
        return found

    def unknown_devices(self, known: dict[str, int], loaded: LoadedYaml) -> list[Problem]:
        """Per-device lists (cards, MQTT publish, chart) must name devices of this file."""
        refs: list[tuple[KeyPath, str]] = []
        if self.http:
            refs += [(("outputs", "http", "cards", d), d) for d in self.http.cards]
            refs += [
                (("outputs", "http", "chart", i), c.partition(".")[0])
                for i, c in enumerate(self.http.chart)
            ]
        if self.mqtt:
            refs += [(("outputs", "mqtt", "publish", d), d) for d in self.mqtt.publish]
        return [
            loaded.problem(key, f"no device {dev!r}; expected one of the ids under devices")
            for key, dev in refs
            if dev not in known
        ]


class AlertRule(Strict):
    """threshold: metric op threshold held for for_seconds, cleared past `clear` (hysteresis);
    stale: no successful poll for `after` seconds; device_down: `failures` failed polls in a row."""

    device: str = Field(description="a device id, or * for every device")
    kind: Literal["threshold", "stale", "device_down"] = "threshold"
    metric: str | None = None
    op: Literal["<", "<=", ">", ">=", "==", "!="] | None = None
    threshold: float | None = None
    clear: float | None = None
    for_seconds: float = Field(0.0, ge=0, le=86400)
    after: float | None = Field(None, gt=0, le=7 * 86400, description="stale rules: seconds")
    failures: int = Field(3, ge=1, le=1000, description="device_down rules")
    severity: Literal["info", "warning", "critical"] = "warning"
    message: str | None = None

    @field_validator("device")
    @classmethod
    def _device_or_star(cls, value: str) -> str:
        if value != "*" and not re.fullmatch(DEVICE_ID_PATTERN, value):
            raise ValueError("expected a device id or *")
        return value

    @model_validator(mode="after")
    def _fields_for_kind(self) -> AlertRule:
        if self.kind == "threshold" and (
            self.metric is None or self.op is None or self.threshold is None
        ):
            raise ValueError("threshold rules need metric, op and threshold")
        if self.kind == "stale" and self.after is None:
            raise ValueError("stale rules need after (seconds)")
        return self


class Alerts(Strict):
    profile_defaults: bool = Field(True, description="use the alert rules profiles ship")
    rules: list[AlertRule] = Field(default_factory=list)


class Pipeline(Strict):
    """How Dagster turns the raw lake into tables: windows, automation, retention."""

    minute_window_days: int = Field(
        35, ge=1, le=60, description="days of minute partitions Dagster tracks (rolling window)"
    )
    history_start: date = Field(
        date(2024, 1, 1), description="first day of the daily partitions (local date)"
    )
    sensor_interval_seconds: int = Field(
        300, ge=30, le=3600, description="how often the sensor looks for newly sealed minutes"
    )
    max_minutes_per_run: int = Field(
        1440, ge=1, le=1440, description="cap on the minutes one sensor run covers"
    )
    daily_schedule_minute: int = Field(
        20, ge=0, le=59, description="minute past local midnight the daily schedule fires"
    )
    raw_freshness_minutes: int = Field(
        10, ge=1, le=1440, description="raw_readings turns red when no minute sealed this long"
    )
    compaction_grace_hours: int = Field(
        2, ge=1, le=168, description="an hour is compacted once sealed this long ago"
    )
    raw_retention_days: int | None = Field(None, ge=1, description="delete older raw; none: keep")
    minute_retention_days: int | None = Field(
        None, ge=1, description="delete older minute_readings; none: keep"
    )
    export_retention_days: int = Field(30, ge=1, description="delete older CSV exports")
    run_history_days: int = Field(14, ge=1, description="delete Dagster runs older than this")
    forecast_targets: dict[str, str] = Field(
        default_factory=dict,
        description="device id -> metric forecast; default: its energy counter, else its power",
    )


class CollectorSettings(Strict):
    """The `collector:` section: how the long-running collector lands readings in the lake."""

    id: str = Field(
        "main",
        pattern=DEVICE_ID_PATTERN,
        max_length=64,
        description="names this collector's lake files and status; unique per lake",
    )
    seal_delay: float = Field(
        5.0, ge=0, le=600, description="seconds after a minute ends before it is sealed"
    )
    commit_wait: float = Field(
        0.8,
        gt=0,
        le=60,
        description="longest a tick waits for slow devices before its group commit "
        "(capped at 0.8 x the shortest interval); late polls join the next commit",
    )
    max_pending_mb: float = Field(
        256.0,
        gt=0,
        description="readings kept in memory while the data directory refuses writes",
    )
    backoff_initial: float = Field(2.0, gt=0, le=3600, description="seconds, second failure")
    backoff_max: float = Field(300.0, gt=0, le=86400, description="seconds, cap of the backoff")
    wal_dir: Path | None = Field(
        None, description="write-ahead log folder; default <data_dir>/state/wal-<id>"
    )


Device = Annotated[ModbusDevice | LuxtronikDevice | EchonetDevice, Field(discriminator="driver")]
DRIVER_NAMES = ("modbus", "luxtronik", "echonet_broute")
_UNION_TAGS = (*DRIVER_NAMES, "tcp", "rtu")


class Config(Strict):
    site: Site = Field(default_factory=Site)
    storage: Storage = Field(default_factory=Storage)
    devices: list[Device] = Field(default_factory=list)
    outputs: Outputs = Field(default_factory=Outputs)
    alerts: Alerts = Field(default_factory=Alerts)
    pipeline: Pipeline = Field(default_factory=Pipeline)
    collector: CollectorSettings = Field(default_factory=CollectorSettings)

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
