"""The bad-input catalogue: every public entry point x every kind of bad
input gives one clear error of the right type that names the argument (or,
for valid but degenerate input, a warning) — never a traceback from
TensorFlow's internals, never a silent wrong number.

The table below is the catalogue; ``CASES`` x ``ENTRY_POINTS`` runs every
combination that applies. The count is printed by the last test.
"""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_conductance as kc
from models import small_convnet

X = np.random.default_rng(0).normal(size=(2, 8, 8, 2)).astype("float32")
Y = np.array([0, 2])


def _dataset(inputs, labels=None, baselines=None):
    labels = Y[: len(inputs)] if labels is None else labels
    return tf.data.Dataset.from_tensor_slices((inputs, labels)).batch(2)


def _baseline_value(kw):
    return dict(kw, value="baseline") if "baselines" in kw else kw


class Callback:
    """ConductanceCallback run by ``model.evaluate`` (errors surface at the
    start of evaluation, before any batch)."""

    @staticmethod
    def run(model, inputs, layers, **kw):
        cb = kc.ConductanceCallback(inputs, layers, **kw)
        model.compile(loss="sparse_categorical_crossentropy")
        model.evaluate(X, Y, callbacks=[cb], verbose=0)


# name -> (callable(model, inputs, layers, **kw), accepted keywords)
COMMON = {"target", "baselines", "batch_size"}
PATH = COMMON | {"n_steps", "method"}
ENTRY_POINTS = {
    "conductance": (kc.conductance, PATH),
    "measures": (kc.measures, PATH),
    "internal_influence": (kc.internal_influence, PATH),
    "gradient_x_activation": (kc.gradient_x_activation, COMMON),
    "activation": (kc.activation, COMMON),
    "Conductance.explain": (
        lambda m, x, layers, **kw: kc.Conductance(m, layers).explain(x, **kw), PATH),
    "neuron_conductance": (
        lambda m, x, layers, **kw: kc.neuron_conductance(m, x, layers, [0], **kw), PATH),
    # Baselines matter to ablation only with value="baseline".
    "ablation_scores": (
        lambda m, x, layers, **kw: kc.ablation_scores(m, x, layers, **_baseline_value(kw)),
        COMMON),
    "ablate_until_flip": (
        lambda m, x, layers, **kw: kc.ablate_until_flip(
            m, x, layers, np.tile(np.arange(4), (len(x), 1)), **_baseline_value(kw)),
        {"baselines", "batch_size"}),
    "conductance_over_dataset": (
        lambda m, x, layers, labels=None, **kw: kc.conductance_over_dataset(
            m, _dataset(x, labels), layers, verbose=0, **kw), PATH | {"labels"}),
    "ConductanceCallback": (Callback.run, PATH),
    "split_model": (lambda m, x, layers: kc.split_model(m, layers), set()),
}

