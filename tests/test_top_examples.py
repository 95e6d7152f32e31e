"""Top examples per unit over a dataset: streamed and merged exactly as a
brute-force sort over per-example results gives them."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_conductance as kc
from keras_conductance import top_examples
from models import small_convnet, text_cnn


def brute_top(per_position, k, targets=None, labels=None):
    """Numpy reference: ``(B, P, C)`` -> per sign ``(C, k)`` examples,
    positions, values and ``(C, k, P)`` contexts, by value, then example,
    then position."""
    B, P, C = per_position.shape
    example, position = np.arange(B * P) // P, np.arange(B * P) % P
    out = {}
    for sign, scale in (("positive", 1.0), ("negative", -1.0)):
        rows = {"example": [], "position": [], "value": [], "context": []}
        for c in range(C):
            flat = per_position[:, :, c].ravel()
            order = np.lexsort((position, example, -scale * flat))[:k]
            rows["example"].append(example[order])
            rows["position"].append(position[order])
            rows["value"].append(flat[order])
            rows["context"].append(per_position[example[order], :, c])
        out[sign] = {key: np.array(v) for key, v in rows.items()}
    return out


def by_position(values, channel_axis=-1):
    """``(B, *Y)`` numpy -> ``(B, P, C)`` by the module's rule."""
    return top_examples.positions_of(tf.constant(values), channel_axis).numpy()


def test_shards_merge_to_the_brute_force_order_with_ties():
    """Integer values (many exact ties), rows split between three replicas
    in shuffled order, several batches: the merged state is the sort's."""
    rng = np.random.default_rng(3)
    B, P, C, k = 41, 5, 4, 6
    values = rng.integers(-2, 3, size=(B, P, C)).astype(np.float32)
    targets = rng.integers(0, 3, B).astype(np.int32)
    labels = rng.integers(0, 2, B).astype(np.int32)
    state = top_examples.empty_state(C, P, k, has_labels=True)
    for batch in np.array_split(np.arange(B), 4):
        blocks = []
        for share in np.array_split(rng.permutation(batch), 3):
            got = top_examples.replica_candidates(
                tf.constant(values[share]), tf.constant(share, tf.int64),
                tf.constant(targets[share]), tf.constant(labels[share]), k)
            blocks.append({key: v.numpy() for key, v in got.items()})
        candidates = {key: np.concatenate([b[key] for b in blocks]) for key in blocks[0]}
        state = top_examples.merge(state, candidates)
    expected = brute_top(values, k)
    for sign in ("positive", "negative"):
        for field in ("example", "position", "value", "context"):
            np.testing.assert_array_equal(state[f"{sign}/{field}"], expected[sign][field],
                                          err_msg=f"{sign}/{field}")
        np.testing.assert_array_equal(state[f"{sign}/target"],
                                      targets[expected[sign]["example"]])
        np.testing.assert_array_equal(state[f"{sign}/label"], labels[expected[sign]["example"]])


def test_positions_follow_the_channel_axis():
    x = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    # Channels last: cells (3 x 4) are positions.
    np.testing.assert_array_equal(by_position(x), x.reshape(2, 12, 5))
    # Channels first: axes after the channel are positions.
    np.testing.assert_array_equal(by_position(x, 1), x.reshape(2, 3, 20).transpose(0, 2, 1))
    # Heads (b, T, heads, d) on axis -2: T positions, d summed into the head.
    np.testing.assert_array_equal(by_position(x, -2), x.sum(-1))
    # (b, C): one position.
    np.testing.assert_array_equal(by_position(x[:, 0, 0]), x[:, None, 0, 0])


def test_histogram_counts_use_the_fixed_bins():
    values = np.array([[0.0, -5e-7], [0.02, 3.0], [-0.02, 1e6], [0.02, -1e6]], np.float32)
    counts = top_examples.histogram_counts(tf.constant(values)).numpy()
    expected = np.stack([np.bincount(np.searchsorted(top_examples.HISTOGRAM_EDGES, values[:, c],
                                                     side="right"), minlength=counts.shape[1])
                         for c in range(2)])
    np.testing.assert_array_equal(counts, expected)
    assert counts.shape == (2, top_examples.HISTOGRAM_EDGES.size + 1)
    assert counts[1, 0] == 1 and counts[1, -1] == 1  # the open end bins


