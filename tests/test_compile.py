"""Compiled work is reused: no retracing across calls or shortcut calls."""

import numpy as np

import keras_conductance as kc
from keras_conductance import cache, functional
from models import small_convnet


def test_explainer_traces_once_per_input_shape(rng):
    model = small_convnet()
    explainer = kc.Conductance(model, ["conv1", "dense"], n_steps=10, batch_size=16)
    x = rng.normal(size=(4, 8, 8, 2)).astype("float32")
    explainer(x)
    traced = explainer.tracing_count
    assert traced >= 1
    # Other values, targets, baselines, step counts and batch sizes of
    # examples reuse the trace (points and examples are padded per chunk).
    explainer(x * 2, target=1)
    explainer(x[:3], baselines=np.ones_like(x[:3]), n_steps=33)
    explainer(x, method="left")
    assert explainer.tracing_count == traced


def test_functional_shortcut_reuses_the_cached_explainer(rng):
    functional.clear_cache()
    model = small_convnet()
    x = rng.normal(size=(2, 8, 8, 2)).astype("float32")
    first = kc.conductance(model, x, "conv2", n_steps=8)
    (explainer,) = cache.entries(model, "explainer").values()
    traced = explainer.tracing_count
    second = kc.conductance(model, x, "conv2", n_steps=12, target=0)
    assert explainer.tracing_count == traced
    assert len(cache.entries(model, "explainer")) == 1
    # internal_influence and measures share the same compiled explainer.
    kc.internal_influence(model, x, "conv2")
    kc.measures(model, x, "conv2")
    assert len(cache.entries(model, "explainer")) == 1 and explainer.tracing_count == traced
    assert first["conv2"].shape == second["conv2"].shape == (2, 4, 4, 5)


def test_cache_is_bounded(rng):
    functional.clear_cache()
    model = small_convnet()
    x = rng.normal(size=(1, 8, 8, 2)).astype("float32")
    # Compile-relevant options (here: the layer sets) make new explainers;
    # per-call options such as batch_size do not.
    names = ["conv1", "conv2", "flatten", "dense", "logits"]
    sets = [[a, b] for i, a in enumerate(names) for b in names[i + 1:]]
    for layers in sets[: functional.CACHE_SIZE + 3]:
        kc.conductance(model, x, layers, n_steps=2)
    for batch_size in (1, 2, 3):
        kc.conductance(model, x, sets[0], n_steps=2, batch_size=batch_size)
    assert len(cache.entries(model, "explainer")) == functional.CACHE_SIZE


def test_dropping_the_model_frees_its_cache_entries():
    import gc
    import weakref

    model = small_convnet()
    x = np.ones((1, 8, 8, 2), "float32")
    kc.conductance(model, x, "conv2", n_steps=4)
    kc.ablation_scores(model, x, "conv2")
    ref = weakref.ref(model)
    del model
    gc.collect()
    assert ref() is None


def test_several_models_in_a_loop_do_not_warn_about_retracing(rng):
    # Each new model gets its own compiled functions, traced once each; TF's
    # detector counts traces of the same Python code across all of them and
    # used to warn "5 out of the last 9 calls ... triggered retracing".
    import logging

    import keras
    import tensorflow as tf

    records = []
    handler = logging.Handler()
    handler.emit = records.append
    tf.get_logger().addHandler(handler)
    try:
        x = rng.normal(size=(4, 8)).astype("float32")
        for width in range(5, 12):
            inp = keras.Input((8,))
            h = keras.layers.Dense(width, activation="relu", name="h")(inp)
            model = keras.Model(inp, keras.layers.Dense(3)(h))
            kc.measures(model, x, "h", n_steps=4)
            kc.ablation_scores(model, x, "h")
        # A user's own function that retraces on every call still warns.
        for n in range(1, 8):
            tf.function(lambda t: t * 2)(tf.zeros((n,)))
    finally:
        tf.get_logger().removeHandler(handler)
    ours = [r.getMessage() for r in records if "retracing" in r.getMessage()
            and ("PathEngine" in r.getMessage() or "Ablator" in r.getMessage())]
    assert ours == []
    assert any("<lambda>" in r.getMessage() and "retracing" in r.getMessage() for r in records)


def test_clear_cache_drops_the_layer_graph_too():
    """The graph of a model is kept with its other cached objects, so
    ``clear_cache()`` frees it (it held the flattened sub-models)."""
    from keras_conductance.graph import layer_graph
    from models import small_convnet

    model = small_convnet()
    graph = layer_graph(model)
    assert layer_graph(model) is graph
    functional.clear_cache()
    assert layer_graph(model) is not graph