E, T, W = ValueError, TypeError, UserWarning
# (case, keyword overrides, expected type, message regex). "inputs"/"model"/
# "layers" replace the call's positional arguments.
CASES = [
    ("inputs: strings", dict(inputs=np.full((2, 8, 8, 2), "a")), T, r"`inputs`.*numeric"),
    ("inputs: wrong shape", dict(inputs=X[..., 0]), E, r"`inputs` must have shape \(batch, 8, 8, 2\)"),
    ("inputs: wrong rank", dict(inputs=X[0]), E, r"`inputs` must have shape"),
    ("inputs: dict with unknown key", dict(inputs={"pixels": X}), E, r"`inputs` has keys \['pixels'\]"),
    ("inputs: empty batch", dict(inputs=X[:0]), E, r"`inputs` holds no examples"),
    ("inputs: NaN", dict(inputs=np.where(np.arange(X.size).reshape(X.shape) == 5, np.nan, X)),
     E, r"`inputs` contains 1 NaN or Inf"),
    ("inputs: Inf", dict(inputs=np.where(np.arange(X.size).reshape(X.shape) == 5, np.inf, X)),
     E, r"`inputs` contains 1 NaN or Inf"),
    ("inputs: a Dataset", dict(inputs=tf.data.Dataset.from_tensor_slices(X)), T, r"not a tf.data.Dataset"),
    ("baselines: Inf", dict(baselines=np.full((8, 8, 2), np.inf, "float32")), E, r"`baselines` contains"),
    ("baselines: wrong shape", dict(baselines=np.zeros((7, 7, 2))), E, r"`baselines` with shape \(7, 7, 2\)"),
    ("baselines: strings", dict(baselines=np.full((8, 8, 2), "a")), T, r"`baselines` must be None or a numeric array"),
    ("baselines: equal to the inputs", dict(baselines=X), W, r"F\(x\) = F\(x'\)"),
    ("n_steps: 0", dict(n_steps=0), E, r"`n_steps` must be an int in 1\.\.100000\. Received: n_steps=0"),
    ("n_steps: negative", dict(n_steps=-4), E, r"`n_steps` must be an int in 1\.\.100000\. Received: n_steps=-4"),
    ("n_steps: not an int", dict(n_steps=2.5), T, r"`n_steps` must be an int in 1\.\.100000\. Received: n_steps=2\.5"),
    ("n_steps: huge", dict(n_steps=10 ** 7), E, r"Received: n_steps=10000000\. .*50-400 steps are usual"),
    ("batch_size: 0", dict(batch_size=0), E, r"`batch_size` must be an int >= 1 or None\. Received: batch_size=0"),
    ("batch_size: not an int", dict(batch_size="big"), T, r"`batch_size` must be an int >= 1 or None\. Received: batch_size='big'"),
    ("method: unknown", dict(method="simpson"), E, r"`method` must be one of 'trapezoid', 'left', 'right', 'gauss_legendre'\. Received: method='simpson'"),
    ("target: out of range", dict(target=3), E, r"`target` is out of range"),
    ("target: wrong shape", dict(target=np.array([0, 1, 2])), E, r"`target`.*shape"),
    # A string is a mode for datasets and callbacks (ValueError: no such
    # mode) and no valid type elsewhere (TypeError).
    ("target: wrong type", dict(target="cat"), (E, T), r"`?target`?.*'cat'"),
    ("target: callable of the wrong shape", dict(target=lambda out: out), E,
     r"`target` must be a callable that returns one score per example"),
    ("layers: unknown", dict(layers="conv9"), E, r"No such layer: 'conv9'"),
    ("layers: not a name", dict(layers=3), T, r"`layers?` must"),
    ("model: not built", dict(model="unbuilt"), E, r"no known input shape"),
    ("model: not a Keras model", dict(model="string"), T, r"Expected a keras.Model"),
    ("labels: one-hot wider than the outputs", dict(labels=np.eye(5)[[0, 4]], target="label"), E,
     r"labels"),
    ("labels: fractional floats", dict(labels=np.array([0.5, 1.0], "float32"), target="label"), E,
     r"labels"),
]


def _model(which):
    if which == "unbuilt":
        return keras.Sequential([keras.layers.Dense(3)])
    if which == "string":
        return "model.keras"
    return small_convnet()


def _applies(entry, kw):
    _, accepted = ENTRY_POINTS[entry]
    extra = set(kw) - {"inputs", "model", "layers"}
    if entry == "split_model" and "inputs" in kw:
        return False
    if "target" in kw and entry in ("ablate_until_flip", "split_model"):
        return False
    if entry == "ConductanceCallback" and isinstance(kw.get("inputs"), tf.data.Dataset):
        return False  # a dataset is a valid probe set for the callback
    if "model" in kw and entry == "ConductanceCallback":
        return False  # Keras itself hands the callback its (built) model
    if entry == "conductance_over_dataset" and "inputs" in kw:
        shaped = isinstance(kw["inputs"], np.ndarray) and kw["inputs"].ndim == 4 and \
            kw["inputs"].dtype.kind == "f" and len(kw["inputs"]) > 0
        if not shaped:  # a dataset cannot even be built from these
            return False
    return extra <= accepted


