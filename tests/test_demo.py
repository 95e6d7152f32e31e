"""The README's main job runs from a fresh install and writes a real report."""

import json
import os
import re
import subprocess
import sys
import time

import pytest

from chromium import scroll_width

pytest.importorskip("sklearn", reason="the demo trains on scikit-learn's bundled digits")


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """``keras-conductance demo`` as a user runs it: (process, wall s, folder)."""
    out = tmp_path_factory.mktemp("demo") / "report"
    # Without the test suite's own TF_CPP_MIN_LOG_LEVEL: the command sets it.
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    began = time.time()
    proc = subprocess.run(
        [sys.executable, "-m", "keras_conductance_cli", "demo", "--out", str(out)],
        capture_output=True, text=True, timeout=300, env=env,
    )
    return proc, time.time() - began, out


@pytest.mark.slow
def test_demo_command_writes_report(demo_run):
    proc, wall, out = demo_run
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "test accuracy" in proc.stdout and str(out.resolve()) in proc.stdout
    # Integrated to 1 %: the estimate and completeness within it, steps reported.
    estimate, complete = re.search(r"worst per-filter error estimate ([\d.]+)%, worst "
                                   r"completeness error ([\d.]+)%", proc.stdout).groups()
    assert float(estimate) <= 1.0 and float(complete) <= 1.0
    assert re.search(r"; \d+ steps for", proc.stdout)
    # "Done in N s" counts the imports too: most of the wall time (the rest is
    # the interpreter's start and TensorFlow's teardown after the message).
    done = float(re.search(r"Done in (\d+) s", proc.stdout).group(1))
    assert 0.6 * wall <= done <= wall + 1, (done, wall)
    assert "cuInit" not in proc.stderr  # TensorFlow's C++ start-up noise is off
    accuracy = float(proc.stdout.split("test accuracy ")[1].split()[0])
    assert accuracy > 0.9
    info = json.loads((out / "report.json").read_text())
    assert len(info["examples"]) == 10 and info["layers"] == ["conv1", "conv2"]
    labels = [ex["label"] for ex in info["examples"]]
    assert labels == list(range(10))
    for ex in info["examples"]:
        change = ex["score_at_input"] - ex["score_at_baseline"]
        for layer in ("conv1", "conv2"):
            entry = ex["layers"][layer]
            # Completeness: the filters' conductances add up to F(x) - F(x').
            assert abs(entry["sum"] - change) <= 0.01 * abs(change) + 1e-6
            assert abs(entry["delta"]) <= 0.01 * abs(change) + 1e-6
            assert entry["top_conductance"] == sorted(entry["top_conductance"], reverse=True)
    names = [ex["name"] for ex in info["examples"]]
    assert len(set(names)) == 10 and all(re.fullmatch(r"test digit #\d+", n) for n in names)
    assert [ex["class_name"] for ex in info["examples"]] == [f"digit {d}" for d in range(10)]
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64") == 3
    assert "<h2>Each image and the filters of conv2 that conduct most</h2>" in html
    assert "conv2_top_filters" not in html  # titles in words, not file names
    assert (out / "conv2_heatmap.png").stat().st_size > 1000


@pytest.mark.slow
def test_demo_report_fits_1280_px(demo_run):
    proc, _, out = demo_run
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert scroll_width(out / "report.html") <= 1280  # no sideways scrolling


def test_cli_reports_missing_dependency_cleanly(monkeypatch, capsys):
    from keras_conductance import cli, demo

    def missing(*args, **kwargs):
        raise ImportError("The demo trains on scikit-learn's bundled digits. Install it")

    monkeypatch.setattr(demo, "run_demo", missing)
    assert cli.main(["demo", "--out", "unused"]) == 2
    assert "keras-conductance: error: The demo trains" in capsys.readouterr().err
