"""The README's main job: train a small CNN on bundled data and explain it.

The data is scikit-learn's bundled handwritten digits (1,797 real 8x8 scans
that ship inside the scikit-learn wheel), so the demo needs no download.
"""

from __future__ import annotations

import dataclasses
import pathlib
import time
from typing import List, Optional

import numpy as np

__all__ = ["DemoResult", "run_demo"]

LAYERS = ("conv1", "conv2")


@dataclasses.dataclass
class DemoResult:
    """What the demo measured and where it wrote it.

    Attributes:
        out_dir: the report folder.
        test_accuracy: accuracy of the trained CNN on the held-out digits.
        max_relative_delta: worst completeness error over layers and examples.
        files: paths written.
    """

    out_dir: pathlib.Path
    test_accuracy: float
    max_relative_delta: float
    files: List[pathlib.Path]


def _load_digits(seed: int):
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise ImportError(
            "The demo trains on scikit-learn's bundled digits. Install it with "
            "`pip install 'keras-conductance[demo]'` (or `pip install scikit-learn`)."
        ) from None
    digits = load_digits()
    x = (digits.images / 16.0).astype("float32")[..., None]
    y = digits.target.astype("int32")
    order = np.random.default_rng(seed).permutation(len(x))
    x, y = x[order], y[order]
    split = int(0.8 * len(x))
    return (x[:split], y[:split]), (x[split:], y[split:])


def _model():
    import keras

    return keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1"),
            keras.layers.Conv2D(16, 3, activation="relu", name="conv2"),
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dense(10, name="logits"),
        ],
        name="digits_cnn",
    )


def run_demo(out_dir="conductance-report", *, epochs: int = 8, seed: int = 0,
             verbose: int = 1, started: Optional[float] = None) -> DemoResult:
    """Trains, explains one test digit per class, and writes a report.

    Args:
        out_dir: folder for ``report.html``, ``report.json`` and PNG figures.
        epochs: training epochs (8 take about 10 s on 2 CPU cores).
        seed: random seed for the split and the weights.
        verbose: 0 silent, 1 progress messages.
        started: a ``time.time()`` that the closing "Done in N s" counts
            from (the command line passes its start, imports included);
            default: this call.

    Returns:
        A ``DemoResult``.
    """
    import keras

    import keras_conductance as kc
    from keras_conductance import report

    say = print if verbose else (lambda *a, **k: None)
    start = time.time() if started is None else started
    keras.utils.set_random_seed(seed)
    (x_train, y_train), (x_test, y_test) = _load_digits(seed)
    say(f"[1/3] Training a small CNN on {len(x_train)} scikit-learn digits ...")
    model = _model()
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(x_train, y_train, epochs=epochs, batch_size=64, verbose=0)
    accuracy = float(model.evaluate(x_test, y_test, verbose=0)[1])
    say(f"      test accuracy {accuracy:.3f} on {len(x_test)} held-out digits")

    picks = np.array([np.flatnonzero(y_test == d)[0] for d in range(10)])
    x = x_test[picks]
    say(f"[2/3] Conductance of {list(LAYERS)} for one test digit per class "
        "(black-image baseline, integrated to tolerance=0.01) ...")
    measures = kc.measures(model, x, list(LAYERS), tolerance=0.01, verbose=0)
    cond = measures.conductance
    worst = max(float(cond.relative_delta([layer]).max()) for layer in LAYERS)
    estimate = max(float(cond.error_estimate[layer].max()) for layer in LAYERS)
    steps = np.asarray(cond.n_steps)
    used = (f"{int(steps[0])} steps for all {steps.size} examples" if np.all(steps == steps[0])
            else ", ".join(f"{int(k)} steps for {int((steps == k).sum())}"
                           for k in np.unique(steps)))
    say(f"      worst per-filter error estimate {100 * estimate:.2f}%, worst completeness "
        f"error {100 * worst:.2f}% of F(x) - F(x'); {used}")

    say("[3/3] Writing the report ...")
    files = report.write_report(
        out_dir, measures, images=x[..., 0], labels=y_test[picks],
        names=[f"test digit #{int(i)}" for i in picks],
        class_names=[f"digit {d}" for d in range(10)], score_unit="logit",
        title="keras_conductance demo: digits CNN",
        notes=[f"Test accuracy {accuracy:.3f} ({len(x_test)} digits).",
               "Baseline: the black image. Explained score: the logit of the "
               "predicted class."],
    )
    for path in files:
        say(f"      wrote {path}")
    say(f"Done in {time.time() - start:.0f} s. Open "
        f"{pathlib.Path(out_dir).resolve() / 'report.html'}")
    return DemoResult(pathlib.Path(out_dir), accuracy, worst, files)
