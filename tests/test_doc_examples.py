"""Every Python block of README.md and docs/*.md marked runnable runs.

Blocks are marked with ``<!-- runnable -->`` (or ``<!-- runnable: data -->``
for blocks that need the staged data) on the line before the fence; see
tests/doc_blocks.py. Each block runs in a fresh namespace and folder, so a
block must be whole: its imports, its model, its data. All blocks run in
one child process (one TensorFlow import), whose Keras cache is seeded from
the staged data: ``keras.applications.MobileNet(alpha=0.25, ...)`` weights
and the ImageNet sample photos are what Keras would download, so the README's
quick start runs offline exactly as written.
"""

import json
import os
import pathlib
import subprocess
import sys

import pytest

import doc_blocks

BLOCKS = doc_blocks.all_blocks()


def seed_keras_cache(keras_home: pathlib.Path, data: pathlib.Path):
    """Puts the staged files where ``keras.utils.get_file`` looks first."""
    (keras_home / "models").mkdir(parents=True)
    (keras_home / "datasets").mkdir()
    weights = data / "imagenet" / "mobilenet_2_5_128_tf.h5"
    (keras_home / "models" / weights.name).symlink_to(weights)
    for photo in (data / "imagenet" / "samples").iterdir():
        (keras_home / "datasets" / photo.name).symlink_to(photo)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    from conftest import SHARED_DATA

    tmp = tmp_path_factory.mktemp("doc_blocks")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", KERAS_HOME=str(tmp / "keras_home"),
               KERAS_CONDUCTANCE_DATA=str(SHARED_DATA))
    if SHARED_DATA.is_dir():
        seed_keras_cache(tmp / "keras_home", SHARED_DATA)
        env["KC_DOC_BLOCKS_DATA"] = "1"
    out = tmp / "results.json"
    proc = subprocess.run([sys.executable, doc_blocks.__file__, str(out)], env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


def test_there_are_runnable_blocks_in_readme_and_docs():
    files = {b.path for b in BLOCKS}
    assert "README.md" in files
    assert len({f for f in files if f.startswith("docs")}) >= 3


@pytest.mark.slow
@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: b.id)
def test_runnable_block_runs(block, results):
    result = results.get(block.id)
    assert result is not None, f"{block.id}: no result (did the runner crash before it?)"
    if result["status"] == "skipped":
        pytest.skip(f"{block.id}: {result['message']} (../shared/data absent)")
    assert result["status"] == "passed", (
        f"the runnable block at {block.id} failed:\n{result['message']}\n"
        f"its output:\n{result['output']}")


def test_markers_are_checked(tmp_path):
    # A marker that is not followed by a python fence is an error naming the
    # file and line, not a silently skipped block.
    (tmp_path / "docs").mkdir()
    (tmp_path / "README.md").write_text("<!-- runnable -->\n```python\nx = 1\n```\n")
    page = tmp_path / "docs" / "page.md"
    page.write_text("text\n<!-- runnable -->\n```bash\nls\n```\n")
    with pytest.raises(ValueError, match=r"docs/page.md:2: .*python fence"):
        doc_blocks.all_blocks(tmp_path)
    page.write_text("<!-- runnable: data -->\n```python\ny = 2\n```\n")
    blocks = doc_blocks.all_blocks(tmp_path)
    assert [(b.id, b.code, b.needs) for b in blocks] == [
        ("README.md:3", "x = 1", ""), ("docs/page.md:3", "y = 2", "data")]


def test_a_failing_block_names_its_file_and_line(tmp_path):
    block = doc_blocks.Block("docs/page.md", 10, "x = 1\nraise ValueError('wrong')", "")
    result = doc_blocks.run_block(block, tmp_path)
    assert result["status"] == "failed"
    assert f'File "{tmp_path / "docs" / "page.md"}", line 11' in result["message"]
    assert "ValueError: wrong" in result["message"]
