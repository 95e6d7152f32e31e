"""Every bad input gets one clear error before TensorFlow runs."""

import keras
import numpy as np
import pytest

import keras_conductance as kc
from models import small_convnet, text_cnn


@pytest.fixture(scope="module")
def model():
    return small_convnet()


X = np.zeros((2, 8, 8, 2), "float32")


def test_unknown_layer_lists_the_layers(model):
    with pytest.raises(ValueError, match=r"No such layer: 'conv3'.*Did you mean.*'conv1'.*Existing layers are: \[.*'dense'"):
        kc.conductance(model, X, "conv3")


def test_bypassed_layer_names_the_bypass():
    inp = keras.Input((4,))
    a = keras.layers.Dense(4, name="a")(inp)
    b = keras.layers.Dense(4, name="b")(a)
    add = keras.layers.Add(name="add")([a, b])
    out = keras.layers.Dense(2, name="out")(add)
    model = keras.Model(inp, out)
    with pytest.raises(ValueError, match=r"'b' is not a cut.*rejoins at \['add'\].*nearest layers that are cuts: \['a', 'add'\]"):
        kc.split_model(model, "b")
    with pytest.raises(ValueError, match=r"Start layer 'b' is not a cut"):
        kc.conductance(model, np.zeros((1, 4)), "out", start_layer="b")


def test_integer_inputs_need_a_start_layer():
    model = text_cnn()
    with pytest.raises(ValueError, match=r"integer dtype int32.*start_layer=.*\['embedding'\]"):
        kc.conductance(model, np.ones((2, 12), "int32"), "dense")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_inputs(model, bad):
    x = X.copy()
    x[1, 2, 3, 0] = bad
    with pytest.raises(ValueError, match=r"`inputs` contains 1 NaN or Inf values \(first at index \(1, 2, 3, 0\)\)"):
        kc.conductance(model, x, "conv1")
    with pytest.raises(ValueError, match=r"`baselines` contains 1 NaN"):
        kc.conductance(model, X, "conv1", baselines=x)


def test_baseline_shape_mismatch(model):
    with pytest.raises(ValueError, match=r"`baselines` with shape \(2, 7, 7, 2\) cannot be broadcast to the inputs, shape \(2, 8, 8, 2\)"):
        kc.conductance(model, X, "conv1", baselines=np.zeros((2, 7, 7, 2)))


def test_input_shape_mismatch(model):
    with pytest.raises(ValueError, match=r"`inputs` must have shape \(batch, 8, 8, 2\).*Received shape \(2, 8, 8\)"):
        kc.conductance(model, X[..., 0], "conv1")


@pytest.mark.parametrize("target,message", [
    (3, r"`target` is out of range: the model has 3 outputs \(valid indices 0..2\). Received: \[3\]"),
    (-1, r"out of range.*Received: \[-1\]"),
    (np.array([0, 1, 2]), r"must have shape \(2,\).*Received shape \(3,\)"),
    (0.5, r"`target` must be None, an int"),
])
def test_bad_targets(model, target, message):
    with pytest.raises((ValueError, TypeError), match=message):
        kc.conductance(model, X, "conv1", target=target)


@pytest.mark.parametrize("n_steps,error", [(0, ValueError), (-3, ValueError), (1.5, TypeError)])
def test_bad_n_steps(model, n_steps, error):
    with pytest.raises(error, match=r"`n_steps` must be"):
        kc.conductance(model, X, "conv1", n_steps=n_steps)


def test_unknown_method(model):
    with pytest.raises(ValueError, match=r"`method` must be one of 'trapezoid', 'left', 'right', 'gauss_legendre'. Received: method='simpson'"):
        kc.conductance(model, X, "conv1", method="simpson")


def test_bad_batch_size_and_jit(model):
    with pytest.raises(ValueError, match=r"`batch_size` must be an int >= 1 or None. Received: batch_size=0"):
        kc.Conductance(model, "conv1", batch_size=0)
    with pytest.raises(ValueError, match=r"`jit_compile` must be one of True, False, 'auto'. Received: jit_compile='yes'"):
        kc.Conductance(model, "conv1", jit_compile="yes")


def test_subclassed_model_is_explained_clearly():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(2)

        def call(self, x):
            return self.dense(x)

    net = Net()
    net(np.zeros((1, 3)))
    # Units are tapped (tests/test_subclassed.py); only splitting needs a graph.
    with pytest.raises(TypeError, match=r"subclassed keras.Model \(Net\).*Functional API"):
        kc.split_model(net, "dense")


def test_not_a_model():
    with pytest.raises(TypeError, match=r"Expected a keras.Model.*Received: model='model'"):
        kc.split_model("model", "dense")


def test_tolerance_on_a_layer_that_is_no_cut_is_judged_by_its_estimate():
    # 'b' is no cut (the skip connection bypasses it): completeness cannot be
    # checked, but the per-filter error estimate still can. (It once raised.)
    inp = keras.Input((4,))
    a = keras.layers.Dense(4, name="a", activation="tanh")(inp)
    b = keras.layers.Dense(4, name="b", activation="tanh")(a)
    out = keras.layers.Dense(2, name="out")(keras.layers.Add(name="add")([a, b]))
    model = keras.Model(inp, out)
    x = np.linspace(-2, 2, 8).reshape(2, 4)
    attr = kc.conductance(model, x, "b", target=0, tolerance=1e-3, verbose=0)
    assert attr.unjudged == ["b"]
    assert np.all(attr.error_estimate["b"] <= 1e-3)
    fine = kc.conductance(model, x, "b", target=0, n_steps=4000, verbose=0)
    np.testing.assert_allclose(attr["b"], fine["b"], atol=2e-3 * np.abs(fine["b"]).sum())
    with pytest.raises(ValueError, match=r"`tolerance` refines a Stieltjes rule.*gauss_legendre"):
        kc.conductance(model, x, "b", tolerance=0.01, method="gauss_legendre")


def test_dataset_inputs_point_elsewhere(model):
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices(X).batch(2)
    with pytest.raises(TypeError, match=r"not a tf.data.Dataset"):
        kc.conductance(model, ds, "conv1")


def test_unknown_attribution_layer(model):
    attr = kc.conductance(model, X + 1, "conv1", n_steps=2)
    with pytest.raises(KeyError, match=r"No such layer: .conv2.: no attribution for it.*\['conv1'\]"):
        attr["conv2"]


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_other_keras_backends_are_refused_at_import(backend):
    import os
    import subprocess
    import sys

    env = dict(os.environ, KERAS_BACKEND=backend)
    run = subprocess.run([sys.executable, "-c", "import keras_conductance"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode != 0
    assert f"needs Keras' TensorFlow backend; KERAS_BACKEND is '{backend}'" in run.stderr
    assert "Set KERAS_BACKEND=tensorflow" in run.stderr