def _dataset_and_reference(model, x, y, layers, k, channel_axis=-1, batch=8):
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch)
    result = kc.conductance_over_dataset(model, ds, layers, target="label", n_steps=16,
                                         top_k=k, channel_axis=channel_axis, verbose=0)
    reference = kc.conductance(model, x, layers, target=y, n_steps=16, verbose=0)
    return result, reference


def _assert_matches(top, per_position, k, targets):
    expected = brute_top(per_position, k)
    for sign in ("positive", "negative"):
        np.testing.assert_array_equal(top.examples[sign], expected[sign]["example"])
        np.testing.assert_array_equal(top.positions[sign], expected[sign]["position"])
        np.testing.assert_allclose(top.values[sign], expected[sign]["value"], 1e-5, 1e-7)
        np.testing.assert_allclose(top.contexts[sign], expected[sign]["context"], 1e-5, 1e-7)
        np.testing.assert_array_equal(top.targets[sign], targets[expected[sign]["example"]])
        np.testing.assert_array_equal(top.labels[sign], targets[expected[sign]["example"]])


def test_a_dataset_run_keeps_the_brute_force_top_positions_of_every_unit():
    model = small_convnet()
    rng = np.random.default_rng(1)
    x = rng.normal(size=(37, 8, 8, 2)).astype("float32")
    y = rng.integers(0, 3, 37)
    layers = ["conv1", "dense"]
    result, reference = _dataset_and_reference(model, x, y, layers, k=4)
    for layer in layers:
        per_position = by_position(reference[layer])
        _assert_matches(result.top[layer], per_position, 4, y)
        per_example = per_position.sum(1)
        np.testing.assert_allclose(result.mean_abs[layer], np.abs(per_example).mean(0),
                                   1e-5, 1e-7)
        assert result.histogram[layer].sum(1).tolist() == [37] * per_example.shape[1]
    assert result.top["conv1"].position_shape == (6, 6)
    assert result.top["dense"].position_shape == ()
    assert result.top["conv1"].unit(2)[0]["position"] == tuple(np.unravel_index(
        result.top["conv1"].positions["positive"][2, 0], (6, 6)))
    # The kept examples' inputs come with the result.
    ids = np.unique(np.concatenate([result.top[n].example_ids() for n in layers]))
    np.testing.assert_array_equal(result.example_ids, ids)
    np.testing.assert_array_equal(result.example_inputs, x[ids])


def test_tokens_and_heads_are_positions_in_a_text_model():
    model = text_cnn()
    rng = np.random.default_rng(2)
    x = rng.integers(1, 50, size=(19, 12)).astype("int32")
    y = rng.integers(0, 2, 19)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(5)
    result = kc.conductance_over_dataset(model, ds, ["conv3"], target="label",
                                         start_layer="embedding", n_steps=16, top_k=3, verbose=0)
    reference = kc.conductance(model, x, ["conv3"], target=y, start_layer="embedding",
                               n_steps=16, verbose=0)
    top = result.top["conv3"]
    assert top.position_shape == (10,)  # 12 tokens, windows of 3
    _assert_matches(top, by_position(reference["conv3"]), 3, y)
    assert result.example_inputs.dtype == np.int32


def test_a_dataset_that_gives_other_examples_on_its_second_read_is_refused():
    """The kept examples' inputs are read again after the run: a dataset that
    reshuffles each time would pair other inputs with the kept ids."""
    model = small_convnet()
    x = np.random.default_rng(4).normal(size=(30, 8, 8, 2)).astype("float32")
    reshuffled = tf.data.Dataset.from_tensor_slices(x).shuffle(30, seed=None).batch(10)
    with pytest.raises(ValueError, match=r"`dataset` gave other examples on its second read"):
        kc.conductance_over_dataset(model, reshuffled, "dense", n_steps=4, top_k=2, verbose=0)
    fixed = tf.data.Dataset.from_tensor_slices(x).shuffle(
        30, seed=1, reshuffle_each_iteration=False).batch(10)
    result = kc.conductance_over_dataset(model, fixed, "dense", n_steps=4, top_k=2, verbose=0)
    order = np.concatenate([b.numpy() for b in fixed])
    np.testing.assert_array_equal(result.example_inputs, order[result.example_ids])


