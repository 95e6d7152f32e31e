"""Finds and runs the Python blocks of README.md and docs/*.md marked runnable.

A block is marked by an HTML comment alone on the line before its fence,
invisible on GitHub and in the mkdocs site alike:

    <!-- runnable -->          runs offline in seconds
    <!-- runnable: data -->    needs the staged real data (../shared/data);
                               skipped where it is absent

Run as a script (``python doc_blocks.py RESULTS.json``), it executes every
marked block, each in a fresh namespace and a fresh working folder, and
writes one result per block. Tracebacks name the Markdown file and its line
numbers: the code is compiled under the file's name, shifted to its line.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import pathlib
import re
import sys
import tempfile
import time
import traceback
from typing import List

ROOT = pathlib.Path(__file__).resolve().parents[1]
MARKER = re.compile(r"^<!--\s*runnable(?::\s*(?P<needs>[\w ]+?))?\s*-->\s*$")
FENCE = re.compile(r"^(?P<indent>\s*)```(?P<lang>[\w-]*)")
NEEDS = ("data",)


@dataclasses.dataclass
class Block:
    """One marked code block."""

    path: str  # relative to the repository root
    line: int  # 1-based line of the block's first code line
    code: str
    needs: str  # "" or "data"

    @property
    def id(self) -> str:
        return f"{self.path}:{self.line}"


def doc_files(root: pathlib.Path = ROOT) -> List[pathlib.Path]:
    """README.md and every page of docs/."""
    return [root / "README.md"] + sorted((root / "docs").glob("*.md"))


def find_blocks(path: pathlib.Path, root: pathlib.Path = ROOT) -> List[Block]:
    """The marked blocks of one Markdown file.

    Raises:
        ValueError: a marker is not followed by a Python fence, or names an
            unknown need; the message names the file and line.
    """
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks = []
    for i, line in enumerate(lines):
        marker = MARKER.match(line.strip())
        if not marker:
            continue
        where = f"{path.relative_to(root)}:{i + 1}"
        needs = (marker.group("needs") or "").strip()
        if needs and needs not in NEEDS:
            raise ValueError(f"{where}: unknown need {needs!r} in the runnable marker; "
                             f"valid: {list(NEEDS)}")
        fence = FENCE.match(lines[i + 1]) if i + 1 < len(lines) else None
        if not fence or fence.group("lang") not in ("python", "py"):
            raise ValueError(f"{where}: a runnable marker must stand on the line "
                             "before a ```python fence")
        indent = len(fence.group("indent"))
        end = i + 2
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        if end == len(lines):
            raise ValueError(f"{where}: the marked block is never closed")
        code = "\n".join(l[indent:] for l in lines[i + 2:end])
        blocks.append(Block(str(path.relative_to(root)), i + 3, code, needs))
    return blocks


def all_blocks(root: pathlib.Path = ROOT) -> List[Block]:
    return [b for f in doc_files(root) for b in find_blocks(f, root)]


def run_block(block: Block, root: pathlib.Path = ROOT) -> dict:
    """Runs one block in a fresh namespace, in a fresh temporary folder."""
    source = "\n" * (block.line - 1) + block.code  # line numbers as in the file
    output = io.StringIO()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        cwd = os.getcwd()
        os.chdir(folder)
        try:
            code = compile(source, str(root / block.path), "exec")
            with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
                exec(code, {"__name__": "__main__"})
            status, message = "passed", ""
        except BaseException:  # noqa: BLE001 - every failure is reported, SystemExit too
            status, message = "failed", traceback.format_exc()
        finally:
            os.chdir(cwd)
    return {"status": status, "message": message, "output": output.getvalue()[-2000:],
            "seconds": round(time.perf_counter() - start, 1)}


def main(argv) -> int:
    results_path = pathlib.Path(argv[1])
    have_data = os.environ.get("KC_DOC_BLOCKS_DATA") == "1"
    results = {}
    for block in all_blocks():
        if block.needs == "data" and not have_data:
            results[block.id] = {"status": "skipped", "message": "needs the staged data"}
            continue
        results[block.id] = run_block(block)
        results_path.write_text(json.dumps(results, indent=1))  # partial results survive a crash
    results_path.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
