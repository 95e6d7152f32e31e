"""Subclassed models: no graph, units reached by tapping their sublayers."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_conductance as kc


class Net(keras.Model):
    """Dense -> (Sequential of one Dense) -> Dense, written as a subclass."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.hidden = keras.layers.Dense(6, activation="relu", name="hidden")
        self.block = keras.Sequential(
            [keras.layers.Dense(4, activation="tanh", name="inner")], name="block")
        self.head = keras.layers.Dense(3, name="head")

    def call(self, x):
        return self.head(self.block(self.hidden(x)))


class TwoInputs(keras.Model):
    """Takes a dict: features ``a`` gated by ``b``."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.hidden = keras.layers.Dense(5, activation="relu", name="hidden")
        self.head = keras.layers.Dense(2, name="head")

    def call(self, inputs):
        return self.head(self.hidden(inputs["a"]) * inputs["b"])


def nets(rng):
    """A subclassed net and its Functional twin sharing the same layers."""
    keras.utils.set_random_seed(1)
    net = Net(name="net")
    x = rng.normal(size=(6, 7)).astype("float32")
    net(x)
    for layer in [net.hidden, net.head]:  # nonzero biases: no unit on a kink
        w = layer.get_weights()
        layer.set_weights([w[0], np.full_like(w[1], 0.2)])
    inp = keras.Input((7,))
    twin = keras.Model(inp, net.head(net.block.layers[0](net.hidden(inp))))
    return net, twin, x


def test_units_of_a_subclassed_model_equal_its_functional_twin(rng):
    net, twin, x = nets(rng)
    got = kc.conductance(net, x, ["hidden", "block/inner", "head:input"], target=1)
    want = kc.conductance(twin, x, ["hidden", "inner"], target=1)
    np.testing.assert_array_equal(got["hidden"], want["hidden"])
    np.testing.assert_allclose(got["block/inner"], want["inner"], rtol=1e-6, atol=1e-7)
    # The head's input is the inner Dense's output: the same units.
    np.testing.assert_allclose(got["head:input"], want["inner"], rtol=1e-6, atol=1e-7)
    assert got.is_cut == {"hidden": None, "block/inner": None, "head:input": None}
    # Every unit is in fact a cut here, so completeness holds.
    rel = np.abs(got.delta["hidden"]) / np.abs(got.output_diff)
    assert rel.max() < 1e-2
    # Nothing on the model was left patched.
    assert "call" not in vars(net.hidden) and "call" not in vars(net.block.layers[0])


def test_every_entry_point_accepts_a_subclassed_model(rng):
    net, twin, x = nets(rng)
    got = kc.neuron_conductance(net, x, "hidden", [2], target=0)
    want = kc.neuron_conductance(twin, x, "hidden", [2], target=0)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(kc.ablation_scores(net, x, "hidden", target=0),
                               kc.ablation_scores(twin, x, "hidden", target=0),
                               rtol=1e-6, atol=1e-6)
    ds = tf.data.Dataset.from_tensor_slices((x, np.arange(6) % 3)).batch(4)
    got = kc.conductance_over_dataset(net, ds, "hidden", target="label", verbose=0)
    want = kc.conductance_over_dataset(twin, ds, "hidden", target="label", verbose=0)
    np.testing.assert_allclose(got.mean_per_label["hidden"], want.mean_per_label["hidden"],
                               rtol=1e-5, atol=1e-7)
    assert got.count_per_label.tolist() == [2, 2, 2]


def test_dict_inputs_of_a_subclassed_model(rng):
    keras.utils.set_random_seed(2)
    model = TwoInputs(name="gated")
    a = rng.normal(size=(3, 4)).astype("float32")
    b = rng.uniform(0.5, 1.5, size=(3, 5)).astype("float32")
    model({"a": a, "b": b})
    inputs = {"a": a, "b": b}
    res = kc.conductance(model, inputs, ["hidden"], target=0, interpolate=["a"])
    # Held constant, ``b`` scales the units; by hand: conductance of a ReLU
    # unit feeding a linear head with a zero baseline is y * w * b when the
    # unit's pre-activation is linear in alpha (it is: zero bias at init).
    w = model.head.get_weights()[0][:, 0]
    y = np.maximum(a @ model.hidden.get_weights()[0] + model.hidden.get_weights()[1], 0)
    np.testing.assert_allclose(res["hidden"], y * b * w, rtol=1e-4, atol=1e-6)
    assert [u.path for u in kc.list_units(model) if not u.in_graph] == ["hidden", "head"]


def test_clear_errors_for_subclassed_models(rng):
    net, _, x = nets(rng)
    with pytest.raises(ValueError, match=r"No such sublayer: 'hiden'. Did you mean \['hidden'\]"):
        kc.conductance(net, x, ["hiden"])
    with pytest.raises(TypeError, match=r"subclassed keras.Model \(Net\).*no layer graph"):
        kc.split_model(net, "hidden")
    with pytest.raises(ValueError, match=r"has not been called yet.*model\(x\)"):
        kc.conductance(Net(name="fresh"), x, ["hidden"])
    with pytest.raises(ValueError, match=r"integer dtype.*subclassed model 'net'"):
        kc.conductance(net, x.astype("int32"), ["hidden"])
    paths = [u.path for u in kc.list_units(net)]
    assert paths[:2] == ["inputs", "net"]
    assert {"hidden", "block", "block/inner", "head"} <= set(paths)
