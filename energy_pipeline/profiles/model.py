"""The register-map profile schema: one definition, used by the driver, the planner and the
simulators alike. New Modbus equipment needs only a YAML file that validates against this.
Reading files is `energy_pipeline.profiles`' job; this module only describes and validates."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

RegisterType = Literal["holding", "input", "coil", "discrete"]
DataType = Literal[
    "int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64", "bool", "string"
]
ByteOrder = Literal["ABCD", "DCBA", "BADC", "CDAB"]
Kind = Literal["gauge", "counter", "state"]

REGISTER_WIDTH: dict[str, int] = {
    "int16": 1,
    "uint16": 1,
    "int32": 2,
    "uint32": 2,
    "float32": 2,
    "int64": 4,
    "uint64": 4,
    "float64": 4,
    "bool": 1,
}
BIT_TYPES = ("coil", "discrete")
PROMETHEUS_NAME = r"^[a-zA-Z_:][a-zA-Z0-9_:]*$"
RESERVED_PREFIX = "energy_"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MappedAlias(_Strict):
    """A state point under another name with its states as numbers, e.g. the UPS monitor's
    `ups_status` (1 on line power, 0 on battery). Every label of the point must be mapped, so
    adding a state to the profile cannot silently drop the series."""

    name: str = Field(pattern=PROMETHEUS_NAME)
    map: dict[str, float] = Field(min_length=1, description="state label -> exported value")


class Aliases(_Strict):
    """Other names a point is also exported under, for integrations that already use them."""

    prometheus: Annotated[str, Field(pattern=PROMETHEUS_NAME)] | MappedAlias | None = Field(
        None, description="a /metrics gauge name, or {name, map} for a state point"
    )


class Point(_Strict):
    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$")
    address: int = Field(ge=0, le=65535, description="PDU address as sent on the wire")
    register_type: RegisterType = "holding"
    data_type: DataType = "uint16"
    byte_order: ByteOrder = "ABCD"
    count: int | None = Field(None, ge=1, le=125, description="registers, for strings only")
    scale: float = 1.0
    offset: float = 0.0
    unit: str | None = None
    kind: Kind = "gauge"
    labels: dict[int, str] = Field(default_factory=dict, description="state codes -> labels")
    min: float | None = None
    max: float | None = None
    nan_value: float | None = Field(None, description="raw value meaning 'no reading'")
    description: str | None = None
    publish: bool = Field(False, description="include in MQTT discovery and the dashboard")
    aliases: Aliases | None = Field(None, description="names other tools know this value by")

    @property
    def width(self) -> int:
        """Registers (or bits, for coils and discrete inputs) this point occupies."""
        if self.register_type in BIT_TYPES:
            return 1
        if self.data_type == "string":
            return self.count or 1
        return REGISTER_WIDTH[self.data_type]

    @model_validator(mode="after")
    def _consistent(self) -> Point:
        if self.register_type in BIT_TYPES and self.data_type != "bool":
            raise ValueError(f"{self.register_type} points hold one bit: data_type must be bool")
        if self.data_type == "string" and self.count is None:
            raise ValueError("string points need count (registers)")
        if self.data_type != "string" and self.count is not None:
            raise ValueError("count is only for string points")
        if self.address + self.width - 1 > 65535:
            raise ValueError("point runs past address 65535")
        self._check_aliases()
        return self

    def _check_aliases(self) -> None:
        alias = self.aliases.prometheus if self.aliases else None
        name = alias.name if isinstance(alias, MappedAlias) else alias
        if name is not None and name.startswith(RESERVED_PREFIX):
            raise ValueError(f"alias {name!r}: names starting {RESERVED_PREFIX!r} are reserved")
        if not isinstance(alias, MappedAlias):
            return
        if self.kind != "state" or not self.labels:
            raise ValueError("a mapped alias needs a state point with labels")
        missing = sorted(set(self.labels.values()) - set(alias.map))
        unknown = sorted(set(alias.map) - set(self.labels.values()))
        if missing or unknown:
            raise ValueError(
                f"alias map keys must be this point's labels: missing {missing}, unknown {unknown}"
            )

    def prometheus_alias(self) -> tuple[str, dict[int, float] | None] | None:
        """(gauge name, state code -> value or None for the value itself), if aliased."""
        alias = self.aliases.prometheus if self.aliases else None
        if alias is None:
            return None
        if isinstance(alias, MappedAlias):
            return alias.name, {code: alias.map[label] for code, label in self.labels.items()}
        return alias, None


class AddressRange(_Strict):
    register_type: RegisterType = "holding"
    start: int = Field(ge=0, le=65535)
    end: int = Field(ge=0, le=65535, description="inclusive")

    @model_validator(mode="after")
    def _ordered(self) -> AddressRange:
        if self.end < self.start:
            raise ValueError("end must be >= start")
        return self


class SerialDefaults(_Strict):
    baudrate: int = 9600
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1


class AlertDefault(_Strict):
    """A default alert rule shipped with the profile; `alerts:` in the config may override."""

    metric: str
    op: Literal["<", "<=", ">", ">=", "==", "!="]
    threshold: float
    clear: float | None = None
    for_seconds: float = 0.0
    severity: Literal["info", "warning", "critical"] = "warning"
    message: str | None = None


class Profile(_Strict):
    manufacturer: str
    model: str
    description: str | None = None
    unit_id: int = Field(1, ge=1, le=247)
    serial: SerialDefaults = Field(default_factory=SerialDefaults)
    forbidden: list[AddressRange] = Field(
        default_factory=list, description="ranges the planner must never read"
    )
    allowed: list[AddressRange] = Field(
        default_factory=list,
        description="if set, every read must lie inside one of these ranges",
    )
    alerts: list[AlertDefault] = Field(default_factory=list)
    points: list[Point] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_points(self) -> Profile:
        seen: set[str] = set()
        aliases: set[str] = set()
        for p in self.points:
            if p.name in seen:
                raise ValueError(f"duplicate point name {p.name!r}")
            seen.add(p.name)
            alias = p.prometheus_alias()
            if alias is not None:
                if alias[0] in aliases:
                    raise ValueError(f"alias {alias[0]!r} given to two points")
                aliases.add(alias[0])
            for r in self.forbidden:
                if r.register_type == p.register_type and not (
                    p.address + p.width - 1 < r.start or p.address > r.end
                ):
                    raise ValueError(f"point {p.name!r} lies in a forbidden range")
            if self.allowed and not any(
                r.register_type == p.register_type
                and r.start <= p.address
                and p.address + p.width - 1 <= r.end
                for r in self.allowed
            ):
                raise ValueError(f"point {p.name!r} lies outside every allowed range")
        return self


def error_message(err: Any) -> str:
    """A pydantic error phrased for the person who wrote the file."""
    if err["type"] == "missing":
        return "required key is missing"
    if err["type"] == "extra_forbidden":
        return "unknown key (check spelling against the profile schema)"
    msg = str(err["msg"]).removeprefix("Value error, ")
    value = err.get("input")
    if not isinstance(value, dict | list):
        msg += f" (got {value!r})"
    return msg
