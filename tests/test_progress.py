"""Progress on long calls: one display, plain lines off a terminal, silence at verbose=0."""

import io

import tensorflow as tf

import keras_conductance as kc
from keras_conductance import progress as progress_module
from keras_conductance.progress import Progress
from models import small_convnet


def test_plain_lines_off_a_terminal(monkeypatch):
    monkeypatch.setattr(progress_module, "LINE_EVERY_S", 0.0)
    out = io.StringIO()  # not a terminal
    bar = Progress(40, "path rows", 1, "conductance", stream=out)
    for _ in range(4):
        bar.update(10)
    bar.close()
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("conductance: 10/40 path rows (25%)")
    assert lines[-1].startswith("conductance: 40/40 path rows (100%)") and lines[-1].endswith("done")
    assert "\r" not in out.getvalue() and "\x1b" not in out.getvalue()


def test_silent_at_verbose_0_and_for_short_auto_calls():
    for verbose in (0, "auto"):
        out = io.StringIO()
        bar = Progress(10, "batches", verbose, stream=out)
        bar.update(10)
        bar.close()
        assert out.getvalue() == ""


def test_auto_appears_once_the_work_is_long(monkeypatch):
    monkeypatch.setattr(progress_module, "AFTER_S", 0.0)
    out = io.StringIO()
    bar = Progress(10, "batches", "auto", stream=out)
    bar.update(4)
    bar.close()
    assert out.getvalue().startswith("4/10 batches (40%)")


def test_refinement_rounds_are_numbered(capsys, rng):
    x = rng.normal(size=(2, 8, 8, 2)).astype("float32")
    model = small_convnet(activation="tanh")
    kc.conductance(model, x, "conv2", target=0, n_steps=2, tolerance=1e-6, verbose=1)
    err = capsys.readouterr().err
    # Off a terminal (pytest captures stderr): plain lines, one per round.
    assert "conductance, round 1: 4 panels of 8 steps, 2 examples" in err
    assert "conductance, round 2: " in err
    assert "\r" not in err


def test_dataset_progress_counts_batches_and_examples(capsys, rng):
    x = rng.normal(size=(6, 8, 8, 2)).astype("float32")
    ds = tf.data.Dataset.from_tensor_slices(x).batch(4)
    kc.conductance_over_dataset(small_convnet(), ds, "conv2", n_steps=4, verbose=1)
    err = capsys.readouterr().err
    assert "conductance over the dataset: 2/2 batches (100%)" in err and "examples 6" in err
