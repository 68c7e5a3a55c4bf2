"""Live outputs (HTTP, MQTT, webhook, file, stdout, Pub/Sub) and alert rules, served from the
collector."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from energy_pipeline.config.base import DEVICE_ID_PATTERN, DeviceId, Port, Strict, Timeout
from energy_pipeline.yamlfile import KeyPath, LoadedYaml, Problem


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


RecordForm = Literal["reading", "hems"]
"""reading: this product's records; hems: the HEMS seed's flat smart-meter record (ISO
timestamps, null where a phase has no data), made for devices that report its metrics."""


class WebhookOutput(Strict):
    url: str = Field(pattern=r"^https?://", description="http:// or https:// endpoint")
    record: RecordForm = Field(
        "reading", description="reading: batches of events; hems: one flat record per POST"
    )
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
    record: RecordForm = "reading"
    queue_size: int = Field(10_000, ge=1, le=1_000_000)


class StdoutOutput(Strict):
    """JSON lines on standard output, for piping; logs stay on stderr."""

    format: Literal["jsonl", "hems"] = Field(
        "jsonl", description="jsonl: timestamp, device_id, metrics; hems: the HEMS record"
    )
    queue_size: int = Field(10_000, ge=1, le=1_000_000)


class PubsubOutput(Strict):
    """Google Cloud Pub/Sub, with the official client (`pip install energy-pipeline[pubsub]`);
    PUBSUB_EMULATOR_HOST points it at the emulator. Credentials come from the environment the
    client reads (GOOGLE_APPLICATION_CREDENTIALS or the metadata server), never this file."""

    project: str = Field(pattern=r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$", description="project id")
    topic: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9._~%+-]{2,254}$", description="topic id")
    format: Literal["json", "hems"] = Field(
        "json", description="json: one reading record per message; hems: the HEMS record"
    )
    batch_max_messages: int = Field(100, ge=1, le=1000)
    batch_max_seconds: float = Field(1.0, gt=0, le=60)
    queue_max: int = Field(
        10_000, ge=1, le=1_000_000, description="readings waiting; oldest dropped"
    )
    timeout: Timeout = 10.0
    max_attempts: int = Field(5, ge=1, le=100)
    backoff_initial: float = Field(1.0, gt=0, le=600)
    backoff_max: float = Field(60.0, gt=0, le=3600)


class InfluxOutput(Strict):
    """Readings to an InfluxDB: `api: v1` is `/write?db=&rp=` (InfluxDB 1.x, and 2.x's v1
    compatibility endpoint), `api: v2` is `/api/v2/write?org=&bucket=` with a token."""

    url: str = Field(
        pattern=r"^https?://[^/@\s]+(/\S*)?$", description="e.g. http://127.0.0.1:8086"
    )
    api: Literal["v1", "v2"] = "v1"
    database: str | None = Field(None, min_length=1, description="v1: the database")
    retention_policy: str | None = Field(None, min_length=1, description="v1: default: the db's")
    username: str | None = Field(None, min_length=1, description="v1: basic auth user")
    password: SecretStr | None = Field(None, description="v1: basic auth password")
    org: str | None = Field(None, min_length=1, description="v2: organisation name or id")
    bucket: str | None = Field(None, min_length=1, description="v2: bucket name")
    token: SecretStr | None = Field(None, description='API token, best "${INFLUX_TOKEN}"')
    measurement: str = Field("energy", min_length=1)
    precision: Literal["ns", "us", "ms", "s"] = Field("ms", description="timestamps sent")
    batch_seconds: float = Field(5.0, gt=0, le=3600, description="longest a point waits")
    batch_max_points: int = Field(5000, ge=1, le=1_000_000, description="points per request")
    queue_max_points: int = Field(100_000, ge=1, le=10_000_000, description="points buffered")
    timeout: Timeout = 10.0
    backoff_initial: float = Field(1.0, gt=0, le=600)
    backoff_max: float = Field(60.0, gt=0, le=3600)

    def problems(self, loaded: LoadedYaml) -> list[Problem]:
        """The keys each API needs, named one by one (pydantic would name only the section)."""
        needed = ("database",) if self.api == "v1" else ("org", "bucket", "token")
        return [
            loaded.problem(
                ("outputs", "influxdb", key),
                f"required with api: {self.api}; expected the {key} to write to"
                if key != "token"
                else 'required with api: v2; expected an API token, e.g. "${INFLUX_TOKEN}"',
            )
            for key in needed
            if getattr(self, key) is None
        ]


class Outputs(Strict):
    http: HttpOutput | None = None
    mqtt: MqttOutput | None = None
    webhook: WebhookOutput | None = None
    file: FileOutput | None = None
    stdout: StdoutOutput | None = None
    pubsub: PubsubOutput | None = None
    influxdb: InfluxOutput | None = None

    def secrets(self) -> list[str]:
        found = []
        if self.http and self.http.token:
            found.append(self.http.token.get_secret_value())
        if self.mqtt and self.mqtt.password:
            found.append(self.mqtt.password.get_secret_value())
        if self.webhook and self.webhook.secret:
            found.append(self.webhook.secret.get_secret_value())
        for secret in (self.influxdb.password, self.influxdb.token) if self.influxdb else ():
            if secret is not None:
                found.append(secret.get_secret_value())
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


class DiskAlert(Strict):
    """The built-in alert on the data directory's free space; either threshold raises it."""

    min_free_percent: float = Field(5.0, ge=0, le=100, description="percent of the file system")
    min_free_gb: float = Field(1.0, ge=0, description="gigabytes (10^9 bytes)")


class Alerts(Strict):
    profile_defaults: bool = Field(True, description="use the alert rules profiles ship")
    rules: list[AlertRule] = Field(default_factory=list)
    disk: DiskAlert = Field(default_factory=DiskAlert)
