"""Eq. 2 pixel maps (``kc.pixel_maps``): each map sums to its filter's Eq. 3
conductance, per-image filters are honoured, and the figure draws."""

import numpy as np
import pytest

import keras_conductance as kc
from models import small_convnet


def test_pixel_maps_sum_to_filter_conductance(rng, tmp_path):
    model = small_convnet(activation="tanh", input_shape=(8, 8, 3))
    x = rng.normal(size=(2, 8, 8, 3)).astype("float32")
    attr = kc.conductance(model, x, "conv2", target=0, n_steps=50)
    per_filter = attr.per_filter("conv2")
    top = np.argsort(-per_filter, axis=1)[:, :2]
    maps = kc.pixel_maps(model, x, "conv2", top, target=0, n_steps=50)
    assert maps.maps.shape == (2, 2, 8, 8)
    np.testing.assert_array_equal(maps.filters, top)
    scale = np.abs(per_filter).max()
    eq3 = np.take_along_axis(per_filter, top, 1)
    assert np.abs(maps.conductance - eq3).max() <= 1e-3 * scale
    np.testing.assert_allclose(maps.conductance, maps.maps.sum(axis=(2, 3)), rtol=1e-6)
    assert maps.titles == ["image 0", "image 1"]
    assert maps.pixels.dtype == np.uint8 and maps.pixels.shape == (2, 8, 8, 3)
    figure = maps.plot(tmp_path / "pixels.png")
    assert (tmp_path / "pixels.png").stat().st_size > 5000
    assert len(figure.axes) == 2 * 3  # each row: the photo, then its two filters


def test_pixel_maps_one_image_equals_its_row_of_many(rng):
    model = small_convnet(activation="tanh", input_shape=(8, 8, 3))
    x = rng.normal(size=(3, 8, 8, 3)).astype("float32")
    many = kc.pixel_maps(model, x, "conv2", [1, 3], target=[0, 1, 2], n_steps=16,
                         example_names=["a", "b", "c"])
    one = kc.pixel_maps(model, x[1:2], "conv2", [1, 3], target=1, n_steps=16)
    np.testing.assert_allclose(one.maps[0], many.maps[1], rtol=1e-4, atol=1e-6)
    assert many.titles == ["a", "b", "c"]


def test_pixel_maps_refuse_filters_out_of_range(rng):
    model = small_convnet(input_shape=(8, 8, 3))
    x = rng.normal(size=(2, 8, 8, 3)).astype("float32")
    with pytest.raises(ValueError, match=r"`filters` must be .*Received: filters holding \[9\]"):
        kc.pixel_maps(model, x, "conv2", [9])
