"""The docs site builds in strict mode, documents every public name with its
full signature, typesets the maths and renders executed notebooks."""

import base64
import html
import inspect
import os
import pathlib
import re
import subprocess
import sys

import pytest

import keras_conductance as kc

ROOT = pathlib.Path(__file__).resolve().parents[1]

# A 1x1 PNG: stands in for a figure in an executed notebook.
PNG = base64.b64encode(bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)).decode()


def build_site(site_dir, executed_dir):
    """Builds the site with ``mkdocs build --strict``; the executed notebooks
    are read from ``executed_dir`` (see mkdocs_hooks.py)."""
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings")
    pytest.importorskip("material")
    pytest.importorskip("mkdocs_jupyter")
    env = dict(os.environ, KC_EXECUTED_NOTEBOOKS=str(executed_dir), NO_MKDOCS_2_WARNING="1")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site_dir)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return pathlib.Path(site_dir)


def signature_block(page: str, name: str) -> str:
    """The text of the signature shown under ``name``'s heading."""
    start = page.find(f'id="keras_conductance.{name}"')
    assert start >= 0, f"no heading for {name} on the API page"
    match = re.search(r'<div class="doc-signature highlight">(.*?)</div>', page[start:], re.S)
    assert match, f"no signature shown for {name}"
    return html.unescape(re.sub(r"<[^>]+>", "", match.group(1)))


def test_every_public_name_is_in_the_api_reference():
    api = (ROOT / "docs" / "api.md").read_text()
    documented = set(re.findall(r"^::: keras_conductance\.(\w+)", api, flags=re.M))
    missing = sorted(set(kc.__all__) - documented)
    assert not missing, f"add to docs/api.md: {missing}"
    extra = sorted(documented - set(kc.__all__))
    assert not extra, f"documented but not exported: {extra}"


@pytest.mark.slow
def test_mkdocs_strict_build(tmp_path):
    # A fresh clone: no executed notebooks anywhere.
    (tmp_path / "none").mkdir()
    site = build_site(tmp_path / "site", tmp_path / "none")
    api = (site / "api" / "index.html").read_text()
    for name in kc.__all__:
        assert name in api
    # Every argument of every public callable is in its rendered signature
    # (help() shows the same: no **kwargs hides an option).
    for name in kc.__all__:
        obj = getattr(kc, name)
        if not callable(obj):
            continue
        shown = signature_block(api, name)
        for param in inspect.signature(obj).parameters:
            assert re.search(rf"\b{param}\b\s*[:=,)\n]", shown), \
                f"{name}: argument {param!r} not in the rendered signature:\n{shown}"
    # A Returns section is one description, not a row per wrapped line.
    returns = re.search(r'id="keras_conductance.conductance".*?Returns:</span>(.*?)</table>',
                        api, re.S).group(1)
    assert returns.count("<tr") == 2, "header row and one description row"
    # The maths is marked up for MathJax (arithmatex, generic mode) and
    # MathJax is loaded with its configuration.
    concepts = (site / "concepts" / "index.html").read_text()
    assert concepts.count('class="arithmatex"') >= 30
    assert r"\(\mathrm{IG}_i = (x_i - x'_i) \int_0^1" in html.unescape(concepts)
    assert "javascripts/mathjax.js" in concepts and "mathjax@3" in concepts
    assert not (site / "executed").exists()


def fake_executed_notebook(path: pathlib.Path):
    """An executed notebook with a heading, a printed line and a figure."""
    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# A figure, already drawn\n\nText."),
        nbformat.v4.new_code_cell("print('ran')", execution_count=1, outputs=[
            nbformat.v4.new_output("stream", name="stdout", text="ran\n"),
            nbformat.v4.new_output("display_data", data={"image/png": PNG,
                                                         "text/plain": "<Figure>"}),
        ]),
    ]
    nbformat.write(nb, path)


@pytest.mark.slow
def test_mkdocs_renders_executed_notebooks_with_their_figures(tmp_path):
    executed = tmp_path / "executed"
    executed.mkdir()
    fake_executed_notebook(executed / "09_figure.ipynb")
    site = build_site(tmp_path / "site", executed)
    page = (site / "executed" / "09_figure" / "index.html").read_text()
    assert "data:image/png;base64," + PNG[:20] in page
    assert "ran" in page
    # Listed in the nav under Tutorials, with the notebook's own title.
    index = (site / "index.html").read_text()
    assert "executed/09_figure/" in index and "A figure, already drawn" in index
