"""The argument vocabulary (``keras_conductance/arguments.py``) x every public
entry point that takes each argument.

The cases are generated from the table: for a declared type and range the
bad values follow (a float for an int, a value below the range, a string for
a bool ...), and the entry points that take an argument are read from their
signatures. A new argument, or a new entry point that takes a declared one,
is covered without a new case; only a new entry point needs one line in
``CALLS`` (how to call it with valid settings), and a new argument whose
validity depends on the model one line in ``MODEL_CASES``. Each case asserts
the error's type, the argument's name and the received value in the message.
"""

import inspect
import math
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_conductance as kc
from keras_conductance import arguments
from keras_conductance.arguments import ARGUMENTS
from models import small_convnet, text_cnn

X = np.random.default_rng(0).normal(size=(2, 8, 8, 2)).astype("float32")
Y = np.array([0, 2])
MODEL = small_convnet()
DATASET = tf.data.Dataset.from_tensor_slices((X, Y)).batch(2)


def _callback(**kw):
    """ConductanceCallback run by ``model.evaluate`` (model checks happen
    when evaluation starts)."""
    cb = kc.ConductanceCallback(**kw)
    MODEL.compile(loss="sparse_categorical_crossentropy")
    MODEL.evaluate(X, Y, callbacks=[cb], verbose=0)


def _attribution():
    return kc.conductance(MODEL, X, "conv2", n_steps=4, verbose=0)


def _over_dataset():
    return kc.conductance_over_dataset(MODEL, DATASET, "conv2", n_steps=4, verbose=0)


def _with_top():
    """A dataset result with top examples (kept: several entry points read it)."""
    if "top" not in _RESULTS:
        _RESULTS["top"] = kc.conductance_over_dataset(MODEL, DATASET, "conv2", n_steps=4,
                                                      top_k=2, verbose=0)
    return _RESULTS["top"]


_RESULTS = {}


RANKING = np.tile(np.arange(5), (2, 1))
# entry point -> (callable taking keywords, valid keywords)
CALLS = {
    "conductance": (kc.conductance, dict(model=MODEL, inputs=X, layers="conv2")),
    "measures": (kc.measures, dict(model=MODEL, inputs=X, layers="conv2")),
    "internal_influence": (kc.internal_influence, dict(model=MODEL, inputs=X, layers="conv2")),
    "gradient_x_activation": (kc.gradient_x_activation,
                              dict(model=MODEL, inputs=X, layers="conv2")),
    "activation": (kc.activation, dict(model=MODEL, inputs=X, layers="conv2")),
    "Conductance": (kc.Conductance, dict(model=MODEL, layers="conv2")),
    "Conductance.explain": (lambda **kw: kc.Conductance(MODEL, "conv2").explain(**kw),
                            dict(inputs=X)),
    "Conductance.__call__": (lambda **kw: kc.Conductance(MODEL, "conv2")(**kw), dict(inputs=X)),
    "Conductance.endpoints": (lambda **kw: kc.Conductance(MODEL, "conv2").endpoints(**kw),
                              dict(inputs=X)),
    "neuron_conductance": (kc.neuron_conductance,
                           dict(model=MODEL, inputs=X, layer="conv2", filters=[0], n_steps=4)),
    "pixel_maps": (kc.pixel_maps,
                   dict(model=MODEL, inputs=X, layer="conv2", filters=[0], n_steps=4)),
    "NeuronConductance": (kc.NeuronConductance, dict(model=MODEL, layer="conv2")),
    "NeuronConductance.__call__": (
        lambda **kw: kc.NeuronConductance(MODEL, "conv2")(**kw),
        dict(inputs=X, filters=[0], n_steps=4)),
    "ablation_scores": (kc.ablation_scores, dict(model=MODEL, inputs=X, layer="conv2")),
    "ablate_until_flip": (kc.ablate_until_flip,
                          dict(model=MODEL, inputs=X, layer="conv2", ranking=RANKING)),
    "Ablator": (kc.Ablator, dict(model=MODEL, layer="conv2")),
    "Ablator.scores": (lambda **kw: kc.Ablator(MODEL, "conv2").scores(**kw), dict(inputs=X)),
    "Ablator.predict": (lambda **kw: kc.Ablator(MODEL, "conv2").predict(**kw),
                        dict(inputs=X, masks=np.zeros((2, 5), bool))),
    "Ablator.until_flip": (lambda **kw: kc.Ablator(MODEL, "conv2").until_flip(**kw),
                           dict(inputs=X, ranking=RANKING)),
    "conductance_over_dataset": (kc.conductance_over_dataset,
                                 dict(model=MODEL, dataset=DATASET, layers="conv2", n_steps=4,
                                      verbose=0)),
    "ConductanceCallback": (_callback, dict(data=X, layers="conv2", n_steps=4)),
    "Attribution.per_filter": (lambda **kw: _attribution().per_filter(**kw),
                               dict(layer="conv2")),
    "Attribution.top_filters": (lambda **kw: _attribution().top_filters(**kw),
                                dict(layer="conv2")),
    "Attribution.relative_delta": (lambda **kw: _attribution().relative_delta(**kw), {}),
    "Attribution.delta_of": (lambda **kw: _attribution().delta_of(**kw),
                             dict(layers=["conv2"])),
    "DatasetConductance.top_filters": (lambda **kw: _over_dataset().top_filters(**kw),
                                       dict(layer="conv2")),
    "DatasetConductance.label_mean": (lambda **kw: _over_dataset().label_mean(**kw),
                                      dict(layer="conv2", label=0)),
    "DatasetConductance.save": (lambda **kw: _with_top().save(**kw),
                                dict(path="result.npz")),
    "load_dataset_result": (kc.load_dataset_result, dict(path="result.npz")),
    "TopExamples.unit": (lambda **kw: _with_top().top["conv2"].unit(**kw), dict(unit=0)),
    "unit_browser": (lambda **kw: kc.unit_browser(**{"result": _with_top(), **kw}),
                     dict(out="browser", model=MODEL)),
    "TensorBoardSink": (kc.TensorBoardSink, dict(log_dir="logs")),
    "CSVSink": (kc.CSVSink, dict(filename="history.csv")),
    "NPZSink": (kc.NPZSink, dict(filename="history.npz")),
    "LogsSink": (kc.LogsSink, {}),
    "split_model": (kc.split_model, dict(model=MODEL, layers="conv2")),
    "list_units": (kc.list_units, dict(model=MODEL)),
    "strip_softmax": (kc.strip_softmax, dict(model=MODEL)),
    "make_rule": (kc.make_rule, dict(method="trapezoid", n_steps=4)),
    "next_token": (kc.next_token, dict(token=3)),
    "logit_difference": (kc.logit_difference, dict(token=3, other=4)),
    "continuation": (kc.continuation, dict(tokens=[3, 4])),
}


