"""The catalog floor: what every metric means (unit, kind gauge/counter/state, state labels,
description, publish flag, display name, valid range, counter wrap) and which metrics play the
energy, power and outdoor-temperature roles, per device of a site.

`build_catalog(config)` builds it once from the Modbus profiles and the Luxtronik and ECHONET
name tables; live outputs, transforms, exports, Dagster defs and the CLI all read this one
catalog, so a reading means the same thing on /metrics, in MQTT discovery and in the daily
tables. The floor may import `profiles`, `config`, `readings` and `yamlfile`; it never imports
drivers, transforms, lake, live, collector, defs, simulators or dagster.
"""

from energy_pipeline.catalog.build import build_catalog
from energy_pipeline.catalog.model import Catalog, DeviceMeaning, MetricMeaning

__all__ = ["Catalog", "DeviceMeaning", "MetricMeaning", "build_catalog"]
