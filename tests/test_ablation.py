"""Filter ablation through the tail: equal to editing the layer output or the
bias, hand-computed drops, cumulative ablation until the prediction flips."""

import keras
import numpy as np
import pytest

import keras_conductance as kc
from keras_conductance.ablation import Ablator, ablate_until_flip, ablation_scores
from models import hand_mlp, set_dense, small_convnet, text_cnn


def single_input(model):
    """The same model taking one tensor (no Keras input-structure warning)."""
    return keras.Model(model.inputs[0], model.outputs[0])


def slow_scores(model, x, layer, target, fill):
    """Reference: edit the layer output one filter at a time, re-run the tail."""
    split = kc.split_model(model, layer)
    y = np.asarray(single_input(split.head)(x))
    full = np.asarray(split.tail(y))[np.arange(len(x)), target]
    out = np.zeros((len(x), y.shape[-1]), np.float32)
    for f in range(y.shape[-1]):
        edited = y.copy()
        edited[..., f] = fill[..., f]
        out[:, f] = full - np.asarray(split.tail(edited))[np.arange(len(x)), target]
    return out


@pytest.mark.parametrize("layer", ["conv1", "conv2", "dense"])
def test_equal_to_editing_the_layer_output(rng, layer):
    model = small_convnet()
    x = rng.normal(size=(5, 8, 8, 2)).astype("float32")
    xb = rng.normal(size=(1, 8, 8, 2)).astype("float32")
    target = np.asarray(model(x)).argmax(axis=1)
    zero = ablation_scores(model, x, layer, batch_size=7)
    head = single_input(kc.split_model(model, layer).head)
    y = np.asarray(head(x))
    np.testing.assert_allclose(zero, slow_scores(model, x, layer, target, np.zeros_like(y)),
                               rtol=1e-5, atol=1e-6)
    base = ablation_scores(model, x, layer, value="baseline", baselines=xb)
    yb = np.broadcast_to(np.asarray(head(xb)), y.shape)
    np.testing.assert_allclose(base, slow_scores(model, x, layer, target, yb),
                               rtol=1e-5, atol=1e-6)
    # Per-example filter sets pick the same numbers.
    picks = np.argsort(-zero, axis=1)[:, :3]
    chosen = ablation_scores(model, x, layer, filters=picks)
    np.testing.assert_allclose(chosen, np.take_along_axis(zero, picks, axis=1), rtol=1e-6)


def test_hand_computed_zero_and_baseline_ablation():
    # hand_mlp at x = (0, 100, 0): h = (90, 101, 101, 101), F = sum relu(h) - 1
    # (output 0). The tail is linear, so zero-ablation removes y(x) and
    # baseline-ablation removes y(x) - y(x'), y(x') = relu(-10, 1, 1, 1):
    # the latter is exactly the conductance (90, 100, 100, 100).
    model = hand_mlp()
    x = np.array([[0.0, 100.0, 0.0]], np.float32)
    np.testing.assert_allclose(ablation_scores(model, x, "relu", target=0), [[90, 101, 101, 101]])
    baseline = ablation_scores(model, x, "relu", target=0, value="baseline")
    np.testing.assert_allclose(baseline, [[90, 100, 100, 100]])
    attr = kc.conductance(model, x, "relu", target=0)
    np.testing.assert_allclose(baseline, attr["relu"], atol=1e-3)
    # A number or an array works as the ablation value too.
    np.testing.assert_allclose(ablation_scores(model, x, "relu", target=0, value=1.0),
                               [[89, 100, 100, 100]])


def test_zero_ablation_is_the_papers_bias_minus_infinity():
    # Setting a unit's bias to -inf (here -1e9) zeroes its post-ReLU output.
    model = hand_mlp()
    x = np.array([[0.0, 100.0, 0.0], [3.0, -1.0, 2.0]], np.float32)
    scores = ablation_scores(model, x, "relu", target=1)
    kernel, bias = model.get_layer("hidden").get_weights()
    full = np.asarray(model(x))[:, 1]
    for unit in range(4):
        b = bias.copy()
        b[unit] = -1e9
        model.get_layer("hidden").set_weights([kernel, b])
        np.testing.assert_allclose(scores[:, unit], full - np.asarray(model(x))[:, 1], atol=1e-4)
    model.get_layer("hidden").set_weights([kernel, bias])


def flip_model():
    """relu(h) with h = (90, 101, 101, 101) at x = (0, 100, 0); class 0 scores
    sum(relu(h)) = 393, class 1 scores the constant 150."""
    inp = keras.Input((3,))
    h = keras.layers.Dense(4, activation="relu", name="relu")(inp)
    out = keras.layers.Dense(2, name="out")(h)
    model = keras.Model(inp, out)
    set_dense(model, "relu", np.ones((3, 4)), [-10, 1, 1, 1])
    set_dense(model, "out", np.stack([np.ones(4), np.zeros(4)], 1), [0.0, 150.0])
    return model


