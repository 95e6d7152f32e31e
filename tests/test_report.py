"""The HTML report: what it says, how it marks disagreements, class names,
and that a page fits a 1280 px window (measured in headless Chromium)."""

import json
import re

import numpy as np
import pytest

import keras_conductance as kc
from chromium import scroll_width
from keras_conductance import class_names, report, report_figures
from models import small_convnet

pytest.importorskip("matplotlib", reason="the report's figures need matplotlib")

NAMES = ["cat_photo.png", "dog_photo.png", "a_very_long_file_name_of_a_photo_taken_outdoors.jpg"]


@pytest.fixture(scope="module")
def measured():
    # tanh and few steps: a visible completeness error for the relative delta.
    model = small_convnet(input_shape=(8, 8, 3), classes=3, activation="tanh")
    x = np.random.default_rng(0).uniform(0, 1, (3, 8, 8, 3)).astype("float32")
    return kc.measures(model, x, ["conv1", "conv2"], n_steps=4, verbose=0), x


def _ablation(cond):
    """Drops equal to conductance, except one with the opposite sign."""
    top = cond.top_filters("conv2", 3)
    drops = np.take_along_axis(cond.per_filter("conv2"), top, 1).copy()
    baseline_drops = drops.copy()
    drops[1, 0] = -drops[1, 0]  # example 1's top filter: a sign disagreement
    return {"layer": "conv2", "filters": top, "drops": drops, "baseline_drops": baseline_drops}


def test_page_says_what_it_shows_and_marks_sign_disagreements(measured, tmp_path):
    measures, x = measured
    cond = measures.conductance
    assert cond.per_filter("conv2")[1, cond.top_filters("conv2", 1)[1, 0]] > 1e-3 * abs(
        cond.output_diff[1])  # large enough to count as a disagreement
    labels = ["tabby", "terrier", "tree"]
    report.write_report(tmp_path, measures, images=x, names=NAMES, class_names=labels,
                        score_unit="logit", ablation=_ablation(cond), title="T")
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    info = json.loads((tmp_path / "report.json").read_text())
    # What conductance and delta are, near the top, before any table.
    intro = page[:page.index("<table")]
    assert "is how much of the change of the explained score" in intro
    assert "delta, the completeness error" in intro and "% of |F(x) \u2212 F(x\u2032)|" in intro
    # Delta relative to the change, in %.
    ex = info["examples"][0]
    rel = abs(ex["layers"]["conv1"]["delta"]) / abs(ex["score_at_input"] - ex["score_at_baseline"])
    assert ex["layers"]["conv1"]["relative_delta"] == pytest.approx(rel)
    assert rel > 1e-3 and f"{100 * rel:.2g} %" in page  # e.g. "0.69 %"
    # Class names beside indices; names of examples; units in headers.
    target = int(cond.target[0])
    assert ex["class_name"] == f"{labels[target]} ({target})" and ex["class_name"] in page
    assert "F(x) (logit)" in page and "Conductance (logit)" in page
    # Section titles in words, never file names.
    titles = re.findall(r"<h2>(.*?)</h2>", page)
    assert "Per-filter conductance at conv1, every example" in titles
    assert "Each image and the filters of conv2 that conduct most" in titles
    assert not [t for t in titles if re.search(r"\w+_(heatmap|top_filters|maps)", t)]
    # The ablation table: headers, exactly the one disagreement marked.
    assert "<th>Filter</th>" in page and "set to 0 (logit)" in page
    assert page.count("class='num disagree'") == 1
    flags = [[c["ablation_drop_disagrees"] for c in e["ablation_check"]] for e in info["examples"]]
    assert flags == [[False] * 3, [True, False, False], [False] * 3]
    assert "Sign disagreements with conductance: 1 of 9 checks when set to 0, 0 of 9" in page
    # The explanation names the main measured cause.
    assert "ablation sets the filter to <b>zero</b>" in page
    assert "conductance integrates from the filter's activation <b>at the baseline</b>" in page


def test_noise_around_zero_is_no_disagreement():
    # 1e-9 against -1e-9 on a change of 2: both count as zero.
    assert not report._disagrees(1e-9, -1e-9, 2.0)
    assert report._disagrees(0.5, -0.01, 2.0)
    assert not report._disagrees(0.5, -0.001, 2.0)  # under 0.1 % of |F(x) - F(x')|


