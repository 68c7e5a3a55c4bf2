"""How to talk to devices: one room per protocol, pure codecs apart from I/O, one `Driver` shape.

`registry.build_drivers` turns config devices into drivers. This floor may import config,
readings, profiles and logs only; never the collector, the lake, defs, transforms, live
outputs, simulators or dagster. What a driver must persist arrives as a `base.StateStore`
from whoever builds it.
"""
