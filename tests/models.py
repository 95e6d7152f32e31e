"""Small fixed-weight and random Keras models shared by the tests."""

import keras
import numpy as np


def set_dense(model, name, kernel, bias):
    model.get_layer(name).set_weights(
        [np.asarray(kernel, np.float32), np.asarray(bias, np.float32)]
    )


def hand_mlp():
    """3 -> Dense(4, ones, bias (-10, 1, 1, 1)) -> ReLU -> Dense(2, ones, bias (-1, 1))."""
    inp = keras.Input((3,))
    h = keras.layers.Dense(4, name="hidden")(inp)
    r = keras.layers.ReLU(name="relu")(h)
    out = keras.layers.Dense(2, name="out")(r)
    model = keras.Model(inp, out)
    set_dense(model, "hidden", np.ones((3, 4)), [-10, 1, 1, 1])
    set_dense(model, "out", np.ones((4, 2)), [-1, 1])
    return model


def small_convnet(seed=0, activation="relu", input_shape=(8, 8, 2), classes=3):
    """A Sequential conv net: every layer is a cut."""
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input(input_shape),
            keras.layers.Conv2D(4, 3, activation=activation, name="conv1"),
            keras.layers.Conv2D(5, 3, activation=activation, name="conv2"),
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dense(6, activation=activation, name="dense"),
            keras.layers.Dense(classes, name="logits"),
        ],
        name="small_convnet",
    )


def text_cnn(vocab=50, length=12, seed=0, widths=(3, 4, 5, 6), maps=8):
    """The paper's text CNN shape, scaled down: parallel conv widths."""
    keras.utils.set_random_seed(seed)
    tokens = keras.Input((length,), dtype="int32", name="tokens")
    emb = keras.layers.Embedding(vocab, 10, name="embedding")(tokens)
    pooled = []
    for w in widths:
        c = keras.layers.Conv1D(maps, w, activation="relu", name=f"conv{w}")(emb)
        pooled.append(keras.layers.GlobalMaxPooling1D(name=f"pool{w}")(c))
    cat = keras.layers.Concatenate(name="concat")(pooled)
    hidden = keras.layers.Dense(10, activation="relu", name="dense")(cat)
    out = keras.layers.Dense(2, name="logits")(hidden)
    model = keras.Model(tokens, out, name="text_cnn")
    # Nonzero biases keep the ReLUs off their kinks at the zero baseline.
    for layer in model.layers:
        if layer.weights and hasattr(layer, "bias") and layer.bias is not None:
            w = layer.get_weights()
            w[1] = np.random.default_rng(seed).normal(0, 0.3, w[1].shape).astype("float32")
            layer.set_weights(w)
    return model


def tiny_bert(seed=0, length=12, num_classes=3, vocabulary=60):
    """A small keras-hub BertTextClassifier (2 blocks, hidden 16, random init).

    Skips the calling test when keras-hub is not installed.
    """
    import pytest

    keras_hub = pytest.importorskip("keras_hub", reason="keras-hub is not installed")
    keras.utils.set_random_seed(seed)
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=vocabulary, num_layers=2, num_heads=2, hidden_dim=16,
        intermediate_dim=32, max_sequence_length=length)
    return keras_hub.models.BertTextClassifier(backbone, num_classes=num_classes,
                                               preprocessor=None)