COMBOS = [(entry, case) for case in CASES for entry in ENTRY_POINTS if _applies(entry, case[1])]


@pytest.mark.parametrize("entry,case", COMBOS, ids=[f"{e}-{c[0]}" for e, c in COMBOS])
def test_bad_input(entry, case):
    name, kw, expected, pattern = case
    kw = dict(kw)
    fn, _ = ENTRY_POINTS[entry]
    if entry == "ConductanceCallback":  # the probe set obeys the rules of `inputs`, as `data`
        pattern = pattern.replace("`inputs`", "`data`")
    model = _model(kw.pop("model", "good"))
    inputs = kw.pop("inputs", X)
    layers = kw.pop("layers", "conv2")
    if expected is UserWarning:
        with pytest.warns(UserWarning, match=pattern):
            fn(model, inputs, layers, **kw)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(expected, match=pattern):
            fn(model, inputs, layers, **kw)


def test_catalogue_size():
    print(f"\n{len(COMBOS)} bad-input cases over {len(ENTRY_POINTS)} entry points "
          f"and {len(CASES)} kinds of bad input")
    assert len(COMBOS) >= 200


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad_cli")
    small_convnet().save(folder / "model.keras")
    np.save(folder / "x.npy", X)
    bad = {"nan": np.where(np.arange(X.size).reshape(X.shape) == 3, np.nan, X),
           "empty": X[:0], "shape": X[..., 0], "strings": np.full((2, 8, 8, 2), "a")}
    for name, array in bad.items():
        np.save(folder / f"{name}.npy", array)
    return folder


CLI_CASES = [
    ("inputs: NaN", ["--inputs", "nan.npy"], r"`inputs` contains 1 NaN"),
    ("inputs: empty batch", ["--inputs", "empty.npy"], r"no examples|holds no"),
    ("inputs: wrong shape", ["--inputs", "shape.npy"], r"the model expects \(batch, 8, 8, 2\)"),
    ("inputs: strings", ["--inputs", "strings.npy"], r"numeric|dtype"),
    ("n_steps: 0", ["--n-steps", "0"], r"n.steps"),
    ("n_steps: huge", ["--n-steps", "10000000"], r"--n-steps must be an int in 1\.\.100000\. Received: --n-steps=10000000"),
    ("target: out of range", ["--target", "7"], r"`target` is out of range"),
    ("target: not a class", ["--target", "cat"], r"target"),
    ("layers: unknown", ["--layer", "conv9"], r"No such layer: 'conv9'"),
]


@pytest.mark.parametrize("case", CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_bad_cli_input(case, saved_model, capsys, tmp_path):
    from keras_conductance import cli

    name, extra, pattern = case
    args = ["report", str(saved_model / "model.keras"), "--out", str(tmp_path)]
    given = dict(zip(extra[::2], extra[1::2]))
    args += ["--layer", given.pop("--layer", "conv2")]
    args += ["--inputs", str(saved_model / given.pop("--inputs", "x.npy"))]
    for flag, value in given.items():
        args += [flag, value]
    code = None
    try:
        code = cli.main(args)
    except SystemExit as exit_:  # argparse's own errors (a non-int --n-steps)
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2, err
    lines = [line for line in err.splitlines() if "error" in line]
    assert len(lines) == 1 and "Traceback" not in err, err  # one clear line
    import re
    assert re.search(pattern, lines[0]), lines[0]


def test_nan_in_a_later_dataset_batch_stops_the_run():
    x = np.repeat(X, 3, axis=0)
    x[5, 0, 0, 0] = np.nan  # batch 3 of 3 (batches of 2)
    ds = tf.data.Dataset.from_tensor_slices((x, np.zeros(6, int))).batch(2)
    with pytest.raises(ValueError, match=r"Batch 3 of `dataset` has NaN or Inf features in 1 examples"):
        kc.conductance_over_dataset(small_convnet(), ds, "conv2", target="label", verbose=0)
