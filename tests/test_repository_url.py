"""One repository address everywhere, and install lines that install what exists.

The address lives in setup.cfg (``url``). Every reference to this project's
repository in README.md, mkdocs.yml, docs/ and the notebooks (Colab badges,
``git+`` install lines, links) must be that address, and every ``pip
install`` line in them must install something that exists: the package from
a clone (``-e .``) or from the repository, never ``keras-conductance`` from
the package index, where it is not published, and only extras that setup.cfg
defines.
"""

import configparser
import json
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
# owner/name after github.com/ or Colab's /github/ prefix.
REPO_REF = re.compile(r"(?:github\.com|colab\.research\.google\.com/github)/([\w.-]+)/([\w.-]+)")
PIP_INSTALL = re.compile(r"pip install ([^`\n]*)")
OUR_NAMES = {"keras_conductance", "keras-conductance"}


def setup_cfg() -> configparser.ConfigParser:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    return config


def repository_url() -> str:
    return setup_cfg()["metadata"]["url"]


def extras():
    return set(setup_cfg()["options.extras_require"])


def texts():
    """(name, text) of every file that may name the repository."""
    out = [("README.md", (ROOT / "README.md").read_text()),
           ("mkdocs.yml", (ROOT / "mkdocs.yml").read_text())]
    out += [(f"docs/{p.name}", p.read_text()) for p in sorted((ROOT / "docs").glob("*.md"))]
    for path in NOTEBOOKS:
        cells = json.loads(path.read_text())["cells"]
        out += [(f"notebooks/{path.name} cell {i}", "".join(c["source"]))
                for i, c in enumerate(cells)]
    return out


def our_references(text: str):
    """owner/name of every reference to a repository named like this project."""
    return [f"{owner}/{name.removesuffix('.git')}" for owner, name in REPO_REF.findall(text)
            if name.removesuffix(".git").lower() in OUR_NAMES]


def test_the_url_is_a_github_repository_and_project_urls_agree():
    url = repository_url()
    assert re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", url), url
    lines = setup_cfg()["metadata"]["project_urls"].strip().splitlines()
    assert lines
    for name, value in (line.split("=", 1) for line in lines):
        assert value.strip().startswith(url), f"project_urls {name.strip()}: {value.strip()}"


def test_every_reference_to_the_repository_is_the_one_in_setup_cfg():
    expected = repository_url().removeprefix("https://github.com/")
    seen = 0
    for name, text in texts():
        for ref in our_references(text):
            seen += 1
            assert ref == expected, f"{name} points at {ref}; setup.cfg says {expected}"
    assert seen >= 2 * len(NOTEBOOKS) + 1  # badge and install cell per notebook, mkdocs


def test_mkdocs_repo_url_is_the_url():
    assert f"repo_url: {repository_url()}\n" in (ROOT / "mkdocs.yml").read_text()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_badge_and_install_cell(path):
    cells = json.loads(path.read_text())["cells"]
    badge, install = "".join(cells[0]["source"]), "".join(cells[1]["source"])
    url = repository_url()
    colab = url.replace("https://github.com/", "https://colab.research.google.com/github/")
    assert f"{colab}/blob/main/notebooks/{path.name}" in badge
    # The install cell installs the package with the extras the notebooks need.
    match = re.search(r'%pip install -q "keras-conductance\[([\w,]+)\] @ git\+(\S+?)"', install)
    assert match, f"{path.name}: install cell is\n{install}"
    assert match.group(2) == url
    assert "notebooks" in match.group(1).split(",")
    assert set(match.group(1).split(",")) <= extras()


def install_lines():
    for name, text in texts():
        for line in PIP_INSTALL.findall(text):
            yield name, line


def test_every_pip_install_line_installs_what_exists():
    lines = list(install_lines())
    assert lines
    for name, line in lines:
        for extra_list in re.findall(r"\[([\w,-]+)\]", line):
            unknown = set(extra_list.split(",")) - extras()
            assert not unknown, f"{name}: `pip install {line}` names unknown extras {unknown}"
        # The package by name from the index: not published there.
        # (A name inside a URL, after "/", is the repository, not a requirement.)
        for word in re.findall(r"(?<![/\w.-])(keras[-_]conductance(?:-studies)?(?:\[[\w,-]+\])?)"
                               r"(['\"]?\s*@)?", line):
            assert word[1], (f"{name}: `pip install {line}` installs keras-conductance from "
                             "the package index, where it is not published; install from a "
                             "clone (pip install -e .) or from the repository (@ git+URL)")


STUDIES_URL = re.compile(r'"keras-conductance-studies @ git\+(\S+?)#subdirectory=studies"')


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebooks_using_the_studies_install_them(path):
    """The studies are their own package (``studies/``): a notebook that
    imports them installs it, from the repository's ``studies`` folder."""
    cells = json.loads(path.read_text())["cells"]
    code = "".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    found = STUDIES_URL.findall("".join(cells[1]["source"]))
    if "conductance_studies" in code.replace("".join(cells[1]["source"]), ""):
        assert found == [repository_url()], f"{path.name}: no studies install in its cell 1"
        assert (ROOT / "studies" / "pyproject.toml").is_file()
    else:
        assert not found, f"{path.name} installs the studies but does not use them"
