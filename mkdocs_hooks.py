"""mkdocs hook: renders the executed tutorial notebooks when they exist.

``tests/test_notebooks.py`` writes an executed copy (with outputs) of every
``notebooks/*.ipynb`` to ``notebooks/executed/`` (git-ignored), and CI builds
the site after the tests. A fresh clone has no executed copies, and the
strict build must pass there too: so the pages and their nav entries are
added only for the copies that exist, under the nav section "Tutorials".
``$KC_EXECUTED_NOTEBOOKS`` names another folder (the docs test uses it).
A notebook ``<folder>/NAME.ipynb`` becomes the page ``<folder name>/NAME/``.
"""

from __future__ import annotations

import json
import os
import pathlib
from typing import List

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File

ENV_VAR = "KC_EXECUTED_NOTEBOOKS"
SECTION = "Tutorials"


def executed_folder(config) -> pathlib.Path:
    """The folder of executed copies: ``$KC_EXECUTED_NOTEBOOKS`` or
    ``notebooks/executed`` beside mkdocs.yml."""
    if os.environ.get(ENV_VAR):
        return pathlib.Path(os.environ[ENV_VAR])
    return pathlib.Path(config.config_file_path).parent / "notebooks" / "executed"


def executed_notebooks(config) -> List[pathlib.Path]:
    """The executed copies that exist, in file-name order."""
    folder = executed_folder(config)
    return sorted(folder.glob("*.ipynb")) if folder.is_dir() else []


def notebook_title(path: pathlib.Path) -> str:
    """The first Markdown heading of the notebook, else its file name."""
    cells = json.loads(path.read_text(encoding="utf-8")).get("cells", [])
    for cell in cells:
        if cell.get("cell_type") != "markdown":
            continue
        source = cell["source"]
        text = "".join(source) if isinstance(source, list) else source
        for line in text.splitlines():
            if line.startswith("# "):
                return line[2:].strip()
    return path.stem


def site_path(nb: pathlib.Path) -> str:
    """The notebook's path in the site's sources: ``<folder name>/<file name>``."""
    return f"{nb.parent.name}/{nb.name}"


def on_config(config):
    """Appends one nav entry per executed notebook to the Tutorials section."""
    notebooks = executed_notebooks(config)
    if not notebooks:
        return config
    entries = [{notebook_title(nb): site_path(nb)} for nb in notebooks]
    for item in config.nav:
        if isinstance(item, dict) and SECTION in item:
            item[SECTION] = list(item[SECTION]) + entries
            return config
    config.nav.append({SECTION: entries})
    return config


# Before mkdocs-jupyter's own on_files, which turns .ipynb files into pages.
@event_priority(100)
def on_files(files, config):
    """Adds the executed notebooks to the site's files, read where they are.

    They are real files under another source folder (the executed folder's
    parent), not generated ones: mkdocs-jupyter reads a page from the
    source path that mkdocs derives from ``src_dir``.
    """
    for nb in executed_notebooks(config):
        files.append(File(site_path(nb), src_dir=str(nb.parent.parent),
                          dest_dir=config.site_dir,
                          use_directory_urls=config.use_directory_urls))
    return files
