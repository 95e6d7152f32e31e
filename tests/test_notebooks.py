"""Every tutorial notebook runs top to bottom (offline, on the staged data).

Each run writes the executed copy, outputs and figures included, to
``notebooks/executed/`` (git-ignored), which the docs site renders (see
mkdocs_hooks.py); the notebooks in ``notebooks/`` stay without outputs.
"""

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
EXECUTED = ROOT / "notebooks" / "executed"
# tqdm's text bars ("round 1/6 (32 steps):  45%|####  | 30/66 [...]") and
# its warning that ipywidgets is missing: live feedback while a notebook
# runs, noise in a page read afterwards.
PROGRESS_LINE = re.compile(r"\d+%\|.*\|")
TQDM_NOISE = ("TqdmWarning: IProgress not found", "from .autonotebook import tqdm")


def is_progress(output) -> bool:
    """A stderr stream holding nothing but progress bars and tqdm's warning."""
    if output.get("output_type") != "stream" or output.get("name") != "stderr":
        return False
    lines = [l for l in re.split(r"[\r\n]", output["text"]) if l.strip()]
    return all(PROGRESS_LINE.search(l) or any(n in l for n in TQDM_NOISE) for l in lines)


def without_progress_bars(notebook):
    """The notebook for reading: progress output dropped, warnings kept."""
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs if not is_progress(o)]
    return notebook


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
    nbformat.write(without_progress_bars(notebook), executed)
    # The copy holds what a reader should see: every notebook draws figures.
    outputs = [o for c in nbformat.read(executed, as_version=4).cells
               if c.cell_type == "code" for o in c.outputs]
    assert any("image/png" in o.get("data", {}) for o in outputs), f"{path.name}: no figure"
    assert not [o for o in outputs if o.output_type == "error"]
    # Every cell that draws shows its figure (a library that switched
    # matplotlib to a file-only backend once hid all later figures).
    blank = [i for i, c in enumerate(nbformat.read(executed, as_version=4).cells)
             if c.cell_type == "code" and draws(c.source)
             and not any("image/png" in o.get("data", {}) for o in c.outputs)]
    assert not blank, f"{path.name}: cells {blank} draw but show no figure"
    if path.name == "04_paper_studies.ipynb":
        check_quick_studies(tmp_path / "studies_out", outputs)


def check_quick_studies(out: pathlib.Path, outputs):
    """Notebook 04 runs every study at the QUICK settings, as
    ``python -m conductance_studies all --quick`` does: its results."""
    printed = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert printed.count("[sentiment 7/7]") == 2  # sentences, then phrases
    assert "[imagenet 6/6] done" in printed and "[table1 3/3]" in printed
    report = (out / "results.md").read_text()
    for heading in ("Ablation agreement (Section 6.1)", "Division of labour", "Negation",
                    "Filters to flip the top class", "Feature selection: animal",
                    "Pixel-level view", "Diagnostics on", "Additivity",
                    "trained on sentences", "trained on phrases", "side by side",
                    "Phrases of the SST test trees that no training tree holds", "Table 1"):
        assert heading in report
    figures = {p.name for p in (out / "figures").iterdir()}
    assert {"sst_division_of_labour.png", "imagenet_pixels.png", "imagenet_pixel_maps.png",
            "sst_flips.png", "sst_phrases_flips.png", "table1_conv_pw_13_relu.png"} <= figures
    for page in ("negation.html", "negation_phrases.html"):
        assert "Filters conducting towards" in (out / page).read_text()


def draws(source: str) -> bool:
    """Whether a code cell draws: a ``.plot(`` or a ``plt.<function>(`` call."""
    return ".plot(" in source or re.search(r"\bplt\.\w+\(", source) is not None


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


def test_the_executed_copy_drops_progress_bars_and_keeps_warnings():
    nbformat = pytest.importorskip("nbformat")
    stream = lambda text: nbformat.v4.new_output("stream", name="stderr", text=text)
    bar = "conductance, round 1/6 (32 steps):  45%|####5     | 30/66 [00:02<00:02, 13 path rows/s]"
    warning = "explainer.py:268: UserWarning: Completeness error |delta| reaches 5.5%"
    cell = nbformat.v4.new_code_cell("x", outputs=[
        stream("/x/tqdm/auto.py:21: TqdmWarning: IProgress not found. Please update\n"
               "  from .autonotebook import tqdm as notebook_tqdm\n"),
        stream(bar + "\r" + bar.replace("45%", "100%") + "\n"),
        stream(warning + "\n"),
        stream(bar + "\n" + warning + "\n"),          # a warning among bars stays
        nbformat.v4.new_output("stream", name="stdout", text="45%|## | printed\n"),
    ])
    notebook = nbformat.v4.new_notebook(cells=[cell])
    kept = [o["text"] for o in without_progress_bars(notebook).cells[0].outputs]
    assert kept == [warning + "\n", bar + "\n" + warning + "\n", "45%|## | printed\n"]
