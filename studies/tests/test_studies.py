"""The paper's studies on tiny models with known answers, the data loaders,
and the whole studies command on the staged data at quick settings."""

import sys
import types

import keras
import numpy as np
import pytest

import keras_conductance as kc
from conductance_studies.datasets import (
    Vocabulary,
    load_imagenet_samples,
    load_sst,
    load_sst_phrases,
    tokenize,
)
from conductance_studies import (ablation_agreement, division_of_labour,
                                 feature_selection, filters_to_flip, negation_study,
                                 predicted_sign, select_filters,
                                 stratified_splits)
from conductance_studies.common import pearson_rows
from conductance_studies.sentiment_cnn import build_sentiment_cnn
from models import set_dense, small_convnet, text_cnn


def linear_tail_model(seed=0):
    """x (4,) -> Dense(8, relu) "h" -> Dense(3) logits: the tail is linear."""
    rng = np.random.default_rng(seed)
    inp = keras.Input((4,))
    h = keras.layers.Dense(8, activation="relu", name="h")(inp)
    out = keras.layers.Dense(3, name="out")(h)
    model = keras.Model(inp, out)
    set_dense(model, "h", rng.normal(size=(4, 8)), rng.normal(1.0, 0.3, size=8))
    set_dense(model, "out", rng.normal(size=(8, 3)), [0.0, 0.1, -0.1])
    return model


def test_pearson_rows_matches_numpy_and_flags_constant_rows(rng):
    a, b = rng.normal(size=(4, 7)), rng.normal(size=(4, 7))
    b[3] = 1.0
    r = pearson_rows(a, b)
    for i in range(3):
        assert r[i] == pytest.approx(np.corrcoef(a[i], b[i])[0, 1], rel=1e-12)
    assert np.isnan(r[3])


def test_agreement_is_exact_where_the_tail_is_linear(rng):
    # With a linear tail, removing a unit's change y(x) - y(x') (baseline
    # ablation) is exactly its conductance, and removing y(x) (zero
    # ablation) is exactly its gradient x activation: both correlations 1.
    model = linear_tail_model()
    x = rng.normal(scale=0.5, size=(6, 4)).astype("float32")
    xb = rng.normal(scale=0.3, size=(1, 4)).astype("float32")
    ms = kc.measures(model, x, "h", baselines=xb, n_steps=64, tolerance=1e-4)
    for k in (None, 5):
        result = ablation_agreement(model, x, "h", ms, k=k, baselines=xb)
        np.testing.assert_allclose(result.correlations["baseline"]["conductance"], 1.0, atol=1e-4)
        np.testing.assert_allclose(result.correlations["zero"]["gradient_x_activation"], 1.0,
                                   atol=1e-5)
        np.testing.assert_allclose(result.ablation["baseline"], result.scores["conductance"],
                                   rtol=1e-3, atol=1e-4)
        assert result.filters.shape == (6, 8 if k is None else 5)
    summary = result.summary()
    assert summary["baseline"]["conductance"]["mean"] == pytest.approx(1.0, abs=1e-4)
    assert summary["zero"]["activation"]["n"] == 6


def test_agreement_orients_one_logit_models(rng):
    inp = keras.Input((3,))
    h = keras.layers.Dense(5, activation="relu", name="h")(inp)
    model = keras.Model(inp, keras.layers.Dense(1, name="logit")(h))
    x = rng.normal(size=(8, 3)).astype("float32")
    ms = kc.measures(model, x, "h", n_steps=64)
    sign = predicted_sign(ms)
    np.testing.assert_array_equal(sign, np.where(np.asarray(model(x))[:, 0] > 0, 1, -1))
    result = ablation_agreement(model, x, "h", ms, k=None, sign=sign)
    # Oriented to the predicted label, conductance sums to |F(x) - F(x')|
    # whenever the score moves away from the baseline in its own direction,
    # and the top filter by conductance is the first in ``filters``.
    oriented = ms.conductance.per_filter("h") * sign[:, None]
    np.testing.assert_array_equal(result.filters[:, 0], oriented.argmax(axis=1))
    from keras_conductance.ablation import ablation_scores

    raw = ablation_scores(model, x, "h", target=0, filters=result.filters)
    np.testing.assert_allclose(result.ablation["zero"], raw * sign[:, None], rtol=1e-6)