@pytest.mark.parametrize("block", [1, 2, 8])
def test_ablate_until_flip_hand_computed(block):
    model = flip_model()
    x = np.array([[0.0, 100.0, 0.0], [0.0, 100.0, 0.0], [0.0, 10.0, 0.0]], np.float32)
    ranking = np.array([[1, 2, 3, 0], [0, 1, 2, 3], [0, 1, 2, 3]])
    ablator = Ablator(model, "relu")
    result = ablator.until_flip(x, ranking, block=block)
    # Example 0: 393 -> 292 -> 191 -> 90 < 150: flips at 3 filters.
    # Example 1: 393 -> 303 -> 202 -> 101 < 150: flips at 3 too.
    # Example 2: h = (0, 11, 11, 11): 33 < 150 is class 1 already; ablating
    # only lowers class 0, so it never flips.
    np.testing.assert_array_equal(result.n_ablated, [3, 3, -1])
    np.testing.assert_array_equal(result.original_class, [0, 0, 1])
    np.testing.assert_array_equal(result.new_class, [1, 1, -1])
    np.testing.assert_array_equal(result.flipped, [True, True, False])
    limited = ablate_until_flip(model, x, "relu", ranking, max_filters=2)
    np.testing.assert_array_equal(limited.n_ablated, [-1, -1, -1])
    # All ranked filters of an example ablated together, in one call.
    masks = np.zeros((3, 4), bool)
    masks[:, [1, 2, 3]] = True
    np.testing.assert_array_equal(ablator.predict(x, masks), [1, 1, 1])


def test_one_logit_model_predicts_by_sign(rng):
    inp = keras.Input((2,))
    h = keras.layers.Dense(2, activation="relu", name="h")(inp)
    out = keras.layers.Dense(1, name="logit")(h)
    model = keras.Model(inp, out)
    set_dense(model, "h", np.eye(2), [0.0, 0.0])
    set_dense(model, "logit", [[1.0], [-1.0]], [0.5])
    x = np.array([[2.0, 1.0], [0.0, 3.0]], np.float32)  # logits 1.5, -2.5
    result = ablate_until_flip(model, x, "h", [0, 1])
    np.testing.assert_array_equal(result.original_class, [1, 0])
    np.testing.assert_array_equal(result.n_ablated, [1, 2])


def test_text_model_baseline_value_is_the_zero_embedding(rng):
    model = text_cnn()
    tokens = rng.integers(1, 50, size=(3, 12)).astype("int32")
    scores = ablation_scores(model, tokens, "concat", target=1, value="baseline",
                             start_layer="embedding")
    inner = keras.Model(model.get_layer("embedding").output, model.get_layer("concat").output)
    y0 = np.asarray(inner(np.zeros((1, 12, 10), "float32")))
    explicit = ablation_scores(model, tokens, "concat", target=1, value=y0)
    np.testing.assert_allclose(scores, explicit, rtol=1e-6)
    assert np.abs(y0).max() > 0  # positive biases: y(x') is not zero here


def test_clear_errors():
    model = small_convnet()
    x = np.zeros((2, 8, 8, 2), "float32")
    with pytest.raises(ValueError, match=r"`value` must be one of \['zero', 'baseline'\], a number.*Received: value='mean'"):
        ablation_scores(model, x, "conv2", value="mean")
    with pytest.raises(ValueError, match=r"`filters` must be .*values in 0\.\.4 \('conv2' has 5 filters\)"):
        ablation_scores(model, x, "conv2", filters=[7])
    with pytest.raises(ValueError, match=r"`filters` must be None \(all\).*\(B=2, k\)"):
        ablation_scores(model, x, "conv2", filters=np.zeros((3, 2), int))
    with pytest.raises(ValueError, match=r"`max_filters` must be an int in 1\.\.2 or None\. Received: max_filters=5"):
        ablate_until_flip(model, x, "conv2", [0, 1], max_filters=5)
    inp = keras.Input((4,))
    a = keras.layers.Dense(4, name="a")(inp)
    b = keras.layers.Dense(4, name="b")(a)
    add = keras.layers.Add(name="add")([a, b])
    residual = keras.Model(inp, keras.layers.Dense(2)(add))
    with pytest.raises(ValueError, match=r"'b' is not a cut"):
        ablation_scores(residual, np.zeros((1, 4)), "b")


@pytest.mark.slow
def test_pretrained_mobilenet_equals_bias_minus_infinity(shared_data, rng):
    # The paper's ablation on a real network: conv_pw_5_relu is ReLU6(BN(.)),
    # so a -1e9 batch-norm offset zeroes the filter; re-running the whole
    # edited model must give the tail-only ablation score.
    model = keras.applications.MobileNet(
        input_shape=(128, 128, 3), alpha=0.25,
        weights=str(shared_data / "imagenet" / "mobilenet_2_5_128_tf.h5"))
    logits = single_input(kc.strip_softmax(model))
    x = rng.uniform(-1, 1, size=(2, 128, 128, 3)).astype("float32")
    filters = [0, 7, 31]
    scores = ablation_scores(model, x, "conv_pw_5_relu", filters=filters, pre_softmax=True)
    target = np.asarray(logits(x)).argmax(axis=1)
    full = np.asarray(logits(x))[np.arange(2), target]
    bn = model.get_layer("conv_pw_5_bn")
    saved = bn.get_weights()
    for j, f in enumerate(filters):
        gamma, beta, mean, var = [w.copy() for w in saved]
        beta[f] = -1e9
        bn.set_weights([gamma, beta, mean, var])
        edited = np.asarray(logits(x))[np.arange(2), target]
        np.testing.assert_allclose(scores[:, j], full - edited, rtol=1e-4, atol=1e-4)
    bn.set_weights(saved)
