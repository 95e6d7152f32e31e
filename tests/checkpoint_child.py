"""A dataset run with checkpoints, for tests/test_checkpoint.py to interrupt.

Usage: python checkpoint_child.py CHECKPOINT_DIR

Each batch takes a fraction of a second of real computation (no sleeping
Python inside the tf.data pipeline: a py_function still running when the
process is interrupted can hang TensorFlow's shutdown).
"""

import signal
import sys

import keras
import numpy as np
import tensorflow as tf

import keras_conductance as kc

SETTINGS = dict(target="label", n_steps=32, top_k=4, verbose=0)
LAYERS = ["conv1", "conv2"]
BATCHES = 16


def model_and_data():
    keras.utils.set_random_seed(0)
    inp = keras.Input((40, 40, 3))
    h = keras.layers.Conv2D(16, 3, activation="relu", name="conv1")(inp)
    h = keras.layers.Conv2D(16, 3, activation="relu", name="conv2")(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    model = keras.Model(inp, keras.layers.Dense(3, name="logits")(h))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5 * BATCHES, 40, 40, 3)).astype("float32")
    y = rng.integers(0, 3, 5 * BATCHES)
    return model, tf.data.Dataset.from_tensor_slices((x, y)).batch(5)


def run(directory=None, model=None, **overrides):
    built, ds = model_and_data()
    kwargs = dict(SETTINGS, **overrides)
    if directory is not None:
        kwargs.update(checkpoint_dir=str(directory), checkpoint_every=1)
    return kc.conductance_over_dataset(model or built, ds, LAYERS, **kwargs)


if __name__ == "__main__":
    # Ctrl-C as in a terminal, even when the test runner was started in the
    # background (`pytest &`), whose children inherit SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    result = run(sys.argv[1])
    print("batches", result.batches, "resumed", result.resumed_batches)