def _bad_values(arg):
    """(value, error type) that the declaration of ``arg`` rules out."""
    if arg.kind == "int":
        cases = [(2.5, TypeError), ("3", TypeError), (True, TypeError),
                 (int(arg.low) - 1, ValueError)]
        if arg.high is not None:
            cases.append((int(arg.high) + 1, ValueError))
        return cases + ([] if arg.none else [(None, TypeError)])
    if arg.kind == "number":
        return [("x", TypeError), (math.nan, ValueError), (arg.low - 1.0, ValueError)]
    if arg.kind == "choice":
        return [("no-such-choice", ValueError)]
    if arg.kind == "bool":
        return [("yes", TypeError), (1, TypeError)]
    if arg.kind in ("text", "path"):
        return [(3, TypeError), ("", ValueError)]
    return []


def _shown(value) -> str:
    return repr(value)


def _default(entry, name):
    return inspect.signature(arguments.entry_points()[entry]).parameters[name].default


# None is valid where the entry point's own default is None (a per-call
# override that keeps the explainer's setting).
SCALAR = [(name, entry, value, error)
          for name, arg in ARGUMENTS.items() for entry in arguments.takes(name)
          for value, error in _bad_values(arg)
          if not (value is None and _default(entry, name) is None)]

# Arguments whose validity depends on the model: (bad value, error type,
# text of the message) for every entry point that takes them. Keywords in a
# case's dict are added to the call (the context the value is judged in).
MODEL_CASES = {
    "model": [("model.keras", TypeError, "Received: model='model.keras'")],
    "inputs": [(np.full((2, 8, 8, 2), "a"), TypeError, "`inputs` must be numeric"),
               (X[..., 0], ValueError, "`inputs` must have shape (batch, 8, 8, 2)"),
               ([X, X], ValueError, "`inputs` must be one array of examples")],
    "data": [(np.full((2, 8, 8, 2), "a"), TypeError, "`data` must be numeric"),
             (X[:, :7], ValueError, "`data` must have shape (batch, 8, 8, 2)"),
             ([X[0], X[1]], ValueError, "`data` must be one array of examples"),
             (X[:0], ValueError, "`data` holds no examples"),
             (np.where(X > 2, np.nan, X), ValueError, "`data` contains"),
             (tf.data.Dataset.from_tensor_slices(X), ValueError, "`data` must be a batched"),
             ((X, np.array(["cat", "dog"])), TypeError, "`data` must be a source of numeric")],
    "dataset": [(X, TypeError, "`dataset` must be a batched tf.data.Dataset"),
                (tf.data.Dataset.from_tensor_slices(X), ValueError,
                 "`dataset` must be a batched dataset"),
                (tf.data.Dataset.from_tensor_slices((X, np.array(["a", "b"]))).batch(2),
                 TypeError, "`dataset` must be a source of numeric labels")],
    # Result objects are mappings: an unknown layer is a KeyError there.
    "layers": [("conv9", (ValueError, KeyError), "No such layer: 'conv9'"),
               (3, TypeError, "Received: layers=3"), ([], ValueError, "Received: layers=[]")],
    "layer": [("conv9", (ValueError, KeyError), "No such layer: 'conv9'"),
              (3, TypeError, "layer=3")],
    "target": [(7, ValueError, "`target` is out of range"),
               (lambda o: o, ValueError, "`target` must be a callable that returns one score")],
    "baselines": [("black", TypeError, "Received: baselines='black'"),
                  (np.zeros((7, 7, 2)), ValueError, "`baselines` with shape (7, 7, 2)")],
    "output": [("nope", ValueError, "No such output: output='nope'")],
    "start_layer": [("conv9", ValueError, "No such layer: 'conv9'")],
    "interpolate": [("z", ValueError, "No such model input in `interpolate`: 'z'")],
    "channel_axis": [(5, ValueError, "Received: channel_axis=5"),
                     (0, ValueError, "Received: channel_axis=0"),
                     (1.5, TypeError, "Received: channel_axis=1.5")],
    "filters": [([7], ValueError, "`filters` must be"), ([0.5], TypeError, "`filters` must be")],
    "label": [(9, ValueError, "label=9")],
    "value": [("one", ValueError, "'one'")],
    "ranking": [(np.array([[0, 0], [1, 2]]), ValueError, "`ranking`"),
                (np.array([9]), ValueError, "`ranking` must be")],
    "masks": [(np.zeros((2, 4), bool), ValueError, "`masks`")],
    "strategy": [("mirrored", TypeError, "Received: strategy='mirrored'")],
    "on": [("train_end", ValueError, "Received: on='train_end'")],
    "example_names": [([1, 2], TypeError, "Received: example_names=[1, 2]")],
    "pixels": [(np.zeros((2, 8, 8, 2), "uint8"), ValueError, "Received: pixels of shape (2, 8, 8, 2)"),
               (np.full((2, 8, 8, 3), "a"), TypeError, "Received: pixels of dtype <U1")],
    "follow": [([0.5], TypeError, "Received: follow=[0.5]"),
               ({"conv9": [0]}, ValueError, "Received: follow={'conv9': [0]}"),
               ([9], ValueError, "follow with [9] for 'conv2'")],
    "sinks": [(["logs"], TypeError, "Received: sinks holding ['logs']")],
    "token": [(3.5, TypeError, "3.5")],
    "other": [(3.5, TypeError, "3.5")],
    "tokens": [([], ValueError, "`tokens`")],
    "position": [(1.5, TypeError, "1.5")],
    "start": [(1.5, TypeError, "1.5")],
    "result": [(3, TypeError, "Received: result=3"),
               ("missing.npz", FileNotFoundError, "No such result file: 'missing.npz'")],
    "vocabulary": [("abc", TypeError, "Received: vocabulary='abc'"),
                   ([], ValueError, "Received: vocabulary=[]")],
    "class_names": [([0, 1], TypeError, "Received: class_names=[0, 1]")],
    "label_names": [([0, 1], TypeError, "Received: label_names=[0, 1]")],
}

