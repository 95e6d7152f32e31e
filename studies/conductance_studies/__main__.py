"""``python -m conductance_studies {all,sentiment,imagenet,table1,browser} --out results/``."""

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
    parser.add_argument("which", choices=["all", "sentiment", "imagenet", "table1", "browser"],
                        help="which studies: the sentiment CNN (Section 6), the ImageNet "
                             "ablation/flip/pixel studies (Sections 5, 5.1), Table 1's feature "
                             "selection on four ImageNet label sets (Section 5.2), or all; "
                             "browser: the unit browser of the phrase-trained CNN's filters "
                             "over the negation study's corpus, checked against the study's "
                             "windows (Section 6.3)")
    parser.add_argument("--out", default="results", help="output folder (default: results)")
    parser.add_argument("--data", default=None,
                        help="the staged data folder holding sst/ and imagenet/ "
                             "(default: $KERAS_CONDUCTANCE_DATA or ../shared/data)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny settings (a smoke test in about a minute)")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if args.which == "browser":
        return _browser(args)
    from conductance_studies.run import FULL, QUICK, run_all

    which = ("sentiment", "imagenet", "table1") if args.which == "all" else (args.which,)
    run_all(args.out, data_dir=args.data, settings=QUICK if args.quick else FULL, which=which,
            say=lambda *a, **k: print(*a, **k, flush=True))
    return 0


def _browser(args) -> int:
    import json
    import pathlib

    from conductance_studies.unit_browsers import imagenet_browser, negation_browser

    out = pathlib.Path(args.out)
    say = lambda *a, **k: print(*a, **k, flush=True)  # noqa: E731
    images = imagenet_browser(out, data_dir=args.data, per_class=2 if args.quick else 10,
                              say=say)
    print(f"ImageNet: {images['photos']} photos, dataset run {images['seconds']} s, browser "
          f"with Eq. 2 maps {images['browser_seconds']} s: {images['page']}")
    summary = negation_browser(out, data_dir=args.data,
                               corpus_size=40 if args.quick else 4000,
                               n_steps=8 if args.quick else 64,
                               say=say)
    summary.pop("result")
    for f in summary["filters"]:
        print(f"filter {f['filter']} ({f['layer']} channel {f['channel']}, {f['side']} side): "
              f"the browser holds {f['agree']} of the study's {f['of']} sentences and windows")
    (out / "negation_browser.json").write_text(json.dumps(dict(summary, imagenet=images), indent=1))
    print(f"dataset run {summary['seconds']} s; unit browser: {summary['page']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
