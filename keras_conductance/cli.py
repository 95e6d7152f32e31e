"""The ``keras-conductance`` command line."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Optional, Sequence

__all__ = ["main"]


def _demo(args) -> int:
    from keras_conductance.demo import run_demo

    _check_out_folder(args.out)  # before the training, not after it
    run_demo(args.out, epochs=args.epochs, verbose=0 if args.quiet else 1,
             started=args.started)
    return 0


def _browse(args) -> int:
    from keras_conductance.browser import unit_browser
    from keras_conductance.class_names import read_labels_file

    labels = None if args.labels is None else read_labels_file(args.labels)
    label_names = None if args.label_names is None else read_labels_file(args.label_names)
    vocabulary = None if args.vocabulary is None else _read_vocabulary(args.vocabulary)
    page = unit_browser(args.result, args.out, vocabulary=vocabulary, class_names=labels,
                        label_names=label_names, pad_id=None if args.pad_id < 0 else args.pad_id)
    print(f"Unit browser: {page} (open it in a web browser)")
    return 0


def _read_vocabulary(path: str) -> list:
    """Token strings by id: a ``.json`` list, or one token per line (line 1
    is id 0; lines are kept as they are, blank ones too, so ids stay aligned)."""
    import json
    import pathlib

    file = pathlib.Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"--vocabulary: no such file: {path}. Pass a text file with one "
                                "token per line (line 1 = id 0), or a JSON list of tokens.")
    text = file.read_text(encoding="utf-8")
    if file.suffix.lower() == ".json":
        try:
            tokens = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"--vocabulary {path} is not valid JSON ({err}).") from None
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            raise ValueError(f"--vocabulary {path}: expected a JSON list of strings.")
        return tokens
    # One token per line (BERT's vocab.txt starts "[PAD]": lines, not JSON).
    tokens = text.replace("\r\n", "\n").split("\n")
    if tokens and tokens[-1] == "":
        tokens.pop()  # the file's last newline
    return tokens


def _start_layer(model, requested: Optional[str], kind: str) -> Optional[str]:
    """The path's start: as given, or the Embedding of a token/text model."""
    import keras

    from keras_conductance.adapter import embedding_layers

    if requested is not None:
        return requested
    dtypes = [str(t.dtype) for t in model.inputs]
    if kind != "text" and any(keras.backend.is_float_dtype(d) for d in dtypes):
        return None
    embeddings = embedding_layers(model)
    if len(embeddings) != 1:
        raise ValueError(
            f"the model takes {', '.join(dtypes)} inputs, which cannot be interpolated; "
            f"pass --start-layer (its Embedding layers: {embeddings})")
    return embeddings[0]


def _take(inputs, rows):
    """Examples ``rows`` of an array or of a dict of arrays."""
    if isinstance(inputs, dict):
        return {k: v[rows] for k, v in inputs.items()}
    return inputs[rows]


MAPS_SHOWN = 6  # examples with Eq. 2 maps in a report (the cost is per example)


def _checks(model, inputs, baselines, measures, images, names, start, args):
    """Ablation of each example's top-3 filters (to zero, the paper's, and to
    the baseline's activation) and their Eq. 2 maps."""
    import numpy as np

    import keras_conductance as kc

    cond = measures.conductance
    layer = cond.layers[-1]
    axis = args.channel_axes[layer]
    top = cond.top_filters(layer, min(3, cond.per_filter(layer, axis).shape[1]), axis)
    target = None if np.any(cond.target < 0) else cond.target
    ablation = None
    if cond.is_cut[layer] is not False:  # a cut, or a unit inside a layer
        common = dict(target=target, filters=top, output=args.output, start_layer=start,
                      pre_softmax=args.pre_softmax, channel_axis=axis)
        drops = kc.ablation_scores(model, inputs, layer, **common)
        # Conductance starts at the baseline's activation, not at zero: this
        # second check removes that difference (the main cause of disagreement).
        to_baseline = kc.ablation_scores(model, inputs, layer, value="baseline",
                                         baselines=baselines, **common)
        ablation = {"layer": layer, "filters": top, "drops": drops,
                    "baseline_drops": to_baseline}
    figures = []
    shown = slice(0, min(MAPS_SHOWN, len(names)))
    if images is not None:
        maps = kc.pixel_maps(model, inputs[shown], layer, top[shown],
                             pixels=(255 * images[shown]).astype("uint8"),
                             example_names=names[shown],
                          target=None if target is None else target[shown],
                          output=args.output, pre_softmax=args.pre_softmax,
                          n_steps=args.n_steps, channel_axis=axis)
        figures.append((f"{layer}_pixel_maps", maps.plot(),
                        f"Where in each image the top filters of {layer} conduct (Eq. 2 "
                        "pixel maps)",
                        "Each row: a photo, then its top filters by conductance. A filter's "
                        "picture is the photo with each pixel dimmed by that pixel's share "
                        "of the filter's conductance (Eq. 2 of the paper, summed over colour; "
                        "positive shares only): bright pixels are the ones the filter's "
                        "conductance flows through. The number is the filter's conductance "
                        f"({_score_unit(model, args)})."))
    elif start is not None and str(model.inputs[0].dtype) != "string":
        # Token ids map to positions; a model that vectorizes strings inside
        # has no input position per token, so it gets no token maps.
        figures.append((f"{layer}_token_maps", _token_figure(
            model, _take(inputs, shown), layer, top[shown], names[shown], target, start, args),
            f"Which tokens the top filters of {layer} conduct through (Eq. 2)"))
    return ablation, figures


