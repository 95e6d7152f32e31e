"""Each sink of the callback, alone, on records built by hand: what it
writes, read back with the format's own reader."""

import math

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing import event_accumulator

import keras_conductance as kc


def _record(epoch, iteration, scale=1.0, followed=None):
    conductance = {"conv1": scale * np.array([0.5, -1.0, 2.0], np.float32),
                   "block/ffn": scale * np.array([3.0, 0.25], np.float32)}
    return kc.Record(epoch=epoch, iteration=iteration, conductance=conductance,
                     abs_delta={"conv1": 0.125 * scale, "block/ffn": 0.5},
                     followed=followed or {"conv1": [2, 0], "block/ffn": [0]},
                     followed_why="chosen by `follow=`", last_epoch=max(epoch, 1))


FILTERS = {"conv1": 3, "block/ffn": 2}


def test_csv_sink_writes_one_row_per_filter_and_appends(tmp_path):
    path = tmp_path / "sub" / "history.csv"
    sink = kc.CSVSink(path)
    sink.check(FILTERS)
    sink.write(_record(0, 10))
    sink.write(_record(1, 20, scale=2.0))
    table = pd.read_csv(path)
    assert list(table.columns) == ["epoch", "iteration", "layer", "filter", "conductance",
                                   "abs_delta"]
    assert len(table) == 10
    rows = table[(table.epoch == 1) & (table.layer == "conv1")]
    np.testing.assert_array_equal(rows["filter"], [0, 1, 2])
    np.testing.assert_allclose(rows["conductance"], [1.0, -2.0, 4.0])
    np.testing.assert_allclose(rows["abs_delta"], 0.25)
    # A second sink on the same file without append starts it afresh; with
    # append it keeps the rows.
    kc.CSVSink(path).write(_record(5, 50))
    assert sorted(set(pd.read_csv(path).epoch)) == [5]
    kc.CSVSink(path, append=True).write(_record(6, 60))
    assert sorted(set(pd.read_csv(path).epoch)) == [5, 6]


def test_npz_sink_rewrites_whole_arrays_and_refuses_a_mismatched_append(tmp_path):
    path = tmp_path / "history.npz"
    sink = kc.NPZSink(path)
    sink.check(FILTERS)
    sink.write(_record(0, 10))
    sink.write(_record(1, 20, scale=2.0))
    with np.load(path) as saved:
        np.testing.assert_array_equal(saved["epoch"], [0, 1])
        np.testing.assert_array_equal(saved["iteration"], [10, 20])
        assert list(saved["layers"]) == ["conv1", "block/ffn"]
        np.testing.assert_allclose(saved["conductance/conv1"], [[0.5, -1, 2], [1, -2, 4]])
        np.testing.assert_allclose(saved["abs_delta/conv1"], [0.125, 0.25])
    assert [p.name for p in tmp_path.iterdir()] == ["history.npz"]  # no temporary left
    appended = kc.NPZSink(path, append=True)
    appended.write(_record(2, 30))
    with np.load(path) as saved:
        np.testing.assert_array_equal(saved["epoch"], [0, 1, 2])
    with pytest.raises(ValueError, match=r"`append=True`, but .* holds 3 filters per record "
                                         r"for 'conv1' and this run gives 4"):
        kc.NPZSink(path, append=True).check({"conv1": 4, "block/ffn": 2})


def test_logs_sink_names_two_values_per_unit_and_nan_without_a_record():
    sink = kc.LogsSink("cond")
    sink.check(FILTERS)
    assert sink.logs(_record(0, 10)) == {
        "cond_conv1_max": 2.0, "cond_conv1_abs_delta": 0.125,
        "cond_block/ffn_max": 3.0, "cond_block/ffn_abs_delta": 0.5}
    skipped = sink.logs(None)
    assert sorted(skipped) == sorted(["cond_conv1_max", "cond_conv1_abs_delta",
                                      "cond_block/ffn_max", "cond_block/ffn_abs_delta"])
    assert all(math.isnan(v) for v in skipped.values())