# Entry point x model argument pairs where the argument is not the one
# judged (said why), e.g. ``value`` needs ``value="baseline"`` for
# ``baselines`` to matter.
CONTEXT = {
    ("baselines", "ablation_scores"): dict(value="baseline"),
    ("baselines", "ablate_until_flip"): dict(value="baseline"),
    ("baselines", "Ablator.scores"): dict(value="baseline"),
    ("baselines", "Ablator.predict"): dict(value="baseline"),
    ("baselines", "Ablator.until_flip"): dict(value="baseline"),
}
NOT_APPLICABLE = {
    # ``target`` of a dataset: an int within the outputs (7 is out of range)
    # or a callable; the callable case applies everywhere.
}

MODEL_COMBOS = [(name, entry, value, error, text)
                for name, cases in MODEL_CASES.items() for entry in arguments.takes(name)
                for value, error, text in cases]


def _call(entry, overrides):
    fn, valid = CALLS[entry]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(**{**valid, **overrides})


def test_every_parameter_of_every_entry_point_is_declared():
    undeclared = {e: [p for p in arguments.parameters(f) if p not in ARGUMENTS]
                  for e, f in arguments.entry_points().items()}
    assert {e: ps for e, ps in undeclared.items() if ps} == {}


def test_every_entry_point_has_a_call_and_every_model_argument_a_case():
    assert set(arguments.entry_points()) == set(CALLS)
    model_args = {n for n, a in ARGUMENTS.items() if a.kind == "model" and arguments.takes(n)}
    assert model_args - set(MODEL_CASES) == set()


