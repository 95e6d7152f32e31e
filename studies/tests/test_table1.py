"""Table 1 on ImageNet label sets: per-label splits, the selection record,
the class-folder loader, and the study end to end on a slice of val50."""

import numpy as np
import pytest

from conductance_studies.datasets import load_imagenet_classes
from conductance_studies import feature_selection, per_label_splits
from conductance_studies.table1 import Table1Settings, aggregate, run_table1
from conductance_studies.tables import table1_markdown


def test_per_label_splits_take_n_train_of_every_label():
    labels = np.repeat([0, 1, 2], [5, 7, 6])
    splits = per_label_splits(labels, 3, splits=4, seed=1)
    assert len(splits) == 4
    for train, test in splits:
        assert np.bincount(labels[train]).tolist() == [3, 3, 3]
        assert np.bincount(labels[test]).tolist() == [2, 4, 3]
        assert np.intersect1d(train, test).size == 0 and train.size + test.size == 18
    assert len({tuple(t) for t, _ in splits}) > 1  # the splits differ
    again = per_label_splits(labels, 3, splits=4, seed=1)
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(splits, again))
    with pytest.raises(ValueError, match=r"n_train`=5 leaves no held-out example.*\{0: 5\}"):
        per_label_splits(labels, 5)


def test_feature_selection_keeps_each_split_and_its_filters(rng):
    labels = np.repeat([0, 1], 12)
    importance = rng.normal(scale=0.1, size=(24, 5))
    importance[labels == 1, 3] += 2.0
    features = rng.normal(size=(24, 5))
    features[:, 3] += 3.0 * labels
    splits = per_label_splits(labels, 8, splits=3, seed=0)
    result = feature_selection({"m": importance}, features, labels, splits, ks=(1, 2),
                               random_draws=2)
    assert result.selected["m"][1] == [[3], [3], [3]]
    for k in (1, 2):
        assert len(result.per_split["m"][k]) == 3
        assert result.accuracy["m"][k] == pytest.approx(np.mean(result.per_split["m"][k]))
        assert result.std()["m"][k] == pytest.approx(np.std(result.per_split["m"][k]))
    assert min(result.per_split["m"][1]) >= 0.85  # filter 3 separates the labels


def test_missing_photo_folders_fail_before_any_work(tmp_path):
    from conductance_studies.table1 import check_label_sets

    (tmp_path / "imagenet" / "val50" / "n02086240").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"missing: \['n02087394'.*\(4 classes\)"):
        check_label_sets(Table1Settings(sets=("dogs 1",)), tmp_path)
    with pytest.raises(ValueError, match=r"No such label set: \['cats'\]. Valid sets: \['dogs 1'"):
        check_label_sets(Table1Settings(sets=("cats",)), tmp_path)


def test_aggregate_averages_sets_per_split_before_the_spread():
    sets = {"a": {"per_split": {"m": {5: [0.5, 0.7]}}},
            "b": {"per_split": {"m": {5: [0.9, 0.5]}}}}
    # Per split: (0.5 + 0.9) / 2 = 0.7 and (0.7 + 0.5) / 2 = 0.6.
    got = aggregate(sets, (5,))["m"][5]
    assert got["mean"] == pytest.approx(0.65) and got["sd"] == pytest.approx(0.05)


@pytest.mark.data
def test_load_imagenet_classes(shared_data):
    photos = load_imagenet_classes(["n02086240", "n01440764"], size=32, per_class=3,
                                   data_dir=shared_data)
    assert photos.images.shape == (6, 32, 32, 3)
    assert photos.labels.tolist() == [155] * 3 + [0] * 3
    assert photos.names[0] == "Shih-Tzu" and photos.files[3].parent.name == "n01440764"
    with pytest.raises(ValueError, match="not ImageNet classes: \\['n0000'\\]"):
        load_imagenet_classes(["n0000"], data_dir=shared_data)
    with pytest.raises(FileNotFoundError, match="No photo folder for \\['n01443537'\\].*n01440764"):
        load_imagenet_classes(["n01443537"], data_dir=shared_data)  # goldfish: not staged


@pytest.mark.slow
@pytest.mark.data
def test_table1_on_a_slice_of_val50(shared_data, tmp_path):
    settings = Table1Settings(mobilenet="0.25_128", layers=("conv_pw_11_relu", "conv_pw_13_relu"),
                              n_steps=4, per_class=8, n_train=5, splits=3, random_draws=2,
                              ks=(2, 5), sets=("dogs 1", "mixed 1"), exemplars=3)
    said = []
    result = run_table1(tmp_path, data_dir=shared_data, settings=settings, say=said.append)
    assert result["photos"] == 80
    for layer in settings.layers:
        sets = result["sets"][layer]
        assert set(sets) == {"dogs 1", "mixed 1"}
        for sel in sets.values():
            assert sel["splits"] == 3 and sel["chance"] == pytest.approx(0.2)
            for method, by_k in sel["per_split"].items():
                assert all(len(v) == 3 and all(0 <= a <= 1 for a in v) for v in by_k.values())
            assert all(len(cols) == 5 for cols in sel["selected"]["conductance"][5])
        mean = np.mean([np.mean(sets[s]["per_split"]["conductance"][5]) for s in sets])
        assert result["aggregate"][layer]["conductance"][5]["mean"] == pytest.approx(mean)
    # The last layer's tail (pooling, 1x1 conv logits) is linear: exact completeness.
    assert result["completeness"]["conv_pw_13_relu"]["max"] < 1e-4
    # conv_pw_11's is not (4 points: a large but finite error, reported).
    assert 0.01 < result["completeness"]["conv_pw_11_relu"]["median"] < 1.0
    for e in result["exemplars"]:
        assert len(e["top"]) == 3 and 0 <= e["top20_same_label"] <= e["top20_same_set"] <= 20
        values = [t["activation"] for t in e["top"]]
        assert values == sorted(values, reverse=True) and e["mean_conductance"] > 0
    assert {p.name for p in (tmp_path / "figures").iterdir()} == {
        "table1_conv_pw_11_relu.png", "table1_conv_pw_13_relu.png", "table1_exemplars.png"}
    assert not any("reusing" in s for s in said)
    # A second run reuses the cached measures and gives the same table.
    said.clear()
    again = run_table1(tmp_path, data_dir=shared_data, settings=settings, say=said.append)
    assert any("reusing" in s for s in said)
    assert again["aggregate"] == result["aggregate"]
    text = "\n".join(table1_markdown(result))
    assert "| paper, conductance (Inception) | – | 68.8 |" in text
    assert "`conv_pw_13_relu`, aggregate over the 2 label sets" in text
