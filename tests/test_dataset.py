"""conductance_over_dataset: streamed sums equal kc.conductance on the same
examples, per label too; MirroredStrategy equals one device."""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import keras_conductance as kc
from keras_conductance import cache
from keras_conductance import DatasetConductance, conductance_over_dataset

from models import small_convnet, text_cnn

LAYERS = ["conv1", "conv2", "dense"]
N_STEPS = 16
RTOL, ATOL = 1e-5, 1e-7


@pytest.fixture(scope="module")
def model():
    return small_convnet()


@pytest.fixture(scope="module")
def examples():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(20, 8, 8, 2)).astype("float32")
    y = rng.integers(0, 3, 20)
    return x, y


def _reference(model, x, layers=LAYERS, **kwargs):
    return kc.conductance(model, x, layers, n_steps=N_STEPS, verbose=0, **kwargs)


def _assert_matches(result, attr, labels=None, layers=LAYERS):
    assert result.count == attr.output_diff.shape[0]
    for layer in layers:
        per_filter = attr.per_filter(layer)  # (B, C)
        np.testing.assert_allclose(result.mean[layer], per_filter.mean(0), RTOL, ATOL)
        np.testing.assert_allclose(
            result.mean_abs_delta[layer], np.abs(attr.delta[layer]).mean(), RTOL, ATOL
        )
        if labels is not None:
            np.testing.assert_array_equal(result.labels, np.unique(labels))
            for row, label in enumerate(result.labels):
                np.testing.assert_allclose(
                    result.mean_per_label[layer][row], per_filter[labels == label].mean(0),
                    RTOL, ATOL,
                )
    np.testing.assert_allclose(result.mean_output_diff, attr.output_diff.mean(), RTOL, ATOL)


@pytest.mark.parametrize("target", [None, "label", 2])
def test_streamed_means_equal_conductance_of_all_examples(model, examples, target):
    x, y = examples
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)  # 8, 8, 4
    result = conductance_over_dataset(model, ds, LAYERS, target=target, n_steps=N_STEPS,
                                      verbose=0)
    explained = {None: None, "label": y, 2: 2}[target]
    _assert_matches(result, _reference(model, x, target=explained), labels=y)
    assert result.target == {None: "top", "label": "label", 2: "class 2"}[target]
    np.testing.assert_array_equal(result.count_per_label, np.bincount(y))
    assert isinstance(result, DatasetConductance)


def test_one_hot_labels_inputs_only_and_steps(model, examples):
    x, y = examples
    one_hot = np.eye(3, dtype="float32")[y]
    ds = tf.data.Dataset.from_tensor_slices((x, one_hot)).batch(6)
    result = conductance_over_dataset(model, ds, "conv2", target="label", n_steps=N_STEPS,
                                      verbose=0)
    _assert_matches(result, _reference(model, x, "conv2", target=y), labels=y,
                    layers=["conv2"])
    # Inputs only, and `steps` bounds an endless dataset.
    endless = tf.data.Dataset.from_tensor_slices(x).batch(5).repeat()
    result = conductance_over_dataset(model, endless, "conv2", steps=2, n_steps=N_STEPS,
                                      verbose=0)
    assert result.labels is None and result.mean_per_label is None
    _assert_matches(result, _reference(model, x[:10], "conv2"), layers=["conv2"])


