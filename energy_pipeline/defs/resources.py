"""The site as a Dagster resource: the config file every asset reads its settings from.

Run workers are separate processes; they load the same file (absolute path, resolved when the
definitions were built), so the UI, the sensor and every run agree on data_dir and devices.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
from pydantic import PrivateAttr

from energy_pipeline.catalog import Catalog, build_catalog
from energy_pipeline.config import Config, load_config


class EnergySite(dg.ConfigurableResource):
    """The site configuration (`energy-pipeline.yaml`) and what is derived from it."""

    config_path: str
    _config: Config | None = PrivateAttr(default=None)

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self.config_path)
        return self._config

    @property
    def data_dir(self) -> Path:
        return self.config.data_dir

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.config.site.timezone)

    @cached_property
    def catalog(self) -> Catalog:
        return build_catalog(self.config)

    @property
    def device_ids(self) -> list[str]:
        return [d.id for d in self.config.devices]

    def now(self) -> datetime:
        return datetime.now(UTC)
