"""Every tutorial notebook runs top to bottom (offline, on the staged data).

Each run writes the executed copy, outputs and figures included, to
``notebooks/executed/`` (git-ignored), which the docs site renders (see
mkdocs_hooks.py); the notebooks in ``notebooks/`` stay without outputs.
"""

import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
EXECUTED = ROOT / "notebooks" / "executed"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs(path, shared_data, monkeypatch, tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("KERAS_CONDUCTANCE_DATA", str(shared_data))
    monkeypatch.setenv("KC_SMALL", "1")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    executed = EXECUTED / path.name
    executed.unlink(missing_ok=True)  # a failed run must not leave an old copy on the site
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=900, kernel_name="python3",
                                     # Run where its files (logs, models) may go.
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError on any failing cell
    EXECUTED.mkdir(exist_ok=True)
    nbformat.write(notebook, executed)
    # The copy holds what a reader should see: every notebook draws figures.
    outputs = [o for c in nbformat.read(executed, as_version=4).cells
               if c.cell_type == "code" for o in c.outputs]
    assert any("image/png" in o.get("data", {}) for o in outputs), f"{path.name}: no figure"
    assert not [o for o in outputs if o.output_type == "error"]


def test_source_notebooks_carry_no_outputs():
    nbformat = pytest.importorskip("nbformat")
    for path in NOTEBOOKS:
        for i, cell in enumerate(nbformat.read(path, as_version=4).cells):
            if cell.cell_type == "code":
                assert not cell.outputs, f"{path.name} cell {i} has outputs: clear them"
                assert cell.execution_count is None, f"{path.name} cell {i} has a count"


def test_notebooks_start_with_a_colab_badge_and_install_cell():
    nbformat = pytest.importorskip("nbformat")
    assert len(NOTEBOOKS) >= 1
    for path in NOTEBOOKS:
        cells = nbformat.read(path, as_version=4).cells
        assert f"blob/main/notebooks/{path.name}" in cells[0].source and "colab-badge" in cells[0].source
        assert "google.colab" in cells[1].source and "pip install" in cells[1].source
