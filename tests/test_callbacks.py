"""ConductanceCallback in real fit/evaluate runs: what it writes to
TensorBoard, CSV, NPZ and the Keras logs equals kc.conductance of the probe
set under the weights of that moment."""

import importlib.util
import os
import signal

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing import event_accumulator

import keras_conductance as kc
from keras_conductance import interrupts
from keras_conductance.callbacks import ConductanceCallback
from keras_conductance.callbacks import _images

from models import small_convnet

LAYERS = ["conv1", "conv2"]
N_STEPS = 16
PROBE = 16


@pytest.fixture(autouse=True)
def _quiet_convergence_warnings():
    # A short path on a random conv net: the explainer's advice is expected.
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Completeness error")
        yield


@pytest.fixture
def model():
    m = small_convnet()
    m.compile(keras.optimizers.SGD(0.1),
              keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return m


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(48, 8, 8, 2)).astype("float32")
    y = rng.integers(0, 3, 48)
    return x, y


class Snapshot(keras.callbacks.Callback):
    """Keeps the weights (and the explainer's trace count) at each epoch end."""

    def __init__(self, watched=None):
        super().__init__()
        self.weights, self.traces, self.watched = [], [], watched

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append(self.model.get_weights())
        if self.watched is not None:
            self.traces.append(self.watched.explainer.tracing_count)


def _expected(model, weights, x, **kwargs):
    """Per-filter means and mean |delta| of kc.conductance under ``weights``."""
    model.set_weights(weights)
    attr = kc.conductance(model, x, LAYERS, n_steps=N_STEPS, verbose=0, **kwargs)
    return ({n: attr.per_filter(n).mean(0) for n in LAYERS},
            {n: float(np.abs(attr.delta[n]).mean()) for n in LAYERS}, attr)


def _read_events(folder):
    acc = event_accumulator.EventAccumulator(
        folder, size_guidance={event_accumulator.TENSORS: 0}
    )
    acc.Reload()
    return {tag: [(e.step, tf.make_ndarray(e.tensor_proto)) for e in acc.Tensors(tag)]
            for tag in acc.Tags()["tensors"]}


def _assert_record(record, means, deltas):
    for n in LAYERS:
        np.testing.assert_allclose(record["conductance"][n], means[n], rtol=1e-6, atol=1e-9)
        assert record["abs_delta"][n] == pytest.approx(deltas[n], rel=1e-6)


def test_fit_with_validation_writes_tensorboard_csv_and_logs(model, data, tmp_path):
    x, y = data
    cb = ConductanceCallback(x[:PROBE], LAYERS, n_steps=N_STEPS, log_dir=str(tmp_path),
                             filename=str(tmp_path / "history.csv"), top_k=2)
    snap = Snapshot(watched=cb)
    csv_logger = keras.callbacks.CSVLogger(str(tmp_path / "keras.csv"))
    history = model.fit(x, y, batch_size=16, epochs=3, validation_data=(x[:16], y[:16]),
                        callbacks=[cb, snap, csv_logger], verbose=0)

    # One explanation per epoch (at validation; reused at epoch end), and
    # no retracing after the first.
    assert [r["epoch"] for r in cb.history] == [0, 1, 2]
    assert [r["iteration"] for r in cb.history] == [3, 6, 9]
    assert snap.traces[0] == snap.traces[-1]
    expected = [_expected(model, w, x[:PROBE]) for w in snap.weights]
    for record, (means, deltas, _) in zip(cb.history, expected):
        _assert_record(record, means, deltas)

    # Keras' History and CSVLogger got the summary scalars.
    keras_csv = pd.read_csv(tmp_path / "keras.csv")
    for n in LAYERS:
        maxima = [float(m[n].max()) for m, _, _ in expected]
        np.testing.assert_allclose(history.history[f"conductance_{n}_max"], maxima, rtol=1e-6)
        np.testing.assert_allclose(keras_csv[f"conductance_{n}_max"], maxima, rtol=1e-6)
        np.testing.assert_allclose(history.history[f"conductance_{n}_abs_delta"],
                                   [d[n] for _, d, _ in expected], rtol=1e-6)

    # The CSV history, read back with pandas.
    table = pd.read_csv(tmp_path / "history.csv")
    assert list(table.columns) == ["epoch", "iteration", "layer", "filter", "conductance",
                                   "abs_delta"]
    for epoch, (means, deltas, _) in enumerate(expected):
        for n in LAYERS:
            rows = table[(table.epoch == epoch) & (table.layer == n)].sort_values("filter")
            np.testing.assert_array_equal(rows["filter"], np.arange(means[n].size))
            np.testing.assert_allclose(rows.conductance, means[n], rtol=1e-6, atol=1e-9)
            np.testing.assert_allclose(rows.abs_delta, deltas[n], rtol=1e-6)

    # TensorBoard, read back with tensorboard's own event reader.
    events = _read_events(str(tmp_path / "conductance"))
    for n in LAYERS:
        histograms = events[f"conductance/{n}"]
        # The epoch axis of Keras' own epoch_* scalars.
        assert [step for step, _ in histograms] == [0, 1, 2]
        for (_, buckets), (means, _, _) in zip(histograms, expected):
            assert buckets[:, 2].sum() == means[n].size  # one count per filter
            assert buckets[0, 0] == pytest.approx(means[n].min(), rel=1e-6)
            assert buckets[-1, 1] == pytest.approx(means[n].max(), rel=1e-6)
        deltas = events[f"conductance/{n}/abs_delta"]
        np.testing.assert_allclose([v for _, v in deltas], [d[n] for _, d, _ in expected],
                                   rtol=1e-6)
        # The top 2 of the first record are followed at every record: whole
        # curves, no gaps; no other filter gets a curve.
        followed = np.argsort(-expected[0][0][n], kind="stable")[:2].tolist()
        assert cb.history[-1]["followed"][n] == followed
        curves = sorted(t for t in events if t.startswith(f"conductance/{n}/filter_"))
        assert curves == sorted(f"conductance/{n}/filter_{j}" for j in followed)
        for j in followed:
            logged = dict(events[f"conductance/{n}/filter_{j}"])
            assert sorted(logged) == [0, 1, 2]
            for step, (means, _, _) in zip([0, 1, 2], expected):
                assert logged[step] == pytest.approx(means[n][j], rel=1e-6)
        # The labelled heatmap (these inputs are not images), on the same
        # steps; tests/test_callback_images.py checks what it draws.
        assert [step for step, _ in events[f"conductance/{n}/heatmap"]] == [0, 1, 2]
    # The optimizer's iteration count, at the same steps.
    assert [(s, int(v)) for s, v in events["conductance/iteration"]] == [(0, 3), (1, 6), (2, 9)]


