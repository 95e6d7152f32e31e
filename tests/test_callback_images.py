"""ConductanceCallback's TensorBoard images, read back from the event files:
Eq. 2 pixel-map overlays for image probes, a labelled heatmap otherwise.
The pictures are compared pixel by pixel with what kc.conductance and
kc.neuron_conductance give under the weights of that epoch."""

import importlib.util
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from matplotlib import colormaps
from tensorboard.backend.event_processing import event_accumulator

from keras_conductance.callbacks import ConductanceCallback
from keras_conductance.callbacks import _images

from models import small_convnet, text_cnn

LAYERS = ["conv2"]  # one layer: each traces its own Eq. 2 step
N_STEPS = 8
SHOWN, TOP = 2, 2  # image_examples, image_filters


@pytest.fixture(autouse=True)
def _quiet_convergence_warnings():
    # A short path on a random conv net: the explainer's advice is expected.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Completeness error")
        yield


def _images_of(folder):
    """tag -> [(step, (H, W, 3) uint8)] of a TensorBoard run."""
    acc = event_accumulator.EventAccumulator(folder, size_guidance={event_accumulator.TENSORS: 0})
    acc.Reload()
    found = {}
    for tag in acc.Tags()["tensors"]:
        for e in acc.Tensors(tag):
            value = tf.make_ndarray(e.tensor_proto)
            if value.dtype == object and value.ndim == 1:  # an image: width, height, PNG
                found.setdefault(tag, []).append((e.step, tf.io.decode_png(value[2]).numpy()))
    return found


def _scalar_steps(folder, tag):
    acc = event_accumulator.EventAccumulator(folder, size_guidance={event_accumulator.TENSORS: 0})
    acc.Reload()
    return [e.step for e in acc.Tensors(tag)]


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 8, 8, 3)).astype("float32")
    return x, rng.integers(0, 3, 32)