def flip_model():
    inp = keras.Input((3,))
    h = keras.layers.Dense(4, activation="relu", name="relu")(inp)
    model = keras.Model(inp, keras.layers.Dense(2, name="out")(h))
    set_dense(model, "relu", np.ones((3, 4)), [-10, 1, 1, 1])
    set_dense(model, "out", np.stack([np.ones(4), np.zeros(4)], 1), [0.0, 150.0])
    return model


def test_filters_to_flip_hand_computed():
    # Class 0 scores sum(relu(h)) = 90 + 101 + 101 + 101 at x = (0, 100, 0),
    # class 1 the constant 150. Conductance order is 1, 2, 3 (100 each,
    # ties kept in index order), then 0 (90): 393 -> 292 -> 191 -> 90 flips
    # at the third filter. Ablating the top-2 by internal influence (units
    # 1-3 have influence 1, unit 0 0.9) leaves 191 > 150: no flip.
    model = flip_model()
    x = np.array([[0.0, 100.0, 0.0]] * 2, np.float32)
    ms = kc.measures(model, x, "relu", target=0, n_steps=45)
    result = filters_to_flip(model, x, "relu", ms, max_filters=4, k_influence=2,
                             values=("zero",))
    summary = result.summary()["zero"]
    random = summary.pop("random_k_flipped")
    assert summary == {"examples": 2, "flipped": 2, "mean": 3.0, "median": 3.0, "max": 3,
                       "more_than_10": 0, "limit": 4, "influence_top_k_flipped": 0}
    # Any 2 of the 4 units leave at least 90 + 101 = 191 > 150: no flip.
    assert random == 0


def test_select_filters_and_feature_selection(rng):
    labels = np.repeat([0, 1, 2], 20)
    importance = rng.normal(scale=0.1, size=(60, 6))
    importance[labels == 0, 4] += 3.0  # filter 4 matters for label 0
    importance[labels == 2, 1] += 2.0  # filter 1 for label 2
    np.testing.assert_array_equal(select_filters(importance, labels, 2), [4, 1])
    # Features: only filters 1 and 4 separate the labels.
    features = rng.normal(size=(60, 6))
    features[:, 4] += 4.0 * (labels == 0)
    features[:, 1] += 4.0 * (labels == 2) - 4.0 * (labels == 1)
    splits = stratified_splits(labels, folds=4, seed=0)
    assert all(np.bincount(labels[test]).tolist() == [5, 5, 5] for _, test in splits)
    result = feature_selection({"good": importance, "bad": -importance}, features, labels,
                               splits, ks=(2,), random_draws=5)
    assert result.accuracy["good"][2] >= 0.95
    assert result.accuracy["bad"][2] <= 0.6
    assert result.chance == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="at least 2 labels"):
        feature_selection({"good": importance}, features, labels,
                          [(np.arange(20), np.arange(20, 60))], ks=(2,))


def test_division_of_labour_hand_computed(tmp_path):
    c = np.array([[0.5, -0.2, 0.005, 0.3],
                  [0.1, -0.3, -0.002, -0.4],
                  [0.2, 0.004, 0.001, 0.6]])
    result = division_of_labour(c, threshold=0.01)
    np.testing.assert_array_equal(result.signs, [[1, -1, 0, 1], [1, -1, 0, -1], [1, 0, 0, 1]])
    s = result.summary(dominance=0.6)
    # Filters 0, 1 single-signed; 2 silent; 3 has 2 of 3 positive.
    assert s["single_signed"] == 0.5 and s["silent"] == 0.25 and s["dominated"] == 0.75
    result.plot(tmp_path / "labour.png")
    assert (tmp_path / "labour.png").stat().st_size > 1000


