"""The ``keras-conductance`` command line."""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

__all__ = ["main"]


def _demo(args) -> int:
    from keras_conductance.demo import run_demo

    run_demo(args.out, epochs=args.epochs, verbose=0 if args.quiet else 1)
    return 0


def _start_layer(model, requested: Optional[str], kind: str) -> Optional[str]:
    """The path's start: as given, or the Embedding of a token/text model."""
    import keras

    from keras_conductance.graph import layer_graph

    if requested is not None:
        return requested
    dtype = str(model.inputs[0].dtype)
    if kind != "text" and "int" not in dtype:
        return None
    graph = layer_graph(model)
    embeddings = [n for n in graph.order
                  if isinstance(graph.tensors[n]._keras_history.operation, keras.layers.Embedding)]
    if len(embeddings) != 1:
        raise ValueError(
            f"the model takes {dtype} inputs, which cannot be interpolated; pass "
            f"--start-layer (its Embedding layers: {embeddings})")
    return embeddings[0]


def _report(args) -> int:
    import json

    from keras_conductance import loading, report
    from keras_conductance.explainer import Conductance

    say = (lambda *a: None) if args.json else (lambda *a: print(*a, file=sys.stderr))
    say(f"Loading {args.model} ...")
    model = loading.load_model_file(args.model, unsafe=args.unsafe)
    inputs, names, kind = loading.read_inputs(args.inputs, model, args.preprocess)
    start = _start_layer(model, args.start_layer, kind)
    say(f"Explaining {len(names)} {kind} input(s) at layers {args.layer} "
        f"(tolerance {args.tolerance}, up to {args.max_steps} steps) ...")
    explainer = Conductance(model, args.layer, n_steps=args.steps, start_layer=start,
                            pre_softmax=args.pre_softmax, tolerance=args.tolerance,
                            max_steps=args.max_steps, verbose=0 if args.json else 1)
    target = None if args.target == "top" else int(args.target)
    measures = explainer.explain(inputs, target=target)
    images = inputs if kind == "image" else None
    if images is not None:
        lo, hi = float(images.min()), float(images.max())
        images = (images - lo) / ((hi - lo) or 1.0)
    files = report.write_report(
        args.out, measures, images=images, names=names,
        title=f"Conductance report: {model.name}",
        notes=[f"Model {args.model}; inputs {args.inputs}; baseline: zero"
               + (" embedding" if start else "") + "; explained score: "
               + ("logit of " if args.pre_softmax else "")
               + ("the top predicted class" if target is None else f"class {target}") + "."],
    )
    if args.json:
        info = report.summary(measures)
        for ex, name in zip(info["examples"], names):
            ex["name"] = name
        info["files"] = [str(f) for f in files]
        print(json.dumps(info, indent=1))
    else:
        say(f"Wrote {len(files)} files; open {files[-1].resolve()}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="keras-conductance",
        description="How important is a hidden unit? Conductance for Keras models.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo", help="train a small CNN on bundled digits, explain it, write a report")
    demo.add_argument("--out", default="conductance-report", help="report folder")
    demo.add_argument("--epochs", type=int, default=8, help="training epochs")
    demo.add_argument("--quiet", action="store_true", help="no progress messages")
    demo.set_defaults(func=_demo)

    rep = sub.add_parser("report", help="explain a saved model's layers on your inputs")
    rep.add_argument("model", help="a model saved with model.save('...keras')")
    rep.add_argument("--layer", action="append", required=True,
                     help="layer to explain (repeat for several)")
    rep.add_argument("--inputs", required=True,
                     help=".npy array, image file, folder of images, or .txt (one sentence per line)")
    rep.add_argument("--target", default="top", help="class index to explain, or 'top' (default)")
    rep.add_argument("--out", default="conductance-report", help="report folder")
    rep.add_argument("--preprocess", choices=["raw", "unit", "symmetric"], default="raw",
                     help="image scaling: raw 0..255, unit 0..1, symmetric -1..1")
    rep.add_argument("--start-layer", default=None,
                     help="start the path at this layer (default: the Embedding of a text model)")
    rep.add_argument("--pre-softmax", action="store_true", help="explain the logit, not the softmax")
    rep.add_argument("--steps", type=int, default=64, help="initial integration steps")
    rep.add_argument("--tolerance", type=float, default=0.02,
                     help="completeness tolerance, relative to |F(x) - F(x')|")
    rep.add_argument("--max-steps", type=int, default=1024)
    rep.add_argument("--unsafe", action="store_true",
                     help="allow unsafe deserialization (Lambda layers); only for trusted files")
    rep.add_argument("--json", action="store_true", help="print machine-readable results")
    rep.set_defaults(func=_report)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Runs the command line; returns the exit status."""
    from keras_conductance.loading import LoadError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ImportError, ValueError, TypeError, FileNotFoundError, LoadError) as err:
        message = " ".join(str(err).split())
        print(f"keras-conductance: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
