"""Decoder language models: FFN neurons and heads of every block in one call.

Run from the repository root::

    python benchmarks/bench_decoders.py            # Llama-3 shape on this CPU (~6 min on 2 cores)
    python benchmarks/bench_decoders.py --quick    # tiny settings, a smoke test
    python benchmarks/bench_decoders.py --gpu      # Llama-3.2-1B shape, where a GPU is visible

A keras-hub ``Llama3CausalLM`` (random init, no download), explained from
``start_layer="token_embedding"`` for ``kc.next_token`` at the last position,
B = 1, ``n_steps=32`` (33 path points):

  all      ``"*:ffn_neurons"`` and ``"*:heads"``: every block's FFN neurons and
           heads in one call
  bare     the bare forward + backward over the same 33 path rows (the
           explained score's gradient with respect to the embedding rows):
           what any path method must pay
  loop     a per-block loop: one explainer per block, FFN neurons and heads
  peak RSS of ``all`` and of ``bare``, each in a fresh process

CPU shape (``FULL``): 8 blocks, hidden 512, 8 query / 2 key-value heads,
intermediate 1408, vocabulary 8192, sequence 128. ``--gpu``: 16 blocks, hidden
2048, intermediate 8192, 32 / 8 heads, vocabulary 128256, a 128-token prompt,
FFN neurons of all 16 blocks; prints seconds per prompt and the fraction of
``--peak-tflops`` reached (the arithmetic counted as 3 x the forward's
matrix products).

Timing protocol as ``bench_core.py``: each variant runs once first (tracing
excluded), then the variants run interleaved for ``--rounds`` rounds; medians
and the spread are printed, ratios are between medians of one run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_core import LOAD, interleaved, quiet, round_ratio  # noqa: E402

FULL = dict(layers=8, hidden=512, heads=8, kv_heads=2, intermediate=1408, vocab=8192,
            length=128, n_steps=32, rounds=2, units=("ffn_neurons", "heads"))
QUICK = dict(layers=2, hidden=32, heads=4, kv_heads=2, intermediate=64, vocab=100,
             length=16, n_steps=8, rounds=2, units=("ffn_neurons", "heads"))
GPU = dict(layers=16, hidden=2048, heads=32, kv_heads=8, intermediate=8192, vocab=128256,
           length=128, n_steps=32, rounds=3, units=("ffn_neurons",), dtype="bfloat16")


def build(cfg):
    """The model, one prompt and the explained target."""
    import keras
    import keras_hub
    import numpy as np

    import keras_conductance as kc

    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.Llama3Backbone(
        vocabulary_size=cfg["vocab"], num_layers=cfg["layers"], num_query_heads=cfg["heads"],
        num_key_value_heads=cfg["kv_heads"], hidden_dim=cfg["hidden"],
        intermediate_dim=cfg["intermediate"], dtype=cfg.get("dtype", "float32"))
    lm = keras_hub.models.Llama3CausalLM(backbone=backbone, preprocessor=None)
    ids = np.random.default_rng(0).integers(1, cfg["vocab"], (1, cfg["length"])).astype("int32")
    batch = {"token_ids": ids, "padding_mask": np.ones_like(ids)}
    return lm, batch, kc.next_token(7)


def variants(cfg):
    import numpy as np
    import tensorflow as tf

    import keras_conductance as kc
    from keras_conductance.adapter import ModelAdapter

    lm, batch, target = build(cfg)
    units = [f"*:{u}" for u in cfg["units"]]
    steps = cfg["n_steps"]

    def explainer(names):
        ex = kc.Conductance(lm, names, start_layer="token_embedding", n_steps=steps,
                            jit_compile="auto", verbose=0)
        return lambda: ex(batch, target=target)

    everything = explainer(units)
    blocks = [n.split(":")[0] for n in kc.Conductance(lm, units[:1], start_layer="token_embedding",
                                                      verbose=0).layers]
    per_block = [explainer([f"{b}:{u}" for u in cfg["units"]]) for b in blocks]

    # The bare pass: the probe from the embedding to the logits, no units.
    adapter = ModelAdapter(lm, [], start_layer="token_embedding")
    prep = adapter.prepare(batch)
    x, xb = prep.xs[0], prep.baselines[0]
    alphas = np.linspace(0.0, 1.0, steps + 1, dtype=np.float32)
    rows = tf.constant(xb + alphas[:, None, None] * (x - xb))
    consts = [tf.constant(np.repeat(c, steps + 1, axis=0)) for c in prep.consts]
    pairs = tf.constant(np.repeat(adapter.token_pairs(target, adapter.structure(batch)),
                                  steps + 1, axis=0))
    dtype = adapter.probe.inputs[0].dtype

    @tf.function(jit_compile=bool(tf.config.list_logical_devices("GPU")))
    def bare_step(rows, consts, pairs):
        with tf.GradientTape() as tape:
            tape.watch(rows)
            out = adapter.probe([tf.cast(rows, dtype)] + consts, training=False)
            score = tf.reduce_sum(target.scorer(tf.cast(out, tf.float32), pairs))
        return tape.gradient(score, rows)

    def bare():
        bare_step(rows, consts, pairs).numpy()

    return {"all": everything, "bare": bare, "loop": lambda: [run() for run in per_block]}


def child(cfg, name):
    """Runs one variant twice in this fresh process; prints its peak RSS."""
    quiet()
    fn = variants(cfg)[name]
    fn()
    fn()
    print(json.dumps({"maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def peak_rss(args, name) -> float:
    cmd = [sys.executable, os.path.abspath(__file__), "--child", name] + (
        ["--quick"] if args.quick else [])
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])["maxrss_mib"]


def matmul_flops(cfg) -> float:
    """Multiply-adds x 2 of one forward pass over the path rows."""
    h, f, t, layers = cfg["hidden"], cfg["intermediate"], cfg["length"], cfg["layers"]
    head_dim = h // cfg["heads"]
    per_token = (h * h * 2 + 2 * h * cfg["kv_heads"] * head_dim + 3 * h * f) * layers
    attention = 2 * t * h * layers  # scores and values, per token
    return 2.0 * (per_token + attention + h * cfg["vocab"]) * t * (cfg["n_steps"] + 1)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--gpu", action="store_true", help="the Llama-3.2-1B shape (needs a GPU)")
    p.add_argument("--rounds", type=int)
    p.add_argument("--peak-tflops", type=float, default=989.0,
                   help="the accelerator's peak dense TFLOP/s (H100/H200 bf16: 989)")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    cfg = dict(GPU if args.gpu else QUICK if args.quick else FULL)
    if args.rounds:
        cfg["rounds"] = args.rounds
    if args.child:
        return child(cfg, args.child)
    t0 = time.perf_counter()
    memory = {} if args.gpu else {n: peak_rss(args, n) for n in ("all", "bare")}
    LOAD.enabled = False
    import tensorflow as tf

    quiet()
    gpus = tf.config.list_physical_devices("GPU")
    print(f"settings: {cfg}; GPUs visible: {len(gpus)}")
    runs = variants(cfg)
    if args.gpu:
        runs.pop("loop")
    med, times, cpu = interleaved(runs, cfg["rounds"], "llama")
    print("\n| ratio | wall-clock medians | median of per-round ratios | by CPU time | goal |")
    print("| --- | --- | --- | --- | --- |")
    ratios = {"all / bare": ("all", "bare", "<= 1.2")}
    if "loop" in med:
        ratios["loop / all"] = ("loop", "all", "")
    for label, (a, b, goal) in ratios.items():
        print(f"| {label} | {med[a]:.2f} s / {med[b]:.2f} s = **{med[a] / med[b]:.2f}** | "
              f"{round_ratio(times, a, b):.2f} | {cpu[a] / cpu[b]:.2f} | {goal} |")
    if memory:
        print(f"\npeak RSS (fresh process, two calls): all {memory['all']:.0f} MiB, "
              f"bare {memory['bare']:.0f} MiB, ratio {memory['all'] / memory['bare']:.2f}")
    flops = 3 * matmul_flops(cfg)
    print(f"\nall blocks: {med['all']:.2f} s per prompt; ~{flops / 1e12:.2f} TFLOP of matrix "
          f"products, {flops / med['all'] / 1e12:.2f} TFLOP/s"
          + (f" = {100 * flops / med['all'] / 1e12 / args.peak_tflops:.1f} % of "
             f"{args.peak_tflops:.0f} TFLOP/s" if gpus else "")
          + f"; total runtime {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