def _compiled(model):
    model.compile(keras.optimizers.SGD(0.1),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def _panel(picture, layout, i):
    top, bottom, left, right = layout.pixels(layout.panels[i])
    return picture[top:bottom, left:right].astype(int)


def test_overlays_show_the_eq2_maps_of_the_top_filters(images, tmp_path):
    x, y = images
    probe = x[:4]
    # The baseline equals the input on the left half: there x - x' = 0, so
    # every Eq. 2 map is exactly 0 and the overlay must leave the input as it is.
    baselines = probe.copy()
    baselines[:, :, 4:] = 0.0
    model = _compiled(small_convnet(input_shape=(8, 8, 3)))
    cb = ConductanceCallback(probe, LAYERS, baselines=baselines, n_steps=N_STEPS,
                             log_dir=str(tmp_path), image_examples=SHOWN, image_filters=TOP,
                             image_n_steps=N_STEPS)
    model.fit(x, y, batch_size=16, epochs=2, validation_data=(x[:8], y[:8]),
              callbacks=[cb, keras.callbacks.TensorBoard(str(tmp_path))], verbose=0)

    found = _images_of(str(tmp_path / "conductance"))
    assert sorted(found) == [f"conductance/{n}/pixel_maps/example_{b}"
                             for n in LAYERS for b in range(SHOWN)]  # no heatmap for images
    keras_steps = _scalar_steps(str(tmp_path / "train"), "epoch_loss")
    assert keras_steps == [0, 1]
    for pictures in found.values():
        assert [step for step, _ in pictures] == keras_steps  # Keras' epoch axis

    # The last epoch's pictures, rebuilt from its record (which
    # test_callbacks.py checks against kc.conductance) and Eq. 2 maps of the
    # weights after the last epoch, the model's weights now. The callback's
    # own Eq. 2 explainer, called here with explicit filters, targets and
    # baselines, saves tracing a second one.
    attr = cb.last_attribution
    rgb = [_images.display_rgb(image) for image in probe[:SHOWN]]
    repeat, stride = _images.panel_scale(8, 8)
    for n in LAYERS:
        per_filter = attr.per_filter(n)[:SHOWN]
        top = np.argsort(-np.abs(per_filter), axis=1, kind="stable")[:, :TOP]
        maps = cb._pictures.neuron[n](probe[:SHOWN], top, target=attr.target[:SHOWN],
                                       baselines=baselines[:SHOWN], n_steps=N_STEPS).sum(-1)
        assert np.abs(maps[..., :4]).max() == 0 and (maps[..., 4:] != 0).mean() > 0.5
        for b in range(SHOWN):
            _, picture = found[f"conductance/{n}/pixel_maps/example_{b}"][-1]
            layout = _images.overlay_layout(1 + TOP, 8 * repeat, 8 * repeat)
            assert picture.shape == (round(layout.size[1] * 100), round(layout.size[0] * 100), 3)
            np.testing.assert_array_equal(_panel(picture, layout, 0),
                                          _images.to_panel(rgb[b], repeat, stride))
            base = _images.grey_base(rgb[b])
            limit = _images.overlay_limit(maps[b])
            half = 4 * repeat  # the left half of a panel, in picture pixels
            for j in range(TOP):
                shown = _panel(picture, layout, 1 + j)
                expected = _images.to_panel(_images.overlay(base, maps[b, j], limit), repeat,
                                            stride).astype(int)
                np.testing.assert_allclose(shown, expected, atol=1)
                # Where the map is 0 the input's grey shows unchanged; where
                # it is not, the overlay changes it: blue > 0, red < 0.
                grey = _images.to_panel(base[..., None].repeat(3, -1), repeat, stride)
                np.testing.assert_array_equal(shown[:, :half], grey[:, :half])
                m = np.repeat(np.repeat(maps[b, j], repeat, 0), repeat, 1)
                strong = np.abs(m) > 0.2 * limit
                strong[:, :half] = False
                assert strong.sum() > 0
                change = np.abs(shown - grey).max(axis=-1)
                assert change[strong].min() >= 0.2 * 0.85 * 0.25 * 255  # alpha x colour - grey
                bluer = shown[..., 2] > shown[..., 0]
                np.testing.assert_array_equal(bluer[strong], m[strong] > 0)


def test_overlay_numbers():
    base = np.array([[0.3, 1.0, 0.65]])
    blue, red = np.array(colormaps["RdBu"](0.9)[:3]), np.array(colormaps["RdBu"](0.1)[:3])
    out = _images.overlay(base, np.array([[0.0, 2.0, -0.5]]), limit=1.0)
    np.testing.assert_allclose(out[0, 0], [0.3, 0.3, 0.3])  # 0: the base, unchanged
    np.testing.assert_allclose(out[0, 1], 0.15 * 1.0 + 0.85 * blue)  # clipped at +limit
    np.testing.assert_allclose(out[0, 2], (1 - 0.425) * 0.65 + 0.425 * red)  # half way, red
    # The grey under the overlay spans [0.3, 1] so that black pixels show colour too.
    np.testing.assert_allclose(_images.grey_base(np.array([[[0, 0, 0], [1, 1, 1.0]]])),
                               [[0.3, 1.0]])


def test_text_models_get_a_labelled_heatmap(tmp_path):
    tokens = np.random.default_rng(0).integers(1, 50, (5, 12)).astype("int32")
    model = _compiled(text_cnn())
    names = [f"review {i}" for i in range(5)]
    cb = ConductanceCallback(tokens, ["conv3", "conv5"], start_layer="embedding",
                             n_steps=N_STEPS, log_dir=str(tmp_path), example_names=names)
    model.evaluate(tokens, np.zeros(5), callbacks=[cb], verbose=0)

    found = _images_of(str(tmp_path / "conductance_evaluation"))
    assert sorted(found) == ["conductance/conv3/heatmap", "conductance/conv5/heatmap"]
    cmap = colormaps["RdBu"]
    for n in ["conv3", "conv5"]:
        [(step, picture)] = found[f"conductance/{n}/heatmap"]
        assert step == 0  # no epoch trained yet
        values = cb.last_attribution.per_filter(n).T  # (C=8, B=5)
        layout = _images.heatmap_layout(8, 5, long_labels=True)
        assert picture.shape == (round(layout.size[1] * 100), round(layout.size[0] * 100), 3)
        top, bottom, left, right = layout.pixels(layout.panels[0])
        rows = (top + (np.arange(8) + 0.5) * (bottom - top) / 8).astype(int)
        cols = (left + (np.arange(5) + 0.5) * (right - left) / 5).astype(int)
        cells = picture[rows][:, cols].astype(int)  # (C, B, 3) at the cell centres
        limit = np.abs(values).max()
        expected = np.round(255 * cmap(0.5 + 0.5 * values / limit)[..., :3]).astype(int)
        np.testing.assert_allclose(cells, expected, atol=2)
        # Blue > 0 (the package's one convention), red < 0.
        strong = np.abs(values) > 0.3 * limit
        np.testing.assert_array_equal((cells[..., 2] > cells[..., 0])[strong], values[strong] > 0)


def test_image_freq_both_and_the_off_switch(images, tmp_path):
    x, y = images
    model = _compiled(small_convnet(input_shape=(8, 8, 3)))
    both = ConductanceCallback(x[:2], "conv2", n_steps=4, log_dir=str(tmp_path), name="both",
                               write_images="both", image_freq=2, image_examples=1,
                               image_filters=1, image_n_steps=4)
    off = ConductanceCallback(x[:2], "conv2", n_steps=4, log_dir=str(tmp_path), name="off",
                              write_images=False)
    model.fit(x, y, batch_size=16, epochs=3, callbacks=[both, off], verbose=0)

    found = _images_of(str(tmp_path / "both"))
    assert sorted(found) == ["both/conv2/heatmap", "both/conv2/pixel_maps/example_0"]
    for pictures in found.values():
        assert [step for step, _ in pictures] == [1]  # epochs 2 of 3: a multiple of 2
    assert _scalar_steps(str(tmp_path / "both"), "both/conv2/abs_delta") == [0, 1, 2]
    # The Eq. 2 explainer is built once and traced once.
    steps = list(both._pictures.neuron["conv2"]._steps.values())
    assert len(steps) == 1 and steps[0].experimental_get_tracing_count() == 1
    assert _images_of(str(tmp_path / "off")) == {}


def test_image_settings_are_validated(images, tmp_path):
    x, y = images
    for kwargs, error, message in [
        (dict(write_images="pixels"), ValueError,
         r"`write_images` must be one of True, False, 'overlay', 'heatmap', 'both'\. "
         r"Received: write_images='pixels'"),
        (dict(image_freq=0), ValueError, r"`image_freq` must be an int >= 1\. Received: image_freq=0"),
        (dict(image_examples=0), ValueError, "`image_examples` must be an int >= 1"),
        (dict(image_filters=2.5), TypeError, "`image_filters` must be an int >= 1"),
        (dict(image_n_steps=None), TypeError, "`image_n_steps` must be an int in 1..100000"),
        (dict(example_names="cat"), TypeError, "`example_names` must be a sequence of strings"),
    ]:
        with pytest.raises(error, match=message):
            ConductanceCallback(x[:2], "conv2", **kwargs)
    # Checked when training begins, before any epoch.
    model = _compiled(small_convnet())  # (8, 8, 2) inputs: not images
    for cb, message in [
        (ConductanceCallback(x[:2, ..., :2], "conv2", log_dir=str(tmp_path),
                             write_images="overlay"),
         r"write_images='overlay' draws Eq. 2 pixel maps over image inputs .* "
         r"\(2, 8, 8, 2\)\. Valid values for it: True, False, 'heatmap'"),
        (ConductanceCallback(x[:2, ..., :2], "conv2", example_names=["a"]),
         r"`example_names` must be a sequence of 2 strings, one per example. Received: 1 names."),
    ]:
        with pytest.raises(ValueError, match=message):
            model.fit(x[..., :2], y, epochs=1, callbacks=[cb], verbose=0)
    assert model.optimizer.iterations.numpy() == 0


def test_without_matplotlib_the_bare_matrix_and_one_warning(images, tmp_path, monkeypatch):
    x, y = images
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name: None if name == "matplotlib" else find_spec(name))
    model = _compiled(small_convnet(input_shape=(8, 8, 3)))
    cb = ConductanceCallback(x[:3], "conv2", n_steps=4, log_dir=str(tmp_path))
    with pytest.warns(UserWarning, match=r"keras-conductance\[tensorboard\]") as caught:
        model.fit(x, y, batch_size=16, epochs=2, callbacks=[cb], verbose=0)
    assert sum("matplotlib" in str(w.message) for w in caught) == 1  # once, not per epoch
    found = _images_of(str(tmp_path / "conductance"))
    assert sorted(found) == ["conductance/conv2/heatmap"]
    _, picture = found["conductance/conv2/heatmap"][-1]
    np.testing.assert_array_equal(picture,
                                  _images.plain_heatmap(cb.last_attribution.per_filter("conv2")))
