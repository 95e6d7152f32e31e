"""The docs site builds in strict mode and documents every public name."""

import pathlib
import re
import shutil
import subprocess
import sys

import pytest

import keras_conductance as kc

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_every_public_name_is_in_the_api_reference():
    api = (ROOT / "docs" / "api.md").read_text()
    documented = set(re.findall(r"^::: keras_conductance\.(\w+)", api, flags=re.M))
    missing = sorted(set(kc.__all__) - documented)
    assert not missing, f"add to docs/api.md: {missing}"
    extra = sorted(documented - set(kc.__all__))
    assert not extra, f"documented but not exported: {extra}"


@pytest.mark.slow
def test_mkdocs_strict_build(tmp_path):
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    page = (tmp_path / "site" / "api" / "index.html").read_text()
    for name in kc.__all__:
        assert name in page
