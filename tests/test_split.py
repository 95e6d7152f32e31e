"""split_model: head and tail reproduce the model; cuts are checked."""

import keras
import numpy as np
import pytest

import keras_conductance as kc
from keras_conductance.graph import layer_graph
from models import small_convnet, text_cnn


def test_sequential_split_reproduces_the_model(rng):
    model = small_convnet()
    x = rng.normal(size=(3, 8, 8, 2)).astype("float32")
    split = kc.split_model(model, "conv2")
    assert split.head.output.shape[1:] == (4, 4, 5)
    np.testing.assert_allclose(split.tail(split.head(x)), model(x), rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def mobilenet():
    keras.utils.set_random_seed(0)
    return keras.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35, weights=None)


def test_functional_split_and_residual_bypass(mobilenet, rng):
    x = rng.uniform(-1, 1, size=(2, 32, 32, 3)).astype("float32")
    split = kc.split_model(mobilenet, "block_2_add")
    np.testing.assert_allclose(split.tail(split.head(x)), mobilenet(x), rtol=1e-4, atol=1e-7)
    with pytest.raises(ValueError, match=r"'block_2_project_BN' is not a cut.*\['block_2_add'\].*nearest layers that are cuts: \['block_2_add'"):
        kc.split_model(mobilenet, "block_2_project_BN")


def test_nested_application_inside_sequential(mobilenet, rng):
    outer = keras.Sequential(
        [keras.Input((32, 32, 3)), mobilenet, keras.layers.Dense(3, name="head_dense")],
        name="outer",
    )
    x = rng.uniform(-1, 1, size=(2, 32, 32, 3)).astype("float32")
    expected = np.asarray(outer(x))
    for name in ["block_6_expand_relu", f"{mobilenet.name}/block_6_expand_relu", mobilenet.name]:
        split = kc.split_model(outer, name)
        np.testing.assert_allclose(split.tail(split.head(x)), expected, rtol=1e-4, atol=1e-6)
    attr = kc.conductance(outer, x, "block_6_expand_relu", n_steps=5)
    assert attr["block_6_expand_relu"].shape == (2, 4, 4, 96)


def test_parallel_layers_form_a_cut_only_together(rng):
    model = text_cnn()
    convs = ["conv3", "conv4", "conv5", "conv6"]
    with pytest.raises(ValueError, match=r"'conv3' is not a cut.*rejoins at \['concat'\]"):
        kc.split_model(model, "conv3")
    split = kc.split_model(model, convs)
    assert len(split.head.outputs) == 4 and split.layers == convs
    tokens = rng.integers(0, 50, size=(3, 12)).astype("int32")
    np.testing.assert_allclose(split.tail(split.head(tokens)), model(tokens), rtol=1e-5, atol=1e-6)


def test_layer_graph_lists_cuts_in_order():
    graph = layer_graph(small_convnet())
    assert graph.names()[1:] == ["conv1", "conv2", "flatten", "dense", "logits"]
    assert all(graph.is_cut([n]) for n in graph.names()[1:])


def test_duplicate_or_empty_layers():
    model = small_convnet()
    with pytest.raises(ValueError, match=r"A layer is named twice"):
        kc.split_model(model, ["conv1", "conv1"])
    with pytest.raises(ValueError, match=r"`layers` must be a layer name or a non-empty list.*Received: layers=\[\]"):
        kc.split_model(model, [])