def _events(folder):
    acc = event_accumulator.EventAccumulator(str(folder),
                                             size_guidance={event_accumulator.TENSORS: 0})
    acc.Reload()
    return {tag: [(e.step, tf.make_ndarray(e.tensor_proto)) for e in acc.Tensors(tag)]
            for tag in acc.Tags()["tensors"]}


def test_tensorboard_sink_follows_the_same_filters_at_every_record(tmp_path):
    sink = kc.TensorBoardSink(tmp_path, name="cond")
    sink.check(FILTERS)
    picture = np.zeros((4, 6, 3), np.uint8)
    first = _record(0, 10)
    first.pictures = [("cond/conv1/heatmap", picture)]
    sink.write(first)
    sink.write(_record(1, 20, scale=2.0))
    sink.write(_record(-1, 20))  # evaluate outside fit: its own run, at the last epoch
    sink.close()
    events = _events(tmp_path / "cond")
    for j, values in [(2, [2.0, 4.0]), (0, [0.5, 1.0])]:
        assert [(s, float(v)) for s, v in events[f"cond/conv1/filter_{j}"]] == \
            list(zip([0, 1], values))
    assert "cond/conv1/filter_1" not in events  # not followed: no curve at all
    assert [float(v) for _, v in events["cond/conv1/abs_delta"]] == [0.125, 0.25]
    assert [int(v) for _, v in events["cond/iteration"]] == [10, 20]
    text = events["cond/conv1/followed"]
    assert len(text) == 1 and b"2, 0 (chosen by `follow=`)" in text[0][1].item()
    (step, histogram), _ = events["cond/conv1"]
    assert step == 0 and histogram[:, 2].sum() == 3  # one count per filter
    assert [s for s, _ in events["cond/conv1/heatmap"]] == [0]
    evaluation = _events(tmp_path / "cond_evaluation")
    assert [s for s, _ in evaluation["cond/conv1/abs_delta"]] == [1]  # the last epoch trained
    iterations = kc.TensorBoardSink(tmp_path / "it", name="cond", summary_step="iterations")
    iterations.write(_record(0, 10))
    iterations.close()
    assert [s for s, _ in _events(tmp_path / "it" / "cond")["cond/iteration"]] == [10]


def test_the_callback_hands_each_record_to_a_users_sink():
    import keras

    from models import small_convnet

    class Keep(kc.Sink):
        def __init__(self):
            self.records, self.checked, self.closed = [], None, 0

        def check(self, filters):
            self.checked = filters

        def write(self, record):
            self.records.append(record)

        def close(self):
            self.closed += 1

    model = small_convnet()
    model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd")
    x = np.random.default_rng(0).normal(size=(8, 8, 8, 2)).astype("float32")
    y = np.arange(8) % 3
    keep = Keep()
    cb = kc.ConductanceCallback(x[:3], ["conv1", "conv2"], n_steps=4, follow={"conv2": [4, 1]},
                                top_k=2, sinks=[keep], on="epoch_end")
    model.fit(x, y, epochs=2, verbose=0, callbacks=[cb])
    assert keep.checked == {"conv1": 4, "conv2": 5} and keep.closed == 1
    assert [r.epoch for r in keep.records] == [0, 1]
    for record, entry in zip(keep.records, cb.history):
        assert record.followed == {"conv1": record.followed["conv1"], "conv2": [4, 1]}
        np.testing.assert_array_equal(record.conductance["conv2"], entry["conductance"]["conv2"])
    # conv1: the top 2 of the first record, the same at the second.
    first = keep.records[0].conductance["conv1"]
    assert keep.records[1].followed["conv1"] == np.argsort(-first, kind="stable")[:2].tolist()
    assert keras.ops.convert_to_numpy(model.optimizer.iterations) == 2
