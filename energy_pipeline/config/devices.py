"""Device entries: one model per driver family, chosen by `driver`, connection by `transport`."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    Field,
    SecretStr,
    field_validator,
)

from energy_pipeline.config.base import DeviceId, Port, Retries, Strict, Timeout, UnitId


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
    vpn: str | None = Field(None, description="name of the vpn: tunnel the device is reached by")


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


Device = Annotated[ModbusDevice | LuxtronikDevice | EchonetDevice, Field(discriminator="driver")]
DRIVER_NAMES = ("modbus", "luxtronik", "echonet_broute")