def test_evaluate_records_npz_and_passes_logs_on(model, data, tmp_path):
    x, y = data
    path = tmp_path / "history.npz"
    cb = ConductanceCallback(x[:PROBE], LAYERS, n_steps=N_STEPS, filename=str(path))
    seen = {}
    after = keras.callbacks.LambdaCallback(on_test_end=lambda logs: seen.update(logs))
    model.evaluate(x, y, callbacks=[cb, after], verbose=0)
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    model.evaluate(x, y, callbacks=[cb, after], verbose=0)

    assert [r["epoch"] for r in cb.history] == [-1, -1]
    assert [r["iteration"] for r in cb.history] == [0, 3]
    means, deltas, _ = _expected(model, model.get_weights(), x[:PROBE])
    _assert_record(cb.history[-1], means, deltas)
    assert seen["conductance_conv2_max"] == pytest.approx(float(means["conv2"].max()), rel=1e-6)
    assert "loss" in seen

    with np.load(path) as saved:
        np.testing.assert_array_equal(saved["epoch"], [-1, -1])
        np.testing.assert_array_equal(saved["iteration"], [0, 3])
        np.testing.assert_array_equal(saved["layers"], LAYERS)
        for n in LAYERS:
            np.testing.assert_allclose(saved[f"conductance/{n}"], cb.history_array(n))
            np.testing.assert_allclose(saved[f"abs_delta/{n}"][-1], deltas[n], rtol=1e-6)


def test_dataset_probe_freq_and_label_target(model, data, tmp_path):
    x, y = data
    probe = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)  # 2 batches taken
    cb = ConductanceCallback(probe, LAYERS, target="label", steps=2, freq=2, n_steps=N_STEPS,
                             on="epoch_end", filename=str(tmp_path / "h.csv"),
                             log_dir=str(tmp_path), summary_step="epoch")
    snap = Snapshot()
    csv_logger = keras.callbacks.CSVLogger(str(tmp_path / "keras.csv"))
    model.fit(x, y, batch_size=24, epochs=4, callbacks=[cb, snap, csv_logger], verbose=0)

    assert [r["epoch"] for r in cb.history] == [1, 3]
    for record, weights in zip(cb.history, [snap.weights[1], snap.weights[3]]):
        means, deltas, _ = _expected(model, weights, x[:16], target=y[:16])
        _assert_record(record, means, deltas)
    # Keras' CSV keeps stable columns: NaN in the epochs freq skips.
    logged = pd.read_csv(tmp_path / "keras.csv")["conductance_conv1_max"]
    assert logged.isna().tolist() == [True, False, True, False]
    assert pd.read_csv(tmp_path / "h.csv").epoch.unique().tolist() == [1, 3]
    events = _read_events(str(tmp_path / "conductance"))
    assert [step for step, _ in events["conductance/conv1"]] == [1, 3]


