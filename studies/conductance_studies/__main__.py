"""``python -m conductance_studies {all,sentiment,imagenet,table1} --out results/``."""

from __future__ import annotations

import argparse
import os
import sys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m conductance_studies",
        description="Reproduce the studies of 'How Important Is a Neuron?' on the staged "
                    "SST sentences and ImageNet photos; writes figures, results.md and "
                    "results.json.")
    parser.add_argument("which", choices=["all", "sentiment", "imagenet", "table1"],
                        help="which studies: the sentiment CNN (Section 6), the ImageNet "
                             "ablation/flip/pixel studies (Sections 5, 5.1), Table 1's feature "
                             "selection on four ImageNet label sets (Section 5.2), or all")
    parser.add_argument("--out", default="results", help="output folder (default: results)")
    parser.add_argument("--data", default=None,
                        help="the staged data folder holding sst/ and imagenet/ "
                             "(default: $KERAS_CONDUCTANCE_DATA or ../shared/data)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny settings (a smoke test in about a minute)")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from conductance_studies.run import FULL, QUICK, run_all

    which = ("sentiment", "imagenet", "table1") if args.which == "all" else (args.which,)
    run_all(args.out, data_dir=args.data, settings=QUICK if args.quick else FULL, which=which,
            say=lambda *a, **k: print(*a, **k, flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