def _token_figure(model, inputs, layer, top, names, target, start, args):
    """Per-token Eq. 2 conductance of each example's top filters."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    import keras_conductance as kc

    fig, axes = plt.subplots(len(names), 1, figsize=(10, 1.2 * len(names) + 0.5), squeeze=False)
    for i, ax in enumerate(axes[:, 0]):
        maps = kc.neuron_conductance(model, _take(inputs, slice(i, i + 1)), layer, top[i],
                                     output=args.output, start_layer=start,
                                     target=None if target is None else target[i:i + 1],
                                     pre_softmax=args.pre_softmax, n_steps=args.n_steps,
                                     channel_axis=args.channel_axes[layer])[0]
        maps = maps.reshape(len(top[i]), -1)
        limit = float(np.abs(maps).max()) or 1.0
        ax.imshow(maps, cmap="RdBu", vmin=-limit, vmax=limit, aspect="auto")
        ax.set_yticks(range(len(top[i])), [f"filter {f}" for f in top[i]], fontsize=7)
        ax.set_title(str(names[i])[:100], fontsize=8)
    axes[-1, 0].set_xlabel("token position")
    fig.suptitle(f"{layer}: per-token conductance of each example's top filters (Eq. 2)",
                 fontsize=9)
    fig.tight_layout()
    return fig


def _channel_axes(specs, explainer, inputs, baselines) -> dict:
    """``--channel-axis`` values ("AXIS" or "UNIT=AXIS") as {unit: axis},
    checked against the units' output shapes before any work."""
    from keras_conductance.attribution import channel_axes, check_channel_axes

    default, given = -1, {}
    for spec in specs or []:
        unit, _, axis = spec.rpartition("=")
        try:
            value = int(axis)
        except ValueError:
            raise ValueError(f"--channel-axis takes AXIS or UNIT=AXIS with an integer AXIS. "
                             f"Received: {spec!r}.") from None
        if unit:
            given[unit] = value
        else:
            default = value  # for the units no UNIT=AXIS names, in any order
    unknown = [u for u in given if u not in explainer.layers]
    if unknown:
        raise ValueError(f"--channel-axis names units that are not explained: {unknown}. "
                         f"Explained units (--layer): {explainer.layers}.")
    axes = channel_axes({**dict.fromkeys(explainer.layers, default), **given}, explainer.layers)
    prepared = explainer.adapter.prepare(inputs, baselines)
    check_channel_axes(axes, explainer.unit_shapes(prepared), label="--channel-axis")
    return axes


def _check_out_folder(out: str):
    from keras_conductance.folders import check_writable

    check_writable(out, "--out", "Pass a folder you can write to.")