class Interrupt(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 1:
            raise KeyboardInterrupt


@pytest.mark.parametrize("suffix", [".csv", ".npz"])
def test_interrupted_fit_leaves_readable_logs(model, data, tmp_path, suffix):
    x, y = data
    path = tmp_path / f"history{suffix}"
    cb = ConductanceCallback(x[:PROBE], LAYERS, n_steps=N_STEPS, log_dir=str(tmp_path),
                             filename=str(path))
    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, batch_size=16, epochs=3, callbacks=[cb, Interrupt()], verbose=0)
    means, deltas, _ = _expected(model, model.get_weights(), x[:PROBE])

    events = _read_events(str(tmp_path / "conductance"))  # writer never closed
    assert [step for step, _ in events["conductance/conv2/abs_delta"]] == [0]  # epoch 0
    assert float(events["conductance/conv2/abs_delta"][0][1]) == pytest.approx(deltas["conv2"],
                                                                              rel=1e-6)
    if suffix == ".csv":
        saved = pd.read_csv(path)
        np.testing.assert_allclose(saved[saved.layer == "conv2"].conductance, means["conv2"],
                                   rtol=1e-6)
    else:
        with np.load(path) as saved:
            np.testing.assert_allclose(saved["conductance/conv2"], [means["conv2"]], rtol=1e-6)

    # Resuming appends to what is there.
    again = ConductanceCallback(x[:PROBE], LAYERS, n_steps=N_STEPS, filename=str(path),
                                append=True)
    model.fit(x, y, batch_size=16, epochs=1, callbacks=[again], verbose=0)
    if suffix == ".csv":
        assert pd.read_csv(path).epoch.tolist() == [0] * 9 + [0] * 9
    else:
        with np.load(path) as saved:
            assert saved["conductance/conv1"].shape == (2, 4)


def test_a_record_is_written_whole_when_ctrl_c_arrives(tmp_path):
    # As in a terminal: a test runner started in the background (`pytest &`)
    # inherits SIGINT ignored, and then Ctrl-C could not be simulated.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        path = tmp_path / "f.txt"
        with pytest.raises(KeyboardInterrupt):
            with interrupts.deferred():
                os.kill(os.getpid(), signal.SIGINT)
                path.write_text("whole record\n")
        assert path.read_text() == "whole record\n"
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, previous)


def test_settings_are_validated_in_the_constructor(data):
    x, _ = data
    for kwargs, message in [
        (dict(on="batch_end"), r"`on` must be one of \['epoch_end', 'test_end'\] or a list of "
                               r"them\. Received: on='batch_end'"),
        (dict(freq=0), r"`freq` must be an int >= 1\. Received: freq=0"),
        (dict(top_k=-1), r"`top_k` must be an int >= 1\. Received: top_k=-1"),
        (dict(filename="h.json"), r"`filename` must be a path ending in one of \['.csv', '.npz'\]"),
        (dict(target="labels"), r"`target` must be None, 'label'.*Received: target='labels'"),
        (dict(summary_step="batch"), r"`summary_step` must be one of 'epoch', 'iterations'\. "
                                     r"Received: summary_step='batch'"),
    ]:
        with pytest.raises(ValueError, match=message):
            ConductanceCallback(x, "conv2", **kwargs)


def test_errors_at_first_use(model, data, monkeypatch, tmp_path):
    x, y = data
    cb = ConductanceCallback(x[:4], "conv2", target="label", n_steps=4)
    with pytest.raises(ValueError, match="holds no labels"):
        model.evaluate(x, y, callbacks=[cb], verbose=0)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    cb = ConductanceCallback(x[:4], "conv2", log_dir=str(tmp_path))
    with pytest.raises(ImportError, match=r"keras-conductance\[tensorboard\]"):
        model.fit(x, y, epochs=1, callbacks=[cb], verbose=0)


def test_plain_heatmap_colours():
    # The matrix drawn without matplotlib.
    image = _images.plain_heatmap(np.array([[1.0, -0.5], [0.0, 0.25]]))  # B=2, C=2
    cell = _images.PLAIN_PIXELS // 2
    assert image.shape == (2 * cell, 2 * cell, 3)
    corners = image[::cell, ::cell]  # [filter, example]
    # One convention everywhere (RdBu): blue positive, red negative.
    np.testing.assert_array_equal(corners[0, 0], [0, 0, 255])        # +max: blue
    np.testing.assert_array_equal(corners[1, 0], [255, 127, 127])    # -0.5: light red
    np.testing.assert_array_equal(corners[0, 1], [255, 255, 255])    # 0: white
    np.testing.assert_array_equal(corners[1, 1], [191, 191, 255])    # 0.25: pale blue


