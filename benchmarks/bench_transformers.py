"""Units inside transformer blocks: every block in one pass.

Run from the repository root::

    python benchmarks/bench_transformers.py            # BERT-base shape (~5 min on 2 CPU cores)
    python benchmarks/bench_transformers.py --quick    # tiny settings, a smoke test

A keras-hub ``BertTextClassifier`` of BERT-base shape (12 blocks, hidden 768,
intermediate 3072, 12 heads; random init, no download), sequence 64, B = 2,
n_steps = 20, explained from ``start_layer="token_embedding"``:

  ffn_all / ffn_first   FFN neurons (``transformer_layer_i/feedforward_intermediate_dense``)
                        of all 12 blocks in one call / of the first block alone
  loop / ffn_all        a per-block loop (12 calls, what knowledge-neuron code
                        does) / all blocks in one call
  tapped / split        a graph layer tapped (``transformer_layer_5:output``) /
                        the same layer split from the graph (``transformer_layer_5``)

Timing protocol as ``bench_core.py``: each variant runs once first (tracing
excluded), then the variants run interleaved for ``--rounds`` rounds; medians
and the per-round spread are printed, ratios are between medians of one run.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


from bench_core import LOAD, interleaved, make_bert, quiet, round_ratio  # noqa: E402

FULL = dict(layers=12, hidden=768, heads=12, intermediate=3072, length=64, batch=2,
            n_steps=20, rounds=2)
QUICK = dict(layers=3, hidden=32, heads=2, intermediate=64, length=16, batch=2,
             n_steps=4, rounds=2)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--rounds", type=int)
    args = p.parse_args(argv)
    cfg = dict(QUICK if args.quick else FULL)
    if args.rounds:
        cfg["rounds"] = args.rounds
    LOAD.enabled = False
    import tensorflow as tf

    import keras_conductance as kc

    quiet()
    t0 = time.perf_counter()
    print(f"settings: {cfg}; GPUs visible: {len(tf.config.list_physical_devices('GPU'))}")
    model, inputs = make_bert(cfg)
    ffn = [f"transformer_layer_{i}/feedforward_intermediate_dense" for i in range(cfg["layers"])]
    middle = f"transformer_layer_{cfg['layers'] // 2}"

    def call(units):
        # One explainer per variant, built once: a loop over 12 blocks through
        # kc.conductance would overflow the shortcut cache (8 option sets per
        # model) and retrace every call, which is not what is measured here.
        explainer = kc.Conductance(model, units, start_layer="token_embedding",
                                   n_steps=cfg["n_steps"], jit_compile="auto", verbose=0)
        return lambda: explainer(inputs, target=1)

    per_block = [call(unit) for unit in ffn]

    def loop():
        for run in per_block:
            run()

    variants = {"ffn_all": call(ffn), "ffn_first": call(ffn[0]), "loop": loop,
                "tapped": call(f"{middle}:output"), "split": call(middle)}
    med, times, cpu = interleaved(variants, cfg["rounds"], "bert")
    ratios = {
        "ffn_all / ffn_first": ("ffn_all", "ffn_first", "<= 1.15"),
        "loop / ffn_all": ("loop", "ffn_all", ">= 8"),
        "tapped / split": ("tapped", "split", "<= 1.05"),
    }
    print("\n| ratio | wall-clock medians | median of per-round ratios | by CPU time | goal |")
    print("| --- | --- | --- | --- | --- |")
    for label, (a, b, goal) in ratios.items():
        print(f"| {label} | {med[a]:.2f} s / {med[b]:.2f} s = **{med[a] / med[b]:.2f}** | "
              f"{round_ratio(times, a, b):.2f} | {cpu[a] / cpu[b]:.2f} | {goal} |")
    seqs = cfg["batch"] / med["ffn_all"]
    print(f"\nall {cfg['layers']} blocks' FFN neurons: {seqs:.2f} sequences/s "
          f"({cfg['n_steps']} steps each); total runtime {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