def _scale_and_baselines(model, inputs, kind, args, say):
    """Scales images as the model needs (inferred where it can be known) and
    makes the baselines; returns ``(inputs, baselines, baseline in words)``."""
    from keras_conductance import loading

    if kind != "image":
        if args.baseline in (None, "zero"):
            return inputs, None, "zeros"
        if args.baseline in loading.BASELINES:
            raise ValueError(f"--baseline {args.baseline} is for images; these inputs are "
                             f"{kind}. Use 'zero' or a .npy file.")
        return inputs, loading.image_baselines(args.baseline, inputs, "raw"), args.baseline
    mode, why = args.preprocess, "as asked"
    if mode == "auto":
        mode, why = loading.infer_preprocessing(model)
        why = why or "nothing in the model says how it scales pixels; check the predictions"
    say(f"Image scaling: {mode} ({why}).")
    pixels = inputs
    kind_of_baseline = args.baseline or "black"
    baselines = loading.image_baselines(kind_of_baseline, pixels, mode)
    words = {"black": "black image", "zero": f"zeros after '{mode}' scaling",
             "uniform": "uniform noise image (seed 0)", "blur": "the blurred photo"}
    return (loading.PREPROCESSING[mode](pixels), baselines,
            words.get(kind_of_baseline, kind_of_baseline))


def _warn_if_degenerate(measures, kind, say, class_names=None):
    """All inputs predicted as one class usually means a wrong scaling."""
    import numpy as np

    from keras_conductance.class_names import label_of

    top = measures.conductance.target
    if kind == "image" and len(top) >= 3 and np.unique(top).size == 1:
        say(f"Warning: all {len(top)} inputs are predicted as class "
            f"{label_of(int(top[0]), class_names)}. If the "
            "photos are of different things, the scaling is probably wrong: pass "
            "--preprocess raw, unit, symmetric, caffe or torch (0..255, 0..1, -1..1, "
            "ResNet/VGG's BGR mean removal, DenseNet's ImageNet mean/std).")


def _n_classes(model, output) -> Optional[int]:
    """Size of the explained output's last axis (None: not known)."""
    try:
        if isinstance(output, str):
            tensor = model.get_layer(output).output
        else:
            tensor = model.outputs[output or 0]
        return int(tensor.shape[-1])
    except (ValueError, IndexError, TypeError, AttributeError):
        return None


def _score_unit(model, args) -> str:
    """What F is, for the report's axes: the logit, a probability, or a score."""
    from keras_conductance.targets import output_activation

    if args.pre_softmax:
        return "logit"
    if args.output is None and output_activation(model) in ("softmax", "sigmoid"):
        return "probability"
    return "score"


def _explained(target, args, class_names) -> str:
    from keras_conductance.class_names import label_of

    what = "the top predicted class" if target is None else f"class {label_of(target, class_names)}"
    return ("logit of " if args.pre_softmax else "") + what


def _report(args) -> int:
    import json

    from keras_conductance import loading, report
    from keras_conductance.class_names import class_names_for, read_labels_file
    from keras_conductance.explainer import Conductance

    say = (lambda *a: None) if args.json else (lambda *a: print(*a, file=sys.stderr))
    _check_out_folder(args.out)  # before the work, not after it
    labels = None if args.labels is None else read_labels_file(args.labels)
    say(f"Loading {args.model} ...")
    model = loading.load_model_file(args.model, unsafe=args.unsafe)
    inputs, names, kind = loading.read_inputs(args.inputs, model, preprocess=None)
    pixels = inputs if kind == "image" else None  # 0..255, for the report's pictures
    inputs, baselines, baseline_text = _scale_and_baselines(model, inputs, kind, args, say)
    start = _start_layer(model, args.start_layer, kind)
    output = args.output
    if output is not None and output.lstrip("-").isdigit():
        output = int(output)
    args.output = output
    explainer = Conductance(model, args.layer, output=output, start_layer=start,
                            n_steps=args.n_steps, tolerance=args.tolerance,
                            pre_softmax=args.pre_softmax, max_steps=args.max_steps,
                            verbose=0 if args.json else 1)
    args.channel_axes = _channel_axes(args.channel_axis, explainer, inputs, baselines)
    unchecked = None
    if explainer.tolerance is not None and explainer.unjudged:
        # A unit inside a layer, or a layer that other paths bypass: nothing
        # must add up to F(x) - F(x'); the error estimate still holds them.
        unchecked = (f"{explainer.unjudged} are not cuts of the network (units inside a "
                     "layer count as unknown), so completeness cannot be checked on them; "
                     f"--tolerance {args.tolerance} holds them to their per-filter error "
                     "estimate only.")
        say("Note: " + unchecked)
    say(f"Explaining {len(names)} {kind} input(s) at layers {args.layer} "
        + (f"({args.n_steps} steps) ..." if explainer.tolerance is None else
           f"(tolerance {args.tolerance}, up to {args.max_steps} steps) ..."))
    target = None if args.target == "top" else _class_index(args.target)
    class_names, names_note = class_names_for(_n_classes(model, output), labels)
    if class_names is None and names_note:  # an optional step failed: say so here too
        print(f"keras-conductance: warning: {names_note}", file=sys.stderr)
    measures = explainer.explain(inputs, target=target, baselines=baselines)
    _warn_if_degenerate(measures, kind, say, class_names)
    images = None if pixels is None else pixels / 255.0
    say("Checking the top filters by ablation and drawing Eq. 2 maps ...")
    ablation, figures = _checks(model, inputs, baselines, measures, images, names, start, args)
    notes = [f"Model {args.model}; inputs {args.inputs}; baseline: "
             + ("zero embedding" if start else baseline_text) + "; explained score: "
             + _explained(target, args, class_names) + "."] + ([unchecked] if unchecked else [])
    files = report.write_report(
        args.out, measures, images=images, names=names, class_names=class_names,
        score_unit=_score_unit(model, args), title=f"Conductance report: {model.name}",
        ablation=ablation, extra_figures=figures,
        notes=notes + ([names_note] if names_note else []), channel_axes=args.channel_axes,
    )
    if args.json:
        info = json.loads(files[0].read_text())  # report.json: names, ablation check
        info["files"] = [str(f) for f in files]
        print(json.dumps(info, indent=1))
    else:
        say(f"Wrote {len(files)} files in {time.time() - args.started:.0f} s; "
            f"open {files[-1].resolve()}")
    return 0