def test_history_file_folder_is_created(model, data, tmp_path):
    x, y = data
    path = tmp_path / "new" / "folder" / "history.csv"
    callback = ConductanceCallback(x[:PROBE], "conv2", n_steps=N_STEPS, filename=str(path))
    model.evaluate(x, y, callbacks=[callback], verbose=0)
    table = pd.read_csv(path)
    expected = kc.conductance(model, x[:PROBE], "conv2", n_steps=N_STEPS).per_filter("conv2")
    np.testing.assert_allclose(table.conductance, expected.mean(axis=0), rtol=1e-5, atol=1e-7)


class EpochCounter(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.epochs = 0

    def on_epoch_end(self, epoch, logs=None):
        self.epochs += 1


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write to read-only folders")
def test_an_unwritable_log_dir_fails_before_the_first_epoch(model, data, tmp_path):
    x, y = data
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    counter = EpochCounter()
    cb = ConductanceCallback(x[:4], "conv2", log_dir=str(locked / "logs"))
    with pytest.raises(ValueError, match=r"`log_dir` cannot be written: .*locked"):
        model.fit(x, y, epochs=2, callbacks=[cb, counter], verbose=0)
    assert counter.epochs == 0


def test_bad_settings_fail_before_the_first_epoch(model, data, tmp_path):
    x, y = data
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    counter = EpochCounter()
    for cb, error, message in [
        (ConductanceCallback(x[:4], "conv2", log_dir=str(not_a_folder / "logs")),
         ValueError, r"`log_dir` cannot be written"),
        (ConductanceCallback(x[:4], "conv2", filename=str(not_a_folder / "h.csv")),
         ValueError, r"`filename` cannot be written"),
        (ConductanceCallback(x[:4], "conv9"), ValueError, r"No such layer: 'conv9'"),
        (ConductanceCallback(x[:4, :5], "conv2"), ValueError, r"must have shape \(batch, 8, 8, 2\)"),
        (ConductanceCallback(x[:4], "conv2", target=7), ValueError, r"out of range|target"),
    ]:
        with pytest.raises(error, match=message):
            model.fit(x, y, epochs=1, callbacks=[cb, counter], verbose=0)
    assert counter.epochs == 0  # nothing trained before any of these errors


def test_an_error_in_a_later_record_keeps_what_was_written(model, data, tmp_path):
    x, y = data
    csv = tmp_path / "history.csv"
    cb = ConductanceCallback(x[:4], "conv2", n_steps=4, log_dir=str(tmp_path / "tb"),
                             filename=str(csv))

    class Broken:
        """Stands in for the explainer from epoch 2 on: it fails."""

        def __init__(self, model):
            self.model = model

        def __call__(self, *args, **kwargs):
            raise RuntimeError("boom in epoch 2")

    class BreakAfterFirstEpoch(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                cb.explainer = Broken(self.model)

    with pytest.raises(RuntimeError, match="boom in epoch 2"):
        model.fit(x, y, epochs=3, callbacks=[BreakAfterFirstEpoch(), cb], verbose=0)
    assert len(cb.history) == 1
    rows = pd.read_csv(csv)
    assert sorted(set(rows["epoch"])) == [0] and len(rows) == 5  # conv2's 5 filters
    events = _read_events(str(tmp_path / "tb" / cb.name))
    steps = [step for step, _ in events["conductance/conv2/abs_delta"]]
    assert steps == [0]  # the first record only
    board = [s for s in cb._get_sinks() if isinstance(s, kc.TensorBoardSink)]
    assert board and board[0]._writers == {}  # closed, its events on disk


def test_evaluate_after_fit_writes_its_own_run_not_a_duplicate_step(model, data, tmp_path):
    x, y = data
    cb = ConductanceCallback(x[:4], "conv2", n_steps=4, log_dir=str(tmp_path))
    keras_tb = keras.callbacks.TensorBoard(str(tmp_path))
    model.fit(x, y, batch_size=16, epochs=3, callbacks=[cb, keras_tb], verbose=0)
    model.evaluate(x, y, callbacks=[cb], verbose=0)
    train = _read_events(str(tmp_path / "conductance"))
    evaluation = _read_events(str(tmp_path / "conductance_evaluation"))
    # One point per epoch in the training run, on Keras' epoch axis ...
    assert [s for s, _ in train["conductance/conv2/abs_delta"]] == [0, 1, 2]
    keras_steps = [s for s, _ in _read_events(str(tmp_path / "train"))["epoch_loss"]]
    assert keras_steps == [0, 1, 2]
    # ... and evaluate's record in its own run, at the last epoch trained.
    assert [s for s, _ in evaluation["conductance/conv2/abs_delta"]] == [2]
    assert [int(v) for _, v in evaluation["conductance/iteration"]] == [9]