def test_fewer_positions_than_top_k_keep_what_there_is():
    model = small_convnet()
    x = np.random.default_rng(5).normal(size=(2, 8, 8, 2)).astype("float32")
    result, reference = _dataset_and_reference(model, x, np.array([0, 1]), ["dense"], k=5)
    top = result.top["dense"]
    assert top.values["positive"].shape == (6, 2)
    _assert_matches(top, by_position(reference["dense"]), 2, np.array([0, 1]))


def test_a_saved_result_loads_back_equal(tmp_path):
    model = small_convnet()
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(11, 8, 8, 2)).astype("float32"), rng.integers(0, 3, 11)
    result, _ = _dataset_and_reference(model, x, y, ["conv2", "dense"], k=3)
    path = result.save(tmp_path / "result.npz")
    loaded = kc.load_dataset_result(path)
    assert loaded.layers == result.layers and loaded.count == 11
    assert loaded.target == "label" and loaded.is_cut == result.is_cut
    for layer in result.layers:
        np.testing.assert_array_equal(loaded.mean[layer], result.mean[layer])
        np.testing.assert_array_equal(loaded.mean_per_label[layer], result.mean_per_label[layer])
        np.testing.assert_array_equal(loaded.histogram[layer], result.histogram[layer])
        for sign in ("positive", "negative"):
            for field in ("values", "examples", "positions", "targets", "labels", "contexts"):
                np.testing.assert_array_equal(getattr(loaded.top[layer], field)[sign],
                                              getattr(result.top[layer], field)[sign])
        assert loaded.top[layer].position_shape == result.top[layer].position_shape
    np.testing.assert_array_equal(loaded.example_inputs, result.example_inputs)
    # Without top_k, too.
    plain = kc.conductance_over_dataset(model, tf.data.Dataset.from_tensor_slices(x).batch(4),
                                        "dense", verbose=0)
    assert plain.top is None and plain.example_ids is None
    again = kc.load_dataset_result(plain.save(tmp_path / "plain.npz"))
    np.testing.assert_array_equal(again.mean["dense"], plain.mean["dense"])
    assert again.top is None and again.labels is None


def test_bad_top_k_and_result_files_are_refused(tmp_path):
    model = small_convnet()
    ds = tf.data.Dataset.from_tensor_slices(np.ones((2, 8, 8, 2), np.float32)).batch(2)
    with pytest.raises(ValueError, match=r"`top_k` must be an int >= 1.*Received: top_k=0"):
        kc.conductance_over_dataset(model, ds, "dense", top_k=0, verbose=0)
    with pytest.raises(TypeError, match=r"`top_k`.*Received: top_k='3'"):
        kc.conductance_over_dataset(model, ds, "dense", top_k="3", verbose=0)
    with pytest.raises(FileNotFoundError, match=r"No such result file: .*missing\.npz"):
        kc.load_dataset_result(tmp_path / "missing.npz")
    np.savez(tmp_path / "other.npz", a=np.zeros(2))
    with pytest.raises(ValueError, match=r"a file written by DatasetConductance\.save"):
        kc.load_dataset_result(tmp_path / "other.npz")
    result = kc.conductance_over_dataset(model, ds, "dense", top_k=1, verbose=0)
    with pytest.raises(ValueError, match=r"`unit` must be an int in 0\.\.5.*Received: unit=6"):
        result.top["dense"].unit(6)
    with pytest.raises(ValueError, match=r"`sign` must be one of .*Received: sign='up'"):
        result.top["dense"].unit(0, "up")
    with pytest.raises(TypeError, match=r"`top_k` must be an int >= 1\. Received: top_k=None"):
        kc.ConductanceCallback(np.zeros((2, 8, 8, 2), np.float32), "dense", top_k=None)
