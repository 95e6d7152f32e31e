"""Every tutorial notebook runs top to bottom (offline, on the staged data)."""

import os
import pathlib

import pytest

NOTEBOOKS = sorted((pathlib.Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs(path, shared_data, monkeypatch, tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("KERAS_CONDUCTANCE_DATA", str(shared_data))
    monkeypatch.setenv("KC_SMALL", "1")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=900, kernel_name="python3",
                                     # Run where its files (logs, models) may go.
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError on any failing cell
    # Outputs are never committed: the file on disk has none.
    on_disk = nbformat.read(path, as_version=4)
    assert all(not c.get("outputs") for c in on_disk.cells if c.cell_type == "code")


def test_notebooks_start_with_a_colab_badge_and_install_cell():
    nbformat = pytest.importorskip("nbformat")
    assert len(NOTEBOOKS) >= 1
    for path in NOTEBOOKS:
        cells = nbformat.read(path, as_version=4).cells
        assert f"blob/main/notebooks/{path.name}" in cells[0].source and "colab-badge" in cells[0].source
        assert "google.colab" in cells[1].source and "pip install" in cells[1].source