def negation_case():
    """A fixed-weight text CNN (two logits), its words, an encoder and a
    random corpus of 30 sentences."""
    model = text_cnn(vocab=50, length=12, maps=8)
    words = [f"w{i}" for i in range(50)]
    index = {w: i for i, w in enumerate(words)}
    encode = lambda sents: np.array([[index[t] for t in s] + [0] * (12 - len(s)) for s in sents],
                                    np.int32)
    rng = np.random.default_rng(1)
    corpus = [[words[i] for i in rng.integers(1, 50, size=rng.integers(6, 12))] for _ in range(30)]
    return model, words, encode, corpus


def test_negation_study_on_a_text_cnn(tmp_path):
    model, words, encode, corpus = negation_case()
    raw = kc.conductance(model, encode(corpus), "concat", start_layer="embedding", target=1,
                         n_steps=16).per_filter("concat")
    phrase, pattern = ["w3", "w7", "w9", "w11"], ["w9", "w11"]
    window_of = lambda f: (f"conv{(3, 4, 5, 6)[f // 8]}", (3, 4, 5, 6)[f // 8], f % 8)
    result = negation_study(
        keras.Model(model.inputs, model.outputs[0][:, 1:]), encode, phrase, pattern, corpus,
        raw, layer="concat", start_layer="embedding", window_of=window_of, direction=1,
        min_share=0.3, min_negator_share=0.0, min_conductance=0.0, n_examples=4, n_steps=16)
    assert result.direction == 1 and result.filters
    for f in result.filters:
        assert f.pattern_share >= 0.3 and f.conductance > 0
        assert f.tokens.shape == (4,)
    scores = [e.conductance for e in result.examples]
    assert scores == sorted(scores, reverse=True) and len(scores) == 4
    for e in result.examples:
        width = window_of(e.filter)[1]
        assert 0 < e.window[1] - e.window[0] <= width
        assert e.conductance == pytest.approx(raw[[" ".join(c) for c in corpus].index(
            " ".join(e.tokens)), e.filter], rel=1e-5)
    assert "<b><u>" in result.html() and "[" in result.terminal(color=False)
    result.plot(tmp_path / "negation.png")


def test_vocabulary_and_tokenize():
    vocab = Vocabulary.build([["a", "b", "a"], ["c", "a"]])
    assert vocab.words == ["<pad>", "<unk>", "a", "b", "c"]
    ids = vocab.encode([["a", "zzz", "c"]], length=5)
    np.testing.assert_array_equal(ids, [[2, 1, 4, 0, 0]])
    assert vocab.decode(ids[0]) == ["a", "<unk>", "c"]
    assert Vocabulary.from_json(vocab.to_json()).words == vocab.words
    assert tokenize("It isn't bad, really!") == ["it", "is", "n't", "bad", ",", "really", "!"]


def test_sentiment_cnn_keeps_the_padding_embedding_at_zero():
    model = build_sentiment_cnn(30, length=10, maps=4)
    assert model.get_layer("pooled").output.shape == (None, 16)
    model.compile("adam", keras.losses.BinaryCrossentropy(from_logits=True))
    x = np.random.default_rng(0).integers(0, 30, size=(16, 10)).astype("int32")
    model.fit(x, np.ones(16), epochs=1, verbose=0)
    np.testing.assert_array_equal(model.get_layer("embedding").get_weights()[0][0], 0.0)


def test_tfds_source_tokenizes_glue_sst2(monkeypatch):
    calls = []

    def load(name, split):
        calls.append((name, split))
        return [{"sentence": b"It's not bad .", "label": 1}, {"sentence": "dull", "label": 0}]

    fake = types.SimpleNamespace(load=load, as_numpy=lambda ds: ds)
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", fake)
    data = load_sst("dev", source="tfds")
    assert calls == [("glue/sst2", "validation")]
    assert data.tokens == [["it", "'s", "not", "bad", "."], ["dull"]]
    np.testing.assert_array_equal(data.labels, [1, 0])
    with pytest.raises(ValueError, match=r"Unknown SST split: split='test'. Valid splits: \['train', 'dev'\]"):
        load_sst("test", source="tfds")


@pytest.mark.data
def test_staged_loaders(shared_data):
    train, dev, test = (load_sst(s, data_dir=shared_data) for s in ("train", "dev", "test"))
    assert (len(train), len(dev), len(test)) == (6920, 872, 1821)
    assert (train.labels.sum(), dev.labels.sum(), test.labels.sum()) == (3610, 444, 909)
    photos = load_imagenet_samples(size=64, data_dir=shared_data)
    assert photos.images.shape == (100, 64, 64, 3) and photos.pixels.dtype == np.uint8
    np.testing.assert_array_equal(photos.labels, np.arange(0, 1000, 10))
    assert photos.names[0] == "tench" and -1.0 <= photos.images.min() < photos.images.max() <= 1.0


@pytest.mark.data
def test_sst_phrases_from_the_trees(shared_data):
    phrases = load_sst_phrases("train", data_dir=shared_data)
    # Unique non-neutral nodes of the 8,544 training trees; every SST-2
    # training sentence is among them (a root), lower-cased like stsa.
    assert len(phrases) == 77195 and phrases.labels.sum() == 42407
    text = {" ".join(t): int(l) for t, l in zip(phrases.tokens, phrases.labels)}
    sentences = load_sst("train", data_dir=shared_data)
    assert all(text[" ".join(t)] == l for t, l in zip(sentences.tokens, sentences.labels))
    assert text["not great"] == 0 and text["great"] == 1


class _KeywordModel:
    """Scores +1 per "good", -1 per "bad" and ignores negation (ids 1, 2)."""

    def predict(self, ids, batch_size=None, verbose=0):
        return ((ids == 1).sum(1) - (ids == 2).sum(1))[:, None].astype("float32")


def test_negated_phrases_hand_computed():
    from conductance_studies.datasets import Sentences
    from conductance_studies.negated_phrases import negated_phrases

    vocab = {"good": 1, "bad": 2}
    encode = lambda toks: np.array([[vocab.get(t, 3) for t in s] + [0] * (8 - len(s))
                                    for s in toks])
    phrases = Sentences([["not", "good"], ["not", "bad"], ["good"], ["bad"], ["is", "n't", "good"],
                         ["it", "is", "not", "a", "bad", "film", "at", "all"]],
                        np.array([0, 1, 1, 0, 0, 1]))
    seen = {"so bad", "it was bad"}  # "so bad" is left out: a training phrase
    got = negated_phrases(_KeywordModel(), encode,
                          Sentences(phrases.tokens + [["so", "bad"]], np.append(phrases.labels, 0)),
                          exclude=seen, short=3, n_examples=2)
    assert got.excluded == 1
    # Negated: all four wrong (the model ignores "not"); plain: both right.
    assert got.negated == {"accuracy": 0.0, "count": 4}
    assert got.short_negated == {"accuracy": 0.0, "count": 3}
    assert got.plain == {"accuracy": 1.0, "count": 2}
    assert got.negated_by_label == {"negative": {"accuracy": 0.0, "count": 2},
                                    "positive": {"accuracy": 0.0, "count": 2}}
    assert got.examples == [{"phrase": "not bad", "label": 1, "score": -1.0},
                            {"phrase": "not good", "label": 0, "score": 1.0}]
    with pytest.raises(ValueError, match=r"no phrase outside `exclude` \(1 given, 1 excluded\)"):
        negated_phrases(_KeywordModel(), encode, Sentences([["so", "bad"]], np.array([0])),
                        exclude=seen)


def test_training_corpus_names_the_valid_choices():
    from conductance_studies.sentiment_cnn import training_corpus

    with pytest.raises(ValueError, match=r"corpus='trees'.*\['sentences', 'phrases'\]"):
        training_corpus("trees")


def test_tree_phrases_by_hand():
    from conductance_studies.datasets.sst import _tree_phrases

    got = list(_tree_phrases("(1 (2 Not) (3 (2 very) (4 Good)))"))
    assert got == [(2, ["not"]), (2, ["very"]), (4, ["good"]), (3, ["very", "good"]),
                   (1, ["not", "very", "good"])]


def test_studies_command_passes_its_choices_to_run_all(monkeypatch, tmp_path):
    # The quick run itself (every study on the staged data, its headings,
    # figures and pages) is checked on notebook 04's run in
    # tests/test_notebooks.py: the same run_all(QUICK), run once.
    from conductance_studies import run
    from conductance_studies.__main__ import main

    calls = []
    monkeypatch.setattr(run, "run_all", lambda out, **kw: calls.append((out, kw)))
    assert main(["all", "--quick", "--out", str(tmp_path), "--data", "/data"]) == 0
    assert main(["table1", "--out", str(tmp_path)]) == 0
    (out, quick), (_, full) = calls
    assert out == str(tmp_path) and quick["data_dir"] == "/data"
    assert quick["settings"] is run.QUICK and quick["which"] == ("sentiment", "imagenet", "table1")
    assert full["settings"] is run.FULL and full["which"] == ("table1",)
    assert full["data_dir"] is None


def test_the_unit_browser_holds_the_negation_studys_sentences_and_windows(tmp_path):
    """Section 6.3's windows come out of the browser: for each negation
    filter the study finds, its sentences and the windows its max pooling
    picked are the browser's top positions of that conv channel."""
    from conductance_studies.unit_browsers import compare_negation_filters

    model, words, encode, corpus = negation_case()
    one_logit = keras.Model(model.inputs, model.outputs[0][:, 1:])
    summary = compare_negation_filters(
        one_logit, encode, words, corpus, np.zeros(30, int), tmp_path,
        conv_layers=["conv3", "conv4", "conv5", "conv6"], pooled="concat",
        start_layer="embedding",
        window_of=lambda f: (f"conv{(3, 4, 5, 6)[f // 8]}", (3, 4, 5, 6)[f // 8], f % 8),
        probe="w3 w7 w9 w11", pattern="w9 w11", direction=1, n_steps=16, top_k=4,
        study_settings=dict(min_share=0.3, min_negator_share=0.0, min_conductance=0.0),
        say=lambda *a: None)
    assert summary["filters"]
    for f in summary["filters"]:
        assert f["of"] == 4 and f["agree"] == 4, f
        assert len(f["browser"]) == 4
    assert (tmp_path / "negation_browser" / "index.html").is_file()
    assert kc.load_dataset_result(tmp_path / "negation.npz").top["conv3"].n_units == 8


def test_the_diagnostics_reference_is_a_fixed_grid_beside_an_adaptive_explainer():
    """The ImageNet diagnostics compare with a fine fixed grid. With the full
    settings the main explainer is adaptive (tolerance, max_steps below the
    fine grid): the reference must not inherit them (it raised before)."""
    import dataclasses

    from conductance_studies import run

    base = small_convnet()
    model = keras.Model(base.inputs, keras.layers.Softmax()(base.outputs[0]))
    x = np.random.default_rng(0).normal(size=(4, 8, 8, 2)).astype("float32")
    s = dataclasses.replace(run.QUICK, layers=("conv2",), image_tolerance=0.05,
                            image_max_steps=40, diagnostic_steps=64, diagnostic_images=2)
    explainer = kc.Conductance(model, ["conv2"], pre_softmax=True, n_steps=16,
                               tolerance=s.image_tolerance, max_steps=s.image_max_steps,
                               verbose=0)
    ms = explainer.explain(x, baselines=0.0)
    ablators = {"conv2": kc.Ablator(model, "conv2", pre_softmax=True)}
    out = run._diagnostics(model, x, ms, explainer, ablators, s, 0.0)
    assert out["photos"] == 2 and out["steps"] == 64
    fine = kc.conductance(model, x[[0, 3]], "conv2", pre_softmax=True, n_steps=64,
                          target=ms.conductance.target[[0, 3]], baselines=0.0, verbose=0)
    top = np.argsort(-fine.per_filter("conv2"), axis=1)[:, :10]
    main = np.take_along_axis(ms.conductance.per_filter("conv2")[[0, 3]], top, 1)
    ref = np.take_along_axis(fine.per_filter("conv2"), top, 1)
    expected = (np.abs(main - ref).max(1) / np.abs(ref).max(1)).max()
    assert out["conv2"]["top10_max_rel_diff_vs_fine"] == pytest.approx(expected, rel=1e-4)
