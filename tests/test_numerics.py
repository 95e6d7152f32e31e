"""Determinism on CPU, order/batch-size independence of dataset sums, and
models under the mixed_float16 policy."""

import keras
import numpy as np
import tensorflow as tf

import keras_conductance as kc
from models import small_convnet


def tanh_net(policy=None):
    keras.utils.set_random_seed(0)
    logits = dict(dtype="float32") if policy else {}
    return keras.Sequential([
        keras.Input((8, 8, 2)),
        keras.layers.Conv2D(4, 3, activation="tanh", name="conv1"),
        keras.layers.Conv2D(5, 3, activation="tanh", name="conv2"),
        keras.layers.Flatten(name="flatten"),
        keras.layers.Dense(3, name="logits", **logits),
    ])


def test_the_same_call_twice_is_bit_identical(rng):
    model = small_convnet()
    x = rng.normal(size=(6, 8, 8, 2)).astype("float32")
    for fn in (
        lambda: kc.conductance(model, x, ["conv1", "conv2"], target=1, n_steps=20)["conv2"],
        lambda: kc.neuron_conductance(model, x, "conv2", [0, 3], target=1, n_steps=20),
        lambda: kc.ablation_scores(model, x, "conv2", target=1),
        lambda: kc.internal_influence(model, x, "conv1", target=1, n_steps=20)["conv1"],
    ):
        np.testing.assert_array_equal(fn(), fn())
    ds = tf.data.Dataset.from_tensor_slices((x, np.arange(6) % 3)).batch(4)
    first, second = (kc.conductance_over_dataset(model, ds, "conv2", target="label",
                                                 n_steps=20, verbose=0) for _ in range(2))
    np.testing.assert_array_equal(first.mean_per_label["conv2"], second.mean_per_label["conv2"])


def test_dataset_sums_do_not_depend_on_batch_size_or_order(rng):
    model = small_convnet()
    x = rng.normal(size=(23, 8, 8, 2)).astype("float32")
    y = rng.integers(0, 3, 23)
    results = []
    for batch, order in ((4, np.arange(23)), (7, np.arange(23)), (23, rng.permutation(23))):
        ds = tf.data.Dataset.from_tensor_slices((x[order], y[order])).batch(batch)
        results.append(kc.conductance_over_dataset(model, ds, ["conv1", "dense"], target="label",
                                                   n_steps=20, verbose=0))
    for other in results[1:]:
        for layer in ("conv1", "dense"):
            np.testing.assert_allclose(other.mean[layer], results[0].mean[layer],
                                       rtol=1e-5, atol=1e-8)
            np.testing.assert_allclose(other.mean_per_label[layer],
                                       results[0].mean_per_label[layer], rtol=1e-5, atol=1e-8)
        np.testing.assert_array_equal(other.count_per_label, results[0].count_per_label)


def test_a_mixed_float16_model(rng):
    x = rng.normal(size=(6, 8, 8, 2)).astype("float32")
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        half = tanh_net(policy="mixed_float16")
        attr = kc.conductance(half, x, ["conv1", "conv2"], target=0, n_steps=64)
        ds = tf.data.Dataset.from_tensor_slices((x, np.arange(6) % 3)).batch(4)
        whole = kc.conductance_over_dataset(half, ds, "conv2", target="label", n_steps=64,
                                            verbose=0)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert half.get_layer("conv2").compute_dtype == "float16"
    # Accumulated in float32 whatever the compute dtype.
    assert attr["conv2"].dtype == np.float32 and attr.output_diff.dtype == np.float32
    # float16 activations and gradients: completeness within 1 % (float32
    # gives ~1e-6 on this smooth net); the numbers within 1 % of the
    # float32 model's of the same weights.
    for layer in ("conv1", "conv2"):
        assert attr.relative_delta([layer]).max() < 1e-2
    full = tanh_net()
    full.set_weights(half.get_weights())
    ref = kc.conductance(full, x, ["conv2"], target=0, n_steps=64)["conv2"]
    assert np.abs(attr["conv2"] - ref).max() < 1e-2 * np.abs(ref).max()
    assert whole.mean_abs_delta["conv2"] < 1e-2 * abs(whole.mean_output_diff) + 1e-3
