"""``ConductanceCallback``: per-filter conductance of a probe set during training."""

from __future__ import annotations

from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import keras
import numpy as np
import tensorflow as tf
from numpy.typing import ArrayLike

from keras_conductance.adapter import as_names
from keras_conductance.arguments import check, check_labels_dtype, check_names, message
from keras_conductance.attribution import (
    Attribution,
    channel_axes,
    check_channel_axes,
    filters_along,
)
from keras_conductance.callbacks.csv_sink import CSVSink
from keras_conductance.callbacks.logs_sink import LogsSink
from keras_conductance.callbacks.npz_sink import NPZSink
from keras_conductance.callbacks.pictures import RecordPictures
from keras_conductance.callbacks.record import Record
from keras_conductance.callbacks.sink import Sink
from keras_conductance.callbacks.tensorboard_sink import TensorBoardSink
from keras_conductance import interrupts
from keras_conductance.explainer import Conductance, path_rule
from keras_conductance.targets import label_ids

__all__ = ["ConductanceCallback"]

TRIGGERS = ("epoch_end", "test_end")
HISTORY_FORMATS = (".csv", ".npz")


class ConductanceCallback(keras.callbacks.Callback):
    """Logs per-filter conductance of a fixed probe set while a model trains.

    At the end of evaluation (``model.evaluate`` and the validation run inside
    ``fit``) and/or at the end of an epoch, every ``freq`` epochs, the
    callback explains the probe set with one call of a ``Conductance``
    explainer that it builds once and reuses (no retracing between epochs).
    The weights do not change between an epoch's validation run and its
    end, so each epoch is explained at most once.

    Per record it computes, once, for every layer, the mean over the probe
    set of each filter's conductance ``(C,)`` and the mean completeness error
    |sum of conductances - (F(x) - F(x'))|, and hands that one ``Record`` to
    its sinks: ``TensorBoardSink`` (tags below; with ``log_dir``),
    ``CSVSink`` or ``NPZSink`` (with ``filename``), ``LogsSink`` (always: two
    scalars per layer in the epoch ``logs``, so ``History`` and
    ``CSVLogger`` placed after it see them: ``<name>_<layer>_max``, the
    largest filter mean, and ``<name>_<layer>_abs_delta``; NaN in epochs
    skipped by ``freq``), and any ``sinks=[...]`` of your own.

    TensorBoard run ``<log_dir>/<name>``, with the default
    ``name="conductance"``:

    | tag                              | kind      | value                             |
    |----------------------------------|-----------|-----------------------------------|
    | `conductance/<layer>`            | histogram | the C per-filter means            |
    | `conductance/<layer>/filter_<j>` | scalar    | filter j's mean, if followed      |
    | `conductance/<layer>/followed`   | text      | the followed filters, and why     |
    | `conductance/<layer>/abs_delta`  | scalar    | mean completeness error           |
    | `conductance/<layer>/heatmap`    | image     | filters x examples, blue > 0      |
    | `conductance/<layer>/pixel_maps/example_<b>` | image | Eq. 2 maps over input b |

    Images: for image probe inputs ``(B, H, W, 1|3)``, one picture per
    probe example (the first ``image_examples``) and layer: the input, then
    the Eq. 2 pixel maps (``neuron_conductance``, summed over colour) of the
    example's ``image_filters`` filters with the largest |conductance|,
    translucent over the input in grey, blue where a pixel raises the
    explained score through the filter, red where it lowers it. Otherwise a
    labelled heatmap, filters x probe examples. Both need matplotlib.

    Args:
        data: the probe set: inputs (an array ``(B, *input_shape)``, or for
            several model inputs a list or dict of arrays), a tuple
            ``(inputs, labels)``, or a batched ``tf.data.Dataset`` of inputs
            or ``(inputs, labels)`` from which ``steps`` batches are taken
            once. As in ``model.fit``, a tuple is ``(inputs, labels)``: pass
            several inputs as a list or dict.
        layers: a layer name or a list of names.
        target: None (each example's top predicted class, re-chosen at every
            record), ``"label"`` (the probe labels), an int, a ``(B,)`` int
            array, or a callable ``outputs (N, ...) -> scores (N,)``.
        baselines: None (zeros) or an array broadcastable to the inputs
            (or the inputs' structure), as ``kc.conductance``.
        output: the explained output (name or index) of a multi-output model.
        start_layer: start the path at this layer's output (text models).
        interpolate: the model inputs that move along the path (default:
            the float inputs); the others are held constant.
        n_steps: steps of the integration rule.
        method: ``"trapezoid"``, ``"left"``, ``"right"`` or
            ``"gauss_legendre"``.
        tolerance: integrate each probe example adaptively to this relative
            error (per-filter estimate, and completeness on cut layers), as
            ``kc.conductance``.
        max_steps: most steps per example that ``tolerance`` may reach.
        on: when to compute: ``"epoch_end"``, ``"test_end"``, or both
            (default). ``"test_end"`` covers ``model.evaluate`` and the
            validation inside ``fit``; ``"epoch_end"`` covers ``fit`` without
            validation.
        freq: compute during ``fit`` every ``freq`` epochs (epochs whose
            1-based number is a multiple of ``freq``). ``evaluate`` always
            computes.
        steps: batches taken from a ``tf.data.Dataset`` probe set (None:
            all of them).
        channel_axis: axis of the layer outputs holding the filters, or a
            dict ``{unit: axis}`` (others -1), e.g. -2 for attention heads
            ``(B, T, heads, head_dim)`` beside FFN neurons on -1.
        log_dir: TensorBoard log folder, or None for no TensorBoard output.
        top_k: filters per layer to follow as TensorBoard scalars: the
            ``top_k`` largest means at the first record, then the same
            filters at every record (no gappy curves).
        follow: the filters to follow instead: a list of indices for every
            layer, or a dict ``{layer: [indices]}`` (layers left out use
            ``top_k``).
        write_images: TensorBoard images: True (pixel-map overlays for
            image inputs, the heatmap otherwise), ``"overlay"``,
            ``"heatmap"``, ``"both"``, or False for none.
        image_freq: write images in the records of epochs whose 1-based
            number is a multiple of ``image_freq`` (and at ``evaluate``).
        image_examples: probe examples that get an overlay (the first ones).
        image_filters: filters per overlay: the example's largest
            |conductance|.
        image_n_steps: integration steps of the overlays' pixel maps (one
            masked backward pass per filter and path point).
        example_names: B names of the probe examples for the pictures'
            labels (default: their indices).
        summary_step: TensorBoard step: ``"epoch"`` (the epoch index, the
            axis of Keras' own ``epoch_*`` scalars; the last epoch trained for
            ``evaluate`` outside ``fit``) or ``"iterations"`` (the
            optimizer's training step). Either way the iteration count is
            logged too, as the scalar ``<name>/iteration``.
        filename: also write the history to this ``.csv`` or ``.npz`` file.
        append: keep rows already in ``filename`` (else the first write of
            this callback starts the file afresh).
        name: prefix of the ``logs`` keys and TensorBoard tags, and the
            TensorBoard run folder; give each of several callbacks its own.
        batch_size: most rows (examples x path points) per compiled call.
        jit_compile: True, False or ``"auto"``.
        pre_softmax: explain the logits of a softmax/sigmoid model.
        sinks: more ``Sink`` objects that receive every record (e.g. your
            own, or a second ``TensorBoardSink``).

    Attributes:
        history: list of records, one per computation: dicts with ``epoch``
            (-1 for ``evaluate`` outside ``fit``), ``iteration``,
            ``conductance`` (layer -> ``(C,)``) and ``abs_delta``
            (layer -> float).
        last_attribution: the ``Attribution`` of the latest record.
        explainer: the ``Conductance`` explainer (None before first use).

    Example:
        >>> cb = kc.ConductanceCallback(x_val[:32], ["conv1", "conv2"],
        ...                             log_dir="logs", filename="cond.csv")
        >>> model.fit(x, y, validation_data=(x_val, y_val), callbacks=[cb])
        >>> cb.history_array("conv2").shape   # (records, C)
    """

    def __init__(
        self,
        data: Union[ArrayLike, Tuple[ArrayLike, ArrayLike], tf.data.Dataset],
        layers: Union[str, Sequence[str]],
        *,
        target: Union[None, int, str, np.ndarray, Callable] = None,
        baselines=None,
        output: Union[None, int, str] = None,
        start_layer: Optional[str] = None,
        interpolate: Optional[Sequence[Union[str, int]]] = None,
        n_steps: int = 50,
        method: str = "trapezoid",
        tolerance: Optional[float] = None,
        max_steps: int = 1024,
        on: Union[str, Sequence[str]] = TRIGGERS,
        freq: int = 1,
        steps: int = 1,
        channel_axis: Union[int, Dict[str, int]] = -1,
        log_dir: Optional[str] = None,
        top_k: int = 5,
        write_images: Union[bool, str] = True,
        image_freq: int = 1,
        image_examples: int = 4,
        image_filters: int = 3,
        image_n_steps: int = 16,
        example_names: Optional[Sequence[str]] = None,
        summary_step: str = "epoch",
        filename: Optional[str] = None,
        append: bool = False,
        name: str = "conductance",
        batch_size: Optional[int] = None,
        jit_compile: Union[bool, str] = "auto",
        pre_softmax: bool = False,
        follow: Union[None, Sequence[int], Dict[str, Sequence[int]]] = None,
        sinks: Sequence[Sink] = (),
    ):
        super().__init__()
        # Settings only: the vocabulary's checks, nothing built. What needs
        # the model (the probe set, layers, target) is checked when training
        # or evaluation starts.
        self.data = data
        self.layers = as_names(layers, "layers")
        self.target = target
        self.baselines = baselines
        self.output = output
        self.interpolate = interpolate
        self.start_layer = start_layer
        path_rule(method, n_steps, tolerance, max_steps)  # checked now, built at first use
        self.n_steps, self.method = n_steps, method
        self.tolerance, self.max_steps = tolerance, max_steps
        self.on = _check_on(on)
        self.freq = check("freq", freq)
        self.steps = check("steps", steps)  # None: every batch of a dataset
        self.channel_axis = channel_axis
        self.log_dir = check("log_dir", log_dir)
        self.top_k = check("top_k", top_k, none=False)  # None: the dataset run's "none"
        self.write_images = check("write_images", write_images)
        self.image_freq = check("image_freq", image_freq)
        self.image_examples = check("image_examples", image_examples)
        self.image_filters = check("image_filters", image_filters)
        self.image_n_steps = check("image_n_steps", image_n_steps)
        self.example_names = check_names("example_names", example_names)
        self.summary_step = check("summary_step", summary_step)
        self.filename = None if filename is None else _check_filename(filename)
        self.append = check("append", append)
        self.name = check("name", name)
        self.batch_size = check("batch_size", batch_size)
        self.jit_compile = check("jit_compile", jit_compile)
        self.pre_softmax = check("pre_softmax", pre_softmax)
        self.follow = _check_follow(follow, self.layers)
        self.sinks = _check_sinks(sinks)
        if isinstance(target, str) and target != "label":
            raise ValueError(message(
                "target", "None, 'label', an int, a per-example int array, or a callable",
                target))
        self.history: List[dict] = []
        self.last_attribution: Optional[Attribution] = None
        self.explainer: Optional[Conductance] = None
        # Created on first use:
        self._probe = None
        self._sinks: Optional[List[Sink]] = None  # built-in ones first, made at first use
        self._followed: Optional[Dict[str, List[int]]] = None  # chosen at the first record
        self._followed_why = ""
        self._last_record: Optional[Record] = None
        self._pictures: Optional[RecordPictures] = None
        # Where we are in fit: None outside fit.
        self._epoch: Optional[int] = None
        self._last_epoch = -1
        self._recorded_epoch: Optional[int] = None

    # -- Keras hooks -----------------------------------------------------------

    def on_train_begin(self, logs=None):
        self._check_before_work()
        self._epoch = None
        self._recorded_epoch = None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_test_begin(self, logs=None):
        if self._epoch is None:  # evaluate() on its own; inside fit it was checked
            self._check_before_work()

    def on_test_end(self, logs=None):
        if "test_end" not in self.on:
            return
        if self._epoch is None:  # model.evaluate outside fit
            record = self._record(epoch=-1)
            if logs is not None:
                logs.update(self._log_values(record))
            self._close_sinks()
        elif self._due(self._epoch) and self._recorded_epoch != self._epoch:
            self._record(epoch=self._epoch)  # validation inside fit

    def on_epoch_end(self, epoch, logs=None):
        self._last_epoch = epoch
        record = None
        if self._due(epoch):
            if self._recorded_epoch == epoch:
                record = self.history[-1]  # from this epoch's validation run
            elif "epoch_end" in self.on:
                record = self._record(epoch=epoch)
        if logs is not None:
            logs.update(self._log_values(record))
        self._epoch = None

    def on_train_end(self, logs=None):
        self._epoch = None
        self._close_sinks()

    # -- checks before the first epoch ---------------------------------------

    def _check_before_work(self):
        """Everything that can be checked before training starts is checked
        here, not after a first epoch of a long training: TensorBoard, that
        the output folders can be written, the layers and the probe set."""
        explainer = self._get_explainer()
        if isinstance(self.data, tf.data.Dataset):  # batched, with the model's structure
            explainer.adapter.check_batched(keras.utils.unpack_x_y_sample_weight(
                self.data.element_spec)[0], "data")
        inputs, labels = self._probe_set()
        # The probe set meets the rules of `inputs`, in the words of `data`.
        prepared = explainer.adapter.prepare(inputs, self.baselines, argument="data")
        explainer.resolve_target(self._explained_target(labels), prepared)  # class range
        shapes = explainer.unit_shapes(prepared)
        axes = channel_axes(self.channel_axis, self.layers)
        check_channel_axes(axes, shapes)
        filters = {n: filters_along(s, a) for (n, a), s in zip(axes.items(), shapes)}
        for layer, chosen in (self.follow or {}).items():
            bad = [j for j in chosen if not 0 <= j < filters[layer]]
            if bad:
                raise ValueError(message(
                    "follow", f"filter indices in 0..{filters[layer] - 1} for {layer!r}",
                    got=f"follow with {bad} for {layer!r}"))
        for sink in self._get_sinks():
            sink.check(filters)
        self._check_images(inputs, prepared.n)

    def _check_images(self, inputs, n_examples: int):
        check_names("example_names", self.example_names, n_examples)
        self._get_pictures().check(self.model, inputs, self._images_wanted())

    # -- computing -------------------------------------------------------------

    def _due(self, epoch: int) -> bool:
        return (epoch + 1) % self.freq == 0

    def _get_explainer(self) -> Conductance:
        if self.explainer is None or self.explainer.model is not self.model:
            self.explainer = Conductance(
                self.model, self.layers, output=self.output, start_layer=self.start_layer,
                interpolate=self.interpolate, n_steps=self.n_steps, method=self.method,
                tolerance=self.tolerance, max_steps=self.max_steps, batch_size=self.batch_size,
                jit_compile=self.jit_compile, pre_softmax=self.pre_softmax, verbose=0,
            )
        return self.explainer

    def _probe_set(self):
        """``(inputs, labels or None)`` as numpy, read once."""
        if self._probe is None:
            self._probe = _read_probe(self.data, -1 if self.steps is None else self.steps)
        return self._probe

    def _explained_target(self, labels):
        if not (isinstance(self.target, str) and self.target == "label"):
            return self.target
        if labels is None:
            raise ValueError(
                "target='label' explains each probe example's label, but `data` "
                "holds no labels. Pass `(inputs, labels)` or a dataset of pairs."
            )
        return labels

    def _get_sinks(self) -> List[Sink]:
        """The built-in sinks the settings ask for, then the user's."""
        if self._sinks is None:
            sinks: List[Sink] = [LogsSink(self.name)]
            if self.log_dir is not None:
                sinks.append(TensorBoardSink(self.log_dir, self.name, self.summary_step,
                                             images=self.write_images is not False))
            if self.filename is not None:
                kind = CSVSink if self.filename.endswith(".csv") else NPZSink
                sinks.append(kind(self.filename, self.append))
            self._sinks = sinks + list(self.sinks)
        return self._sinks

    def _choose_followed(self, conductance: Dict[str, np.ndarray]):
        """The filters followed over time, chosen once: the user's, else the
        ``top_k`` largest means of the first record."""
        if self._followed is not None:
            return
        given = self.follow or {}
        self._followed = {n: list(given[n]) if n in given else
                          [int(j) for j in np.argsort(-conductance[n], kind="stable")[:self.top_k]]
                          for n in self.layers}
        self._followed_why = ("chosen by `follow=`" if given else "")

    def _record(self, epoch: int) -> dict:
        """Explains the probe set once and hands the record to every sink."""
        inputs, labels = self._probe_set()
        try:
            attr = self._get_explainer()(
                inputs, target=self._explained_target(labels), baselines=self.baselines
            )
            axes = channel_axes(self.channel_axis, self.layers)
            per_filter = {n: attr.per_filter(n, axes[n]) for n in self.layers}  # (B, C)
            conductance = {n: values.mean(axis=0) for n, values in per_filter.items()}
            first = self._followed is None
            self._choose_followed(conductance)
            record = Record(
                epoch=epoch, iteration=self._iteration(), conductance=conductance,
                abs_delta={n: float(np.abs(attr.delta[n]).mean()) for n in self.layers},
                followed=self._followed, last_epoch=self._last_epoch, attribution=attr)
            if first and not self._followed_why:
                self._followed_why = f"the top {self.top_k} at the first record, {record.when}"
            record.followed_why = self._followed_why
            # Drawn before the writes below, which hold Ctrl-C back.
            record.pictures = self._get_pictures().draw(
                self.model, record, per_filter, inputs, attr.target, self._images_wanted())
        except BaseException:
            # What was written so far stays: files are written whole per
            # record; the TensorBoard writer is flushed and closed.
            self._close_sinks()
            raise
        entry = record.history_entry()
        self.history.append(entry)
        self.last_attribution = attr
        if epoch >= 0:
            self._recorded_epoch = epoch
        with interrupts.deferred():
            for sink in self._get_sinks():
                sink.write(record)
        self._last_record = record
        return entry

    def _iteration(self) -> int:
        optimizer = getattr(self.model, "optimizer", None)
        iterations = getattr(optimizer, "iterations", None)
        return 0 if iterations is None else int(keras.ops.convert_to_numpy(iterations))

    def _log_values(self, entry: Optional[dict]) -> Dict[str, float]:
        """What the sinks add to Keras' ``logs`` for this epoch's record."""
        record = self._last_record if entry is not None else None
        values = {}
        for sink in self._get_sinks():
            values.update(sink.logs(record))
        return values

    def _close_sinks(self):
        for sink in self._sinks or []:
            sink.close()

    def history_array(self, layer: str) -> np.ndarray:
        """``(records, C)`` per-filter mean conductance of ``layer`` over time."""
        if layer not in self.layers:
            raise KeyError(f"No such layer: {layer!r}. Valid layers: {self.layers}.")
        return np.stack([r["conductance"][layer] for r in self.history]) if self.history \
            else np.zeros((0, 0), np.float32)

    # -- TensorBoard images ----------------------------------------------------

    def _get_pictures(self) -> RecordPictures:
        if self._pictures is None:
            self._pictures = RecordPictures(
                name=self.name, layers=self.layers, write_images=self.write_images,
                image_freq=self.image_freq, image_examples=self.image_examples,
                image_filters=self.image_filters, image_n_steps=self.image_n_steps,
                example_names=self.example_names, target=self.target,
                baselines=self.baselines, method=self.method, output=self.output,
                start_layer=self.start_layer, interpolate=self.interpolate,
                jit_compile=self.jit_compile, pre_softmax=self.pre_softmax,
                channel_axes=channel_axes(self.channel_axis, self.layers))
        return self._pictures

    def _images_wanted(self) -> bool:
        return any(s.wants_images for s in self._get_sinks())


