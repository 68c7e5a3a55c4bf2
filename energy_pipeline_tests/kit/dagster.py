"""A Dagster instance per test, in memory: runs, sensor cursors and asset records of one test
never reach another, and nothing lands in a DAGSTER_HOME."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    import dagster as dg


@pytest.fixture
def dagster_instance() -> Iterator[dg.DagsterInstance]:
    import dagster as dg  # here, not above: only the Dagster tests pay for the import

    with dg.DagsterInstance.ephemeral() as instance:
        yield instance
