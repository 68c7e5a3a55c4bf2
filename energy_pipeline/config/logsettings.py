"""The `logging:` section: levels per component, an optional rotated file, text or JSON lines.

Components are the product's own loggers named without the `energy_pipeline.` prefix
(`collector`, `drivers`, `mqtt`, `alerts`), so a site can quieten one noisy part without
learning the module tree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field

from energy_pipeline.config.base import Strict

LogLevel = Literal["debug", "info", "warning", "error", "critical"]
Component = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")]


class LoggingSettings(Strict):
    level: LogLevel = Field("info", description="level of every logger not listed in levels")
    levels: dict[Component, LogLevel] = Field(
        default_factory=dict,
        description="component (collector, drivers, drivers.modbus, mqtt, alerts, ...) -> level",
    )
    file: Path | None = Field(
        None, description="also write logs to this file (relative to the config file's folder)"
    )
    max_bytes: int = Field(
        10 * 1024 * 1024, ge=1024, description="the file is rotated once it reaches this size"
    )
    backups: int = Field(5, ge=0, le=100, description="rotated files kept (file.1 ... file.N)")
    format: Literal["text", "json"] = Field(
        "text", description="text: ts level logger message k=v; json: one object per line"
    )
