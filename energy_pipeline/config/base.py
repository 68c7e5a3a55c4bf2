"""Constants, value types and the strict base model every config section uses."""

from __future__ import annotations

from typing import Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
)

CONFIG_ENV = "ENERGY_PIPELINE_CONFIG"
DEFAULT_CONFIG = "energy-pipeline.yaml"
DEVICE_ID_PATTERN = r"^[a-z0-9_-]+$"

DeviceId = Annotated[str, Field(pattern=DEVICE_ID_PATTERN, min_length=1, max_length=64)]
UnitId = Annotated[int, Field(ge=1, le=247)]
Port = Annotated[int, Field(ge=1, le=65535)]
Timeout = Annotated[float, Field(gt=0, le=300)]
Retries = Annotated[int, Field(ge=0, le=10)]


class Strict(BaseModel):
    """Unknown keys are typos until proven otherwise: reject them with their line."""

    model_config = ConfigDict(extra="forbid", frozen=True)
