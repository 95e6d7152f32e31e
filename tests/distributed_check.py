"""Run by tests/test_dataset.py in a subprocess: MirroredStrategy over two
logical CPU devices must give the single-device result.

Logical devices can only be configured before TensorFlow initialises its
devices, hence a separate process. Exits non-zero (AssertionError) on any
mismatch; prints "OK" and the largest differences on success.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keras_conductance as kc
from keras_conductance import conductance_over_dataset
from models import small_convnet

LAYERS = ["conv1", "conv2", "dense"]
RTOL, ATOL = 1e-5, 1e-7


def main():
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert strategy.num_replicas_in_sync == 2
    with strategy.scope():
        model = small_convnet()
    rng = np.random.default_rng(1)
    # 17 examples in batches of 8: the last batch of one example leaves one
    # replica an empty share.
    x = rng.normal(size=(17, 8, 8, 2)).astype("float32")
    y = rng.integers(0, 3, 17)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    worst = 0.0
    # target=None with the strategy of the active scope; target="label"
    # with strategy= passed explicitly.
    for target in (None, "label"):
        single = conductance_over_dataset(model, ds, LAYERS, target=target, n_steps=16, verbose=0)
        if target is None:
            with strategy.scope():
                result = conductance_over_dataset(model, ds, LAYERS, n_steps=16, verbose=0)
        else:
            result = conductance_over_dataset(model, ds, LAYERS, target=target, n_steps=16,
                                              strategy=strategy, verbose=0)
        reference = kc.conductance(model, x, LAYERS, target=y if target else None, n_steps=16,
                                   verbose=0)
        assert result.count == 17 and single.count == 17
        np.testing.assert_array_equal(result.labels, single.labels)
        np.testing.assert_array_equal(result.count_per_label, single.count_per_label)
        for layer in LAYERS:
            np.testing.assert_allclose(result.mean[layer], single.mean[layer], RTOL, ATOL)
            np.testing.assert_allclose(
                result.mean_per_label[layer], single.mean_per_label[layer], RTOL, ATOL
            )
            np.testing.assert_allclose(
                result.mean_abs_delta[layer], single.mean_abs_delta[layer], RTOL, ATOL
            )
            np.testing.assert_allclose(
                result.mean[layer], reference.per_filter(layer).mean(0), RTOL, ATOL
            )
            worst = max(worst, float(np.abs(result.mean[layer] - single.mean[layer]).max()))
        np.testing.assert_allclose(
            result.mean_output_diff, reference.output_diff.mean(), RTOL, ATOL
        )
    worst = max(worst, check_units_inside_a_layer(strategy))
    check_top_examples(model, ds, strategy)
    print(f"OK max|mirrored - single| = {worst:.3g}")


def check_units_inside_a_layer(strategy):
    """Tapped units (attention heads per head, the output projection) under
    ``strategy.run``: the same means as one device and as ``kc.conductance``."""
    import keras

    heads, projection = "mha/attention_output:input", "mha/attention_output"
    with strategy.scope():
        keras.utils.set_random_seed(4)
        inp = keras.Input((5, 6))
        attended = keras.layers.MultiHeadAttention(2, 3, name="mha")(inp, inp)
        pooled = keras.layers.GlobalAveragePooling1D()(attended)
        model = keras.Model(inp, keras.layers.Dense(3)(pooled))
    x = np.random.default_rng(4).normal(size=(9, 5, 6)).astype("float32")
    ds = tf.data.Dataset.from_tensor_slices(x).batch(4)
    units, axes = [heads, projection], {heads: -2}
    single = conductance_over_dataset(model, ds, units, target=0, n_steps=8,
                                      channel_axis=axes, verbose=0)
    result = conductance_over_dataset(model, ds, units, target=0, n_steps=8,
                                      channel_axis=axes, strategy=strategy, verbose=0)
    reference = kc.conductance(model, x, units, target=0, n_steps=8, verbose=0)
    assert result.mean[heads].shape == (2,) and result.mean[projection].shape == (6,)
    worst = 0.0
    for unit, axis in ((heads, -2), (projection, -1)):
        np.testing.assert_allclose(result.mean[unit], single.mean[unit], RTOL, ATOL)
        np.testing.assert_allclose(result.mean[unit], reference.per_filter(unit, axis).mean(0),
                                   RTOL, ATOL)
        worst = max(worst, float(np.abs(result.mean[unit] - single.mean[unit]).max()))
    # The projection is linear: all heads together carry the projection's flow.
    np.testing.assert_allclose(result.mean[heads].sum(), result.mean[projection].sum(),
                               1e-5, 1e-7)
    return worst


def check_top_examples(model, ds, strategy):
    """``top_k`` under the strategy keeps the very examples and positions of
    one device (the merge is exact; values agree to float32 noise)."""
    single = conductance_over_dataset(model, ds, LAYERS, target="label", n_steps=16, top_k=3,
                                      verbose=0)
    result = conductance_over_dataset(model, ds, LAYERS, target="label", n_steps=16, top_k=3,
                                      strategy=strategy, verbose=0)
    for layer in LAYERS:
        for sign in ("positive", "negative"):
            for field in ("examples", "positions", "targets", "labels"):
                np.testing.assert_array_equal(getattr(result.top[layer], field)[sign],
                                              getattr(single.top[layer], field)[sign])
            np.testing.assert_allclose(result.top[layer].contexts[sign],
                                       single.top[layer].contexts[sign], RTOL, ATOL)
        np.testing.assert_array_equal(result.histogram[layer], single.histogram[layer])
    np.testing.assert_array_equal(result.example_ids, single.example_ids)
    np.testing.assert_array_equal(result.example_inputs, single.example_inputs)


if __name__ == "__main__":
    main()