@pytest.mark.parametrize("name,entry,value,error", SCALAR,
                         ids=[f"{n}-{e}-{v!r}" for n, e, v, _ in SCALAR])
def test_declared_range(name, entry, value, error):
    with pytest.raises(error) as info:
        _call(entry, {name: value})
    text = str(info.value)
    assert f"`{name}`" in text and _shown(value) in text, text
    assert "Received" in text, text


@pytest.mark.parametrize("name,entry,value,error,text", MODEL_COMBOS,
                         ids=[f"{n}-{e}-{i}" for i, (n, e, *_) in enumerate(MODEL_COMBOS)])
def test_model_dependent(name, entry, value, error, text):
    context = CONTEXT.get((name, entry), {})
    with pytest.raises(error) as info:
        _call(entry, {**context, name: value})
    assert text in str(info.value), str(info.value)


def test_count(capsys):
    total = len(SCALAR) + len(MODEL_COMBOS)
    with capsys.disabled():
        print(f"\nvocabulary cases: {len(SCALAR)} declared-range + {len(MODEL_COMBOS)} "
              f"model-dependent = {total}, over {len(CALLS)} entry points and "
              f"{len(ARGUMENTS)} arguments")
    assert total > 300


# -- the cases the issue names, beyond the generated ones ------------------------

START_AFTER = ["conductance", "measures", "internal_influence", "gradient_x_activation",
               "activation", "Conductance", "neuron_conductance", "ablation_scores",
               "conductance_over_dataset", "ConductanceCallback"]


@pytest.mark.parametrize("entry", START_AFTER)
def test_start_layer_after_the_explained_layer_is_refused(entry):
    fn, valid = CALLS[entry]
    layer = "layer" if "layer" in valid else "layers"
    with pytest.raises(ValueError) as info:
        _call(entry, {layer: "conv1", "start_layer": "conv2"})
    text = str(info.value)
    assert "`start_layer` must be a layer that comes before every explained unit" in text
    assert "Received: start_layer='conv2'" in text and "['conv1']" in text


def test_fractional_and_out_of_vocabulary_token_ids_are_refused():
    model = text_cnn()
    ids = np.random.default_rng(0).integers(0, 50, size=(2, 12)).astype("float32")
    ids[1, 4] = 3.7
    with pytest.raises(ValueError, match=r"`inputs` must be integral token ids in 0\.\.49 "
                       r"\(they feed the Embedding 'embedding' of 50 rows\)\. Received: inputs "
                       r"with the fractional value 3\.7\d* at index \(1, 4\)"):
        kc.conductance(model, ids, "concat", start_layer="embedding")
    ids = np.zeros((2, 12), "int32")
    ids[0, 0] = 50
    with pytest.raises(ValueError, match=r"Received: inputs with the id 50 at index \(0, 0\)"):
        kc.conductance(model, ids, "concat", start_layer="embedding")


@pytest.mark.parametrize("k,error", [(-1, ValueError), (0, ValueError), (99, ValueError),
                                     (2.0, TypeError)])
