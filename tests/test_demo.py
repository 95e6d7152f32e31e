"""The README's main job runs from a fresh install and writes a real report."""

import json
import subprocess
import sys

import pytest

pytest.importorskip("sklearn", reason="the demo trains on scikit-learn's bundled digits")


@pytest.mark.slow
def test_demo_command_writes_report(tmp_path):
    out = tmp_path / "report"
    proc = subprocess.run(
        [sys.executable, "-m", "keras_conductance.cli", "demo", "--out", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "test accuracy" in proc.stdout and str(out.resolve()) in proc.stdout
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
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64") == 3 and "conv2_top_filters" in html
    assert (out / "conv2_heatmap.png").stat().st_size > 1000


def test_cli_reports_missing_dependency_cleanly(monkeypatch, capsys):
    from keras_conductance import cli, demo

    def missing(*args, **kwargs):
        raise ImportError("The demo trains on scikit-learn's bundled digits. Install it")

    monkeypatch.setattr(demo, "run_demo", missing)
    assert cli.main(["demo", "--out", "unused"]) == 2
    assert "keras-conductance: error: The demo trains" in capsys.readouterr().err