def test_figures_name_rows_and_label_axes_with_units(measured):
    measures, x = measured
    per_filter = measures.conductance.per_filter("conv2")
    fig = report_figures.heatmap(per_filter, "conv2", NAMES, "logit")
    ax = fig.axes[0]
    rows = [t.get_text() for t in ax.get_yticklabels()]
    assert rows[:2] == NAMES[:2] and rows[2] == NAMES[2][:31] + "\u2026"
    assert fig.axes[1].get_ylabel().startswith("conductance (logit)")
    assert fig.get_size_inches()[0] * 110 <= 1160  # fits the page at 110 dpi
    fig = report_figures.top_filters(per_filter, "conv2", x, ["a", "b", "c"], "probability")
    bars = [a for a in fig.axes if a.get_xlabel()]
    assert [a.get_xlabel() for a in bars] == ["conductance (probability)"] * 3
    colours = {tuple(np.round(p.get_facecolor()[:3], 3)) for a in bars for p in a.patches}
    blue = tuple(np.round([0x21 / 255, 0x66 / 255, 0xAC / 255], 3))
    assert blue in colours  # positive bars are blue, as in every other figure


def test_labels_files(tmp_path, shared_data):
    (tmp_path / "names.txt").write_text("cat\ndog\n\n")
    assert class_names.read_labels_file(tmp_path / "names.txt") == ["cat", "dog"]
    (tmp_path / "names.json").write_text('["cat", "dog", "eel"]')
    assert class_names.read_labels_file(tmp_path / "names.json") == ["cat", "dog", "eel"]
    imagenet = class_names.read_labels_file(shared_data / "imagenet" / "imagenet_class_index.json")
    assert len(imagenet) == 1000 and imagenet[0] == "tench" and imagenet[999] == "toilet_tissue"
    (tmp_path / "gap.json").write_text('{"0": "cat", "2": "eel"}')
    with pytest.raises(ValueError, match=r"--labels .*gap.json is JSON but not a list"):
        class_names.read_labels_file(tmp_path / "gap.json")
    with pytest.raises(FileNotFoundError, match="--labels: no such file"):
        class_names.read_labels_file(tmp_path / "missing.txt")
    with pytest.raises(ValueError, match="--labels has 2 class names; the explained output "
                                         "has 3 classes"):
        class_names.class_names_for(3, ["cat", "dog"])
    assert class_names.label_of(1, ["cat", "dog"]) == "dog (1)"
    assert class_names.label_of(3, ["digit 0", "digit 1", "digit 2", "digit 3"]) == "digit 3"
    assert class_names.label_of(7, ["cat"]) == "7"


def test_imagenet_names_for_1000_classes_and_an_offline_note(monkeypatch, shared_data):
    import keras

    asked = []

    def cached(name, origin, **kwargs):
        asked.append((name, origin, kwargs.get("cache_subdir")))
        return str(shared_data / "imagenet" / "imagenet_class_index.json")

    monkeypatch.setattr(keras.utils, "get_file", cached)
    names, note = class_names.class_names_for(1000)
    assert names[1] == "goldfish" and "ImageNet's" in note
    assert asked == [("imagenet_class_index.json", class_names.IMAGENET_INDEX_URL, "models")]
    assert class_names.class_names_for(10) == (None, "")  # no guess for other models

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure: Name or service not known")

    monkeypatch.setattr(keras.utils, "get_file", offline)
    names, note = class_names.class_names_for(1000)
    assert names is None and "could not be loaded (URL fetch failure" in note
    assert "shown by index" in note and "--labels FILE" in note


def test_the_probe_measures_overflow(tmp_path):
    # The width check can fail: a page 2000 px wide is measured as such.
    (tmp_path / "wide.html").write_text("<html><body><div style='width:2000px'>x</div></body></html>")
    assert scroll_width(tmp_path / "wide.html") >= 2000


def test_report_fits_1280_px(measured, tmp_path):
    measures, x = measured
    cond = measures.conductance
    report.write_report(tmp_path, measures, images=x, names=NAMES, score_unit="logit",
                        ablation=_ablation(cond), notes=["/a/very/long/path/" * 12])
    assert scroll_width(tmp_path / "report.html") <= 1280