def _vocabulary_flag(parser, flag: str, name: str, help_: str = "", **settings):
    """A flag that is argument ``name`` of the vocabulary (``arguments.py``):
    its help shows the declared meaning and range; its value is converted
    and checked by ``_checked_flags`` with the other such flags."""
    from keras_conductance.arguments import ARGUMENTS

    arg = ARGUMENTS[name]
    default = settings.pop("default", arg.default)
    text = f"{help_ or arg.meaning} ({arg.valid.replace(' or None', '')}; as `{name}=` in Python)"
    parser.add_argument(flag, default=default, help=text, **settings)
    flags = parser.get_default("vocabulary_flags") or {}
    parser.set_defaults(vocabulary_flags={**flags, flag.lstrip("-").replace("-", "_"): (name, flag)})


def _checked_flags(args) -> list:
    """Converts and checks every vocabulary flag; returns one error line
    per bad flag (all of them, not only the first)."""
    from keras_conductance.arguments import ARGUMENTS, check, message

    errors = []
    for dest, (name, flag) in (getattr(args, "vocabulary_flags", None) or {}).items():
        value, arg = getattr(args, dest), ARGUMENTS[name]
        try:
            if isinstance(value, str) and arg.kind in ("int", "number"):
                try:
                    value = int(value) if arg.kind == "int" else float(value)
                except ValueError:
                    raise TypeError(message(flag, arg.valid, got=f"{flag} {value!r}")) from None
            setattr(args, dest, check(name, value, label=flag))
        except (TypeError, ValueError) as err:
            errors.append(str(err))
    return errors


