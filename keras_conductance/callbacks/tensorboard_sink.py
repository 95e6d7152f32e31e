"""``TensorBoardSink``: a ConductanceCallback's records as TensorBoard summaries."""

from __future__ import annotations

import importlib.util
import os
from typing import Dict

import tensorflow as tf

from keras_conductance.arguments import check
from keras_conductance.callbacks.record import Record
from keras_conductance.callbacks.sink import Sink
from keras_conductance.folders import check_writable

__all__ = ["TensorBoardSink", "TENSORBOARD_MISSING"]

TENSORBOARD_MISSING = (
    "ConductanceCallback(log_dir=...) writes TensorBoard summaries, which need "
    "the `tensorboard` package (TensorFlow no longer installs it). Install it "
    "with `pip install keras-conductance[tensorboard]` (or `pip install "
    "tensorboard`), or pass log_dir=None."
)


class TensorBoardSink(Sink):
    """Writes each record to the TensorBoard run ``<log_dir>/<name>``
    (``<name>_evaluation`` for ``model.evaluate`` outside ``fit``):

    | tag | kind | value |
    |---|---|---|
    | `<name>/<unit>` | histogram | the C per-filter means |
    | `<name>/<unit>/filter_<j>` | scalar | filter j's mean, for each followed filter, at every record |
    | `<name>/<unit>/followed` | text | which filters are followed, and why (once per run) |
    | `<name>/<unit>/abs_delta` | scalar | mean completeness error |
    | `<name>/iteration` | scalar | the optimizer's step count |
    | images | image | the record's pictures (heatmaps, Eq. 2 overlays) |

    Args:
        log_dir: the TensorBoard log folder.
        name: the run folder and the tags' prefix.
        summary_step: ``"epoch"`` (the epoch index: the axis of Keras' own
            ``epoch_*`` scalars; the last epoch trained for an evaluation
            outside ``fit``) or ``"iterations"`` (the optimizer's step).
        images: write the record's pictures (the callback draws them only
            for sinks that want them).
    """

    def __init__(self, log_dir, name: str = "conductance", summary_step: str = "epoch",
                 images: bool = True):
        self.log_dir = check("log_dir", log_dir)
        self.name = check("name", name)
        self.summary_step = check("summary_step", summary_step)
        self.wants_images = check("images", images)
        self._writers: Dict[str, tf.summary.SummaryWriter] = {}
        self._noted = set()  # runs whose followed filters are written down

    def check(self, filters: Dict[str, int]) -> None:
        if importlib.util.find_spec("tensorboard") is None:
            raise ImportError(TENSORBOARD_MISSING)
        check_writable(self.log_dir, "log_dir", "Pass a folder you can write to, or "
                       "log_dir=None for no TensorBoard output.")

    def step(self, record: Record) -> int:
        if self.summary_step == "iterations":
            return record.iteration
        return record.epoch if record.epoch >= 0 else max(record.last_epoch, 0)

    def write(self, record: Record) -> None:
        # evaluate() outside fit writes its own run: after fit it sees the
        # weights of the last epoch, whose step the training run already
        # holds (as Keras' validation run beside train).
        run = self.name if record.epoch >= 0 else f"{self.name}_evaluation"
        writer = self._writers.get(run)
        if writer is None:
            writer = tf.summary.create_file_writer(os.path.join(self.log_dir, run))
            self._writers[run] = writer
        step = self.step(record)
        with writer.as_default():
            tf.summary.scalar(f"{self.name}/iteration", record.iteration, step=step)
            for n in record.units:
                means, tag = record.conductance[n], f"{self.name}/{n}"
                tf.summary.histogram(tag, means, step=step)
                for j in record.followed[n]:
                    tf.summary.scalar(f"{tag}/filter_{j}", means[j], step=step)
                tf.summary.scalar(f"{tag}/abs_delta", record.abs_delta[n], step=step)
                if run not in self._noted:
                    tf.summary.text(f"{tag}/followed", _followed_text(record, n), step=step)
            for tag, picture in (record.pictures if self.wants_images else []):
                tf.summary.image(tag, picture[None], step=step)
        self._noted.add(run)
        # Flushed per record: an interrupted fit leaves complete event files.
        writer.flush()

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers = {}


def _followed_text(record: Record, unit: str) -> str:
    filters = ", ".join(str(j) for j in record.followed[unit])
    return (f"Filters followed as `filter_<j>` scalars at every record: {filters} "
            f"({record.followed_why or 'chosen at ' + record.when}).")