def test_k_within_the_filters(k, error):
    with pytest.raises(error, match=rf"`k` must be an int in 1\.\.5\. Received: k={k!r}"):
        _attribution().top_filters("conv2", k=k)
    with pytest.raises(error, match=rf"`k` must be an int in 1\.\.5\. Received: k={k!r}"):
        _over_dataset().top_filters("conv2", k=k)
    assert _attribution().top_filters("conv2", k=5).shape == (2, 5)


def test_channel_axis_within_the_rank_does_not_wrap():
    with pytest.raises(ValueError, match=r"`channel_axis` must be a non-batch axis of 'conv2', "
                       r"whose output has rank 4 \(batch, 4, 4, 5\): -3\.\.-1 or 1\.\.3\. "
                       r"Received: channel_axis=5"):
        _attribution().per_filter("conv2", channel_axis=5)
    np.testing.assert_array_equal(_attribution().per_filter("conv2", channel_axis=-1),
                                  _attribution().per_filter("conv2", channel_axis=3))


def test_max_filters_must_be_an_int_within_the_ranking():
    for value, error in [(2.5, TypeError), (0, ValueError), (6, ValueError)]:
        with pytest.raises(error, match=rf"`max_filters` must be an int in 1\.\.5 or None\. "
                           rf"Received: max_filters={value!r}"):
            kc.ablate_until_flip(MODEL, X, "conv2", RANKING, max_filters=value)


@pytest.mark.parametrize("data,text", [
    (X[0], r"`data` must have shape \(batch, 8, 8, 2\)"),          # no batch axis
    (X[..., :1], r"`data` must have shape \(batch, 8, 8, 2\)"),    # wrong channels
    ([X[0], X[1]], r"`data` must be one array of examples: model 'small_convnet' has one "
                   r"input\. Received: a list of 2 arrays"),
])
def test_callback_probe_set_errors_name_data(data, text):
    with pytest.raises(ValueError, match=text):
        _callback(data=data, layers="conv2", n_steps=4)


def test_degenerate_but_valid_input_warns():
    with pytest.warns(UserWarning, match=r"F\(x\) = F\(x'\) for 2 of 2 examples"):
        kc.conductance(MODEL, X, "conv2", baselines=X, n_steps=4)


def test_the_table_page_is_the_table():
    """docs/arguments.md shows the vocabulary as the code declares it."""
    import pathlib

    page = (pathlib.Path(__file__).parents[1] / "docs" / "arguments.md").read_text()
    assert arguments.markdown_table() in page


def test_a_bad_setting_never_finds_a_cached_explainer():
    """Compile-relevant settings are checked before they become cache keys:
    "yes" does not find the explainer built for True."""
    model = keras.Sequential([keras.Input((8, 8, 2)), keras.layers.Conv2D(3, 3, name="conv2"),
                              keras.layers.Flatten(), keras.layers.Dense(3, activation="softmax")])
    kc.conductance(model, X, "conv2", pre_softmax=True, n_steps=4)
    kc.neuron_conductance(model, X, "conv2", [0], pre_softmax=True, n_steps=4)
    kc.ablation_scores(model, X, "conv2", pre_softmax=True)
    for call in (lambda: kc.conductance(model, X, "conv2", pre_softmax="yes", n_steps=4),
                 lambda: kc.neuron_conductance(model, X, "conv2", [0], pre_softmax="yes"),
                 lambda: kc.ablation_scores(model, X, "conv2", pre_softmax="yes")):
        with pytest.raises(TypeError, match=r"`pre_softmax` must be True or False\. "
                                            r"Received: pre_softmax='yes'"):
            call()


def test_token_ids_are_checked_in_baselines_and_in_later_dataset_batches():
    model = text_cnn()
    ids = np.random.default_rng(0).integers(0, 50, size=(4, 12)).astype("int32")
    with pytest.raises(ValueError, match=r"`baselines` must be integral token ids in 0\.\.49.*"
                                         r"Received: baselines with the id 99"):
        kc.conductance(model, ids[:2], "concat", start_layer="embedding", baselines=99)
    later = ids.astype("float32")
    later[3, 2] = 7.5  # the second batch: past the host's check of the first
    dataset = tf.data.Dataset.from_tensor_slices(later).batch(2)
    with pytest.raises(ValueError, match=r"Batch 2 of `dataset` has 1 token ids that are not "
                                         r"whole numbers or lie beyond the vocabulary"):
        kc.conductance_over_dataset(model, dataset, "concat", start_layer="embedding",
                                    n_steps=4, verbose=0)