class _ShowDefaults(argparse.ArgumentDefaultsHelpFormatter):
    """Shows an option's default where it has a meaningful one."""

    def _get_help_string(self, action):
        if action.default in (None, False) or action.required:
            return action.help
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="keras-conductance",
        description="How important is a hidden unit? Conductance for Keras models.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    defaults = _ShowDefaults
    demo = sub.add_parser(
        "demo", help="train a small CNN on bundled digits, explain it, write a report",
        formatter_class=defaults)
    _vocabulary_flag(demo, "--out", "out")
    _vocabulary_flag(demo, "--epochs", "epochs")
    demo.add_argument("--quiet", action="store_true", help="no progress messages")
    demo.set_defaults(func=_demo)

    browse = sub.add_parser(
        "browse", help="write the unit browser of a dataset result saved with top_k",
        formatter_class=defaults)
    browse.add_argument("result", help="a .npz written by DatasetConductance.save (a "
                        "conductance_over_dataset result with top_k)")
    _vocabulary_flag(browse, "--out", "out", "the browser's folder (created; index.html inside)",
                     default="unit-browser")
    browse.add_argument("--vocabulary", default=None, metavar="FILE",
                        help="token strings for text models: one token per line (line 1 = id 0), "
                             "or a .json list; none given: token ids are shown")
    browse.add_argument("--labels", default=None, metavar="FILE",
                        help="class names, one per line (line 1 = class 0), or JSON")
    browse.add_argument("--label-names", default=None, metavar="FILE",
                        help="names of the dataset's label ids, if they differ from the class "
                             "names (a one-logit model), in the same format")
    browse.add_argument("--pad-id", type=int, default=0,
                        help="token id of padding, trimmed from both ends of texts without a "
                             "padding_mask (-1: trim nothing)")
    browse.set_defaults(func=_browse)

    rep = sub.add_parser("report", help="explain a saved model's layers on your inputs",
                         formatter_class=defaults)
    rep.add_argument("model", help="a model saved with model.save('...keras')")
    rep.add_argument("--layer", action="append", required=True,
                     help="layer to explain (repeat for several)")
    rep.add_argument("--channel-axis", action="append", default=None, metavar="[UNIT=]AXIS",
                     help="axis of the units' outputs that holds the filters (default -1); "
                          "UNIT=AXIS sets it for one unit, e.g. "
                          "'block/attention/attention_output:input=-2' for attention heads "
                          "(repeat for several)")
    rep.add_argument("--inputs", required=True,
                     help=".npy array, .npz with one array per named model input, image file, "
                          "folder of images, or .txt (one sentence per line)")
    rep.add_argument("--output", default=None,
                     help="explained output of a multi-output model (name or index)")
    rep.add_argument("--target", default="top", help="class index to explain, or 'top' (the top predicted class)")
    _vocabulary_flag(rep, "--out", "out")
    rep.add_argument("--labels", default=None, metavar="FILE",
                     help="class names to show beside class indices: one name per line "
                          "(line 1 = class 0), or JSON (a list, or Keras' imagenet_class_index"
                          ".json); none given: ImageNet's names for 1000-class models")
    rep.add_argument("--preprocess", choices=["auto", "raw", "unit", "symmetric", "caffe", "torch"],
                     default="auto",
                     help="image scaling: raw 0..255, unit 0..1, symmetric -1..1, caffe "
                          "(BGR, ImageNet mean removed: ResNet v1, VGG), torch (ImageNet "
                          "mean/std: DenseNet); auto: from a Rescaling/Normalization layer "
                          "in the model or a keras.applications model name")
    rep.add_argument("--baseline", default=None,
                     help="path start: black (images' default: the paper's), zero, uniform, "
                          "blur, or a .npy file of baselines (default for other inputs: zero)")
    rep.add_argument("--start-layer", default=None,
                     help="start the path at this layer (none given: the Embedding of a text model)")
    rep.add_argument("--pre-softmax", action="store_true", help="explain the logit, not the softmax")
    _vocabulary_flag(rep, "--n-steps", "n_steps",
                     "steps of the first, uniform grid along the path")
    _vocabulary_flag(rep, "--tolerance", "tolerance",
                     "relative error allowed: the per-filter error estimate, and "
                     "completeness on cut layers", default=0.02)
    _vocabulary_flag(rep, "--max-steps", "max_steps",
                     "most integration steps per input that --tolerance may reach")
    rep.add_argument("--unsafe", action="store_true",
                     help="allow unsafe deserialization (Lambda layers); only for trusted files")
    rep.add_argument("--json", action="store_true", help="print machine-readable results")
    rep.set_defaults(func=_report)
    return parser


def _class_index(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(
            f"--target must be a class index (e.g. 3) or 'top'. Received: {text!r}."
        ) from None


def main(argv: Optional[Sequence[str]] = None, started: Optional[float] = None) -> int:
    """Runs the command line; returns the exit status.

    Args:
        argv: the arguments (default: ``sys.argv[1:]``).
        started: the ``time.time()`` that "Done in N s" counts from (the
            launcher's, taken before TensorFlow was imported; default: now).
    """
    from keras_conductance.loading import LoadError

    args = build_parser().parse_args(argv)
    args.started = time.time() if started is None else started
    errors = _checked_flags(args)
    for line in errors:
        print(f"keras-conductance: error: {' '.join(line.split())}", file=sys.stderr)
    if errors:
        return 2
    try:
        return args.func(args)
    except (ImportError, ValueError, TypeError, FileNotFoundError, LoadError) as err:
        message = " ".join(str(err).split())
        print(f"keras-conductance: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
