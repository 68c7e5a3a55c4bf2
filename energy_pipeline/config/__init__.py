"""The site configuration: one YAML file, typed, validated up front.

Every process (CLI, collector, simulators, Dagster code server) loads the same file the same way,
so `ENERGY_PIPELINE_CONFIG` points all of them at one site. One module per concern; this package
re-exports the names the rest of the code uses.

A bottom floor, beside `readings`, `yamlfile` and `logs`: it imports only those and `profiles`,
because validation loads each device's profile through the one profile loader (a profile the
config accepts is the profile the drivers and the catalog get). Nothing above it is imported.
"""

from energy_pipeline.config.base import CONFIG_ENV, DEFAULT_CONFIG, DEVICE_ID_PATTERN, Strict
from energy_pipeline.config.devices import (
    DRIVER_NAMES,
    BRouteCredentials,
    Device,
    EchonetConnection,
    EchonetDevice,
    LuxtronikConnection,
    LuxtronikDevice,
    ModbusDevice,
    ModbusRtu,
    ModbusTcp,
)
from energy_pipeline.config.loading import Config, config_path, json_schema, load_config
from energy_pipeline.config.logsettings import LoggingSettings
from energy_pipeline.config.outputs import (
    AlertRule,
    Alerts,
    DiskAlert,
    FileOutput,
    HttpOutput,
    InfluxOutput,
    MqttOutput,
    MqttTls,
    Outputs,
    PubsubOutput,
    StdoutOutput,
    WebhookOutput,
)
from energy_pipeline.config.sections import CollectorSettings, Pipeline, Site, Storage
from energy_pipeline.config.vpn import VpnTunnel

__all__ = [
    "CONFIG_ENV",
    "DEFAULT_CONFIG",
    "DEVICE_ID_PATTERN",
    "DRIVER_NAMES",
    "AlertRule",
    "Alerts",
    "BRouteCredentials",
    "CollectorSettings",
    "Config",
    "Device",
    "DiskAlert",
    "EchonetConnection",
    "EchonetDevice",
    "FileOutput",
    "HttpOutput",
    "InfluxOutput",
    "LoggingSettings",
    "LuxtronikConnection",
    "LuxtronikDevice",
    "ModbusDevice",
    "ModbusRtu",
    "ModbusTcp",
    "MqttOutput",
    "MqttTls",
    "Outputs",
    "Pipeline",
    "PubsubOutput",
    "Site",
    "StdoutOutput",
    "Storage",
    "Strict",
    "VpnTunnel",
    "WebhookOutput",
    "config_path",
    "json_schema",
    "load_config",
]
