"""What the collector's processes never import although their libraries would.

pyarrow imports pandas on its first array conversion whenever pandas is installed (~25 MB RSS
and a third of a second), and `pyarrow.parquet` loads every remote file system it was built
with (S3 alone maps 7 MB and libcrypto) though the collector writes a local folder. pyarrow
treats both as optional and carries on without them. The 24/7 collector loads pyarrow only for
a dashboard history request; the seal process it starts every minute loads it to write Parquet.
"""

from __future__ import annotations

import sys

REFUSED = (
    "pandas",
    "pyarrow._s3fs",
    "pyarrow._gcsfs",
    "pyarrow._azurefs",
    "pyarrow._hdfs",
)


class _Refused:
    """A `sys.meta_path` finder under which importing any of `names` (or their submodules)
    fails as if they were not installed. `sys.modules[name] = None` is not enough: pyarrow's
    pandas shim then fails with AttributeError instead of the ImportError it handles."""

    def __init__(self, *names: str) -> None:
        self.names = names

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if any(name == n or name.startswith(f"{n}.") for n in self.names):
            raise ModuleNotFoundError(f"{name} is kept out of the collector", name=name)


def refuse_unused() -> None:
    if not any(isinstance(f, _Refused) for f in sys.meta_path):
        sys.meta_path.insert(0, _Refused(*REFUSED))