def test_every_batch_of_a_dataset_of_unknown_length(model, examples):
    """A dataset whose length tf.data cannot tell (a filter) streams every
    batch; the progress bar then has no total."""
    x, _ = examples
    ds = tf.data.Dataset.from_tensor_slices(x).filter(lambda v: True).batch(5)
    assert int(ds.cardinality()) == int(tf.data.UNKNOWN_CARDINALITY)
    result = conductance_over_dataset(model, ds, "conv2", n_steps=N_STEPS, verbose=0)
    assert result.count == len(x) and result.batches == -(-len(x) // 5)
    _assert_matches(result, _reference(model, x, "conv2"), layers=["conv2"])


@pytest.mark.filterwarnings("ignore:.*ompleteness error")
@pytest.mark.parametrize("method", ["gauss_legendre", "left"])
def test_other_rules_and_a_baseline(examples, method):
    smooth = small_convnet(activation="tanh")
    x, _ = examples
    baseline = np.full((8, 8, 2), 0.1, "float32")
    ds = tf.data.Dataset.from_tensor_slices(x).batch(7)
    result = conductance_over_dataset(smooth, ds, LAYERS, method=method, baselines=baseline,
                                      n_steps=N_STEPS, verbose=0)
    attr = kc.conductance(smooth, x, LAYERS, method=method, baselines=baseline,
                          n_steps=N_STEPS, verbose=0)
    _assert_matches(result, attr)
    assert result.method == method and result.n_steps == N_STEPS


def test_convergence_warning_on_dataset_means(examples):
    # A curved (tanh) path: one step cannot integrate it. (A fresh ReLU net
    # from a zero baseline is linear along the path: exact at any n_steps.)
    x, _ = examples
    ds = tf.data.Dataset.from_tensor_slices(x).batch(10)
    with pytest.warns(UserWarning, match="Mean completeness error of layer 'conv1'"):
        conductance_over_dataset(small_convnet(activation="tanh"), ds, "conv1", n_steps=1,
                                 verbose=0)


def test_channel_axis(model, examples):
    x, _ = examples
    ds = tf.data.Dataset.from_tensor_slices(x).batch(10)
    result = conductance_over_dataset(model, ds, ["conv2", "dense"], channel_axis=1,
                                      n_steps=N_STEPS, verbose=0)
    attr = _reference(model, x, ["conv2", "dense"])
    for layer in ("conv2", "dense"):
        np.testing.assert_allclose(result.mean[layer],
                                   attr.per_filter(layer, channel_axis=1).mean(0), RTOL, ATOL)


def test_result_accessors(model, examples):
    x, y = examples
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(10)
    result = conductance_over_dataset(model, ds, "conv2", n_steps=N_STEPS, verbose=0)
    np.testing.assert_array_equal(
        result.top_filters("conv2", 3), np.argsort(-result.mean["conv2"])[:3]
    )
    np.testing.assert_array_equal(
        result.top_filters("conv2", 2, label=1), np.argsort(-result.label_mean("conv2", 1))[:2]
    )
    with pytest.raises(ValueError, match="No example had label=7"):
        result.label_mean("conv2", 7)
    with pytest.raises(KeyError, match="Valid layers"):
        result.top_filters("conv9")


def test_start_layer_text_model():
    model = text_cnn()
    rng = np.random.default_rng(0)
    tokens = rng.integers(1, 50, size=(12, 12)).astype("int32")
    labels = rng.integers(0, 2, 12)
    ds = tf.data.Dataset.from_tensor_slices((tokens, labels)).batch(5)
    layers = ["conv3", "conv4", "dense"]
    result = conductance_over_dataset(model, ds, layers, target="label", start_layer="embedding",
                                      n_steps=N_STEPS, verbose=0)
    attr = kc.conductance(model, tokens, layers, target=labels, start_layer="embedding",
                          n_steps=N_STEPS, verbose=0)
    _assert_matches(result, attr, labels=labels, layers=layers)


def test_second_call_reuses_the_compiled_step(model, examples):
    x, y = examples
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    conductance_over_dataset(model, ds, LAYERS, n_steps=N_STEPS, verbose=0)
    traces = _step_traces(model)
    conductance_over_dataset(model, ds.take(1), LAYERS, n_steps=N_STEPS, verbose=0)
    again = _step_traces(model)
    assert again == traces


def _step_traces(model):
    """Traces of every compiled dataset step kept for ``model``'s explainers."""
    return {id(s): s.tracing_count for e in cache.entries(model, "explainer").values()
            for s in cache.entries(e, "dataset_step").values()}


def test_progress_bar_and_verbose_zero(model, examples, capsys):
    x, _ = examples
    ds = tf.data.Dataset.from_tensor_slices(x).batch(10)
    conductance_over_dataset(model, ds, "conv2", n_steps=N_STEPS, verbose=0)
    silent = capsys.readouterr()
    assert silent.out == "" and "batches" not in silent.err
    conductance_over_dataset(model, ds, "conv2", n_steps=N_STEPS, verbose=1)
    err = capsys.readouterr().err  # progress goes to stderr, plain lines off a terminal
    assert "2/2 batches (100%)" in err and "examples 20" in err


def test_input_errors(model, examples):
    x, y = examples
    pairs = tf.data.Dataset.from_tensor_slices((x, y))
    with pytest.raises(ValueError, match=r"`dataset` must be a batched dataset.*Batch it first"):
        conductance_over_dataset(model, pairs, "conv2", verbose=0)
    with pytest.raises(TypeError, match="must be a batched tf.data.Dataset"):
        conductance_over_dataset(model, x, "conv2", verbose=0)
    inputs_only = tf.data.Dataset.from_tensor_slices(x).batch(4)
    with pytest.raises(ValueError, match="yields no labels"):
        conductance_over_dataset(model, inputs_only, "conv2", target="label", verbose=0)
    with pytest.raises(ValueError, match="No such target mode"):
        conductance_over_dataset(model, inputs_only, "conv2", target="labels", verbose=0)
    with pytest.raises(ValueError, match="out of range"):
        conductance_over_dataset(model, inputs_only, "conv2", target=5, verbose=0)
    bad_labels = tf.data.Dataset.from_tensor_slices((x, y + 3)).batch(4)
    with pytest.raises(ValueError, match="labels fall outside 0..2"):
        conductance_over_dataset(model, bad_labels, "conv2", target="label", n_steps=4, verbose=0)
    with pytest.raises(ValueError, match=r"`steps` must be an int >= 1 or None\. Received: steps=0"):
        conductance_over_dataset(model, inputs_only, "conv2", steps=0, verbose=0)
    with pytest.raises(ValueError, match=r"`channel_axis` must be a non-batch axis"):
        conductance_over_dataset(model, inputs_only, "conv2", channel_axis=0, verbose=0)
    with pytest.raises(ValueError, match="is empty"):
        conductance_over_dataset(model, inputs_only.take(0), "conv2", verbose=0)


def test_sample_weights_are_ignored_with_a_warning(model, examples):
    x, y = examples
    ds = tf.data.Dataset.from_tensor_slices((x, y, np.ones(20, "float32"))).batch(10)
    with pytest.warns(UserWarning, match="ignores sample weights"):
        result = conductance_over_dataset(model, ds, "conv2", n_steps=N_STEPS, verbose=0)
    _assert_matches(result, _reference(model, x, "conv2"), labels=y, layers=["conv2"])


@pytest.mark.slow
def test_mirrored_strategy_on_two_logical_cpus_equals_one_device():
    script = os.path.join(os.path.dirname(__file__), "distributed_check.py")
    done = subprocess.run(
        [sys.executable, script], capture_output=True, text=True, timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "OK" in done.stdout
