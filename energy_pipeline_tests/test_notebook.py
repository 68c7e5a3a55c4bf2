"""notebooks/forecasting.py (a jupytext percent script) runs top to bottom in a real Jupyter
kernel on the simulated lake: no cell errors and every figure is drawn."""

from __future__ import annotations

import jupytext
import pytest
from nbclient import NotebookClient

from energy_pipeline_tests.conftest import REPO

FIGURES = 3
"""A week of load with the daily profile, the forecast against actuals, the backtest skill."""


def test_forecasting_notebook_runs_on_the_simulated_lake(simulated_lake, tmp_path, monkeypatch):
    config, _ = simulated_lake
    monkeypatch.setenv("ENERGY_PIPELINE_DATA", str(config.data_dir))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    notebook = jupytext.read(REPO / "notebooks" / "forecasting.py")
    client = NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()  # raises CellExecutionError naming the cell when one fails
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    if len(images) != FIGURES:
        pytest.fail(f"expected {FIGURES} figures, the notebook drew {len(images)}")