# -- helpers ---------------------------------------------------------------------


def _check_follow(follow, layers: List[str]) -> Optional[Dict[str, List[int]]]:
    """``follow``: None, indices for every layer, or ``{layer: indices}``."""
    if follow is None:
        return None
    valid = "None, a list of filter indices, or a dict {layer: [indices]}"
    given = follow if isinstance(follow, dict) else {n: follow for n in layers}
    unknown = [n for n in given if n not in layers]
    if unknown:
        raise ValueError(message("follow", valid + f" of the layers {layers}", follow))
    out = {}
    for n, chosen in given.items():
        if isinstance(chosen, (str, bytes)) or not hasattr(chosen, "__iter__"):
            raise TypeError(message("follow", valid, follow))
        chosen = list(chosen)
        if not chosen or not all(isinstance(j, (int, np.integer)) and not isinstance(j, bool)
                                 for j in chosen):
            raise TypeError(message("follow", valid, follow))
        out[n] = [int(j) for j in chosen]
    return out


def _check_sinks(sinks) -> List[Sink]:
    sinks = list(sinks) if isinstance(sinks, (list, tuple)) else [sinks]
    bad = [s for s in sinks if not isinstance(s, Sink)]
    if bad:
        raise TypeError(message("sinks", "a list of kc.Sink objects (e.g. kc.CSVSink(...))",
                                got=f"sinks holding {bad!r}"))
    return sinks


