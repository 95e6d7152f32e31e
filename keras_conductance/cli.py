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
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ImportError, ValueError, TypeError, FileNotFoundError) as err:
        print(f"keras-conductance: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