def _check_on(on) -> tuple:
    names = (on,) if isinstance(on, str) else tuple(on) if isinstance(on, (list, tuple)) else ()
    if not names or any(n not in TRIGGERS for n in names):
        raise ValueError(message("on", f"one of {list(TRIGGERS)} or a list of them", on))
    return names


def _check_filename(filename) -> str:
    filename = check("filename", filename)
    if not filename.endswith(HISTORY_FORMATS):
        raise ValueError(message(
            "filename", f"a path ending in one of {list(HISTORY_FORMATS)} (the history format)",
            filename))
    return filename


def _as_numpy(structure):
    """Arrays (or a list/dict of them) as numpy, structure kept."""
    return tf.nest.map_structure(np.asarray, structure)


def _read_probe(data, steps: int):
    """Materializes the probe set once: ``(inputs, labels or None)``.

    Inputs keep their structure (one array, a list or a dict of arrays).
    """
    if isinstance(data, tf.data.Dataset):
        xs, ys = [], []
        for element in data.take(steps):
            x, y, _ = keras.utils.unpack_x_y_sample_weight(element)
            xs.append(_as_numpy(x))
            if y is not None:
                ys.append(np.asarray(y))
        if not xs:
            raise ValueError("The probe `data` dataset is empty.")
        inputs = tf.nest.map_structure(lambda *a: np.concatenate(a), *xs)
        return inputs, (_label_ids(np.concatenate(ys)) if ys else None)
    if isinstance(data, tuple):
        if len(data) != 2:
            raise ValueError(
                "A tuple probe `data` must be `(inputs, labels)` (as in model.fit; "
                "pass several inputs as a list or dict). Received a tuple of "
                f"{len(data)} items."
            )
        return _as_numpy(data[0]), _label_ids(np.asarray(data[1]))
    return (_as_numpy(data) if isinstance(data, (list, dict)) else np.asarray(data)), None


def _label_ids(labels: np.ndarray) -> np.ndarray:
    """``(B,)`` int ids from ids, ``(B, 1)`` ids or one-hot rows."""
    check_labels_dtype(labels.dtype, "data", "the probe labels")
    one_hot = labels.ndim >= 2 and labels.shape[-1] > 1
    return label_ids(tf.constant(labels), one_hot).numpy()
