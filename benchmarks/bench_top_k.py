"""What ``top_k`` costs: a dataset run with top examples / the same run without.

Run from the repository root, alone on the machine::

    python benchmarks/bench_top_k.py           # ~6 min on 2 CPU cores
    python benchmarks/bench_top_k.py --quick   # smoke test (< 1 min)

Three models, random weights (no download), each streamed through
``conductance_over_dataset`` with and without ``top_k=10``:

  text      the paper's sentiment CNN (three Conv1D layers of 100 filters,
            sentences of 10-30 tokens padded to 56), its three conv layers
            (every window a position).
  image     MobileNet v1 0.25 at 128 px, ``conv_pw_7_relu`` (8 x 8 cells,
            128 filters).
  decoder   a keras-hub Llama 3 (4 blocks, hidden 128, intermediate 512,
            64 tokens), every block's FFN neurons (every token a position).

The ``top_k`` run includes everything it adds: the compiled candidates, the
host's merge after every batch, the histograms and the second pass that
reads the kept examples' inputs. Goal: ratio <= 1.10.

Timing protocol (``bench_core.interleaved``): each variant runs once first
(tracing excluded), then the two alternate for ``--rounds`` rounds; the
median of the per-round wall-time ratios is reported, with the spread, and
the ratio of the median CPU times. The datasets run without tf.data's
autotuning (``without_autotune``), which otherwise stalls either variant for
about a second at random, with the CPUs idle.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_core import interleaved, load_avg, quiet, round_ratio  # noqa: E402

FULL = dict(rounds=7, examples=256, batch=32, n_steps=32, k=10)
QUICK = dict(rounds=2, examples=16, batch=8, n_steps=4, k=3)


def text_case(cfg):
    import keras
    import numpy as np
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    tokens = keras.Input((56,), dtype="int32")
    emb = keras.layers.Embedding(15000, 128, name="embedding")(tokens)
    pooled = []
    for width in (3, 4, 5):
        conv = keras.layers.Conv1D(100, width, activation="relu", name=f"conv{width}")(emb)
        pooled.append(keras.layers.GlobalMaxPooling1D()(conv))
    logit = keras.layers.Dense(1)(keras.layers.Concatenate()(pooled))
    model = keras.Model(tokens, logit)
    rng = np.random.default_rng(0)
    ids = rng.integers(2, 15000, (cfg["examples"], 56)).astype("int32")
    ids[np.arange(56)[None] >= rng.integers(10, 31, cfg["examples"])[:, None]] = 0
    ds = tf.data.Dataset.from_tensor_slices(ids).batch(cfg["batch"])
    return model, ds, ["conv3", "conv4", "conv5"], dict(start_layer="embedding", target=0)


def image_case(cfg):
    import keras
    import numpy as np
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNet(input_shape=(128, 128, 3), alpha=0.25, weights=None)
    x = np.random.default_rng(0).uniform(-1, 1, (cfg["examples"] // 4, 128, 128, 3))
    ds = tf.data.Dataset.from_tensor_slices(x.astype("float32")).batch(cfg["batch"] // 4)
    return model, ds, ["conv_pw_7_relu"], dict(target=None, pre_softmax=True)


def decoder_case(cfg):
    import keras
    import keras_hub
    import numpy as np
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.Llama3Backbone(
        vocabulary_size=1000, num_layers=4, num_query_heads=4, num_key_value_heads=2,
        hidden_dim=128, intermediate_dim=512)
    lm = keras_hub.models.Llama3CausalLM(backbone=backbone, preprocessor=None)
    ids = np.random.default_rng(0).integers(1, 1000, (cfg["examples"] // 4, 64)).astype("int32")
    ds = tf.data.Dataset.from_tensor_slices(
        {"token_ids": ids, "padding_mask": np.ones_like(ids)}).batch(cfg["batch"] // 4)
    # The next token's logit at the last position (every prompt is 64 tokens).
    return lm, ds, ["*:ffn_neurons"], dict(start_layer="token_embedding",
                                           target=lambda logits: logits[:, -1, 7])


CASES = {"text": text_case, "image": image_case, "decoder": decoder_case}


def without_autotune(dataset):
    """tf.data's autotuning thread makes deleting an iterator wait about a
    second, now and then, with the CPUs idle: at the end of either variant's
    run, at random. It is noise here (the datasets are in memory), so the
    timed datasets run without it."""
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args(argv)
    cfg = dict(QUICK if args.quick else FULL)
    if args.rounds:
        cfg["rounds"] = args.rounds
    quiet()
    import keras_conductance as kc

    print(f"bench_top_k: {cfg} (load average {load_avg()})", flush=True)
    figures = {}
    for name in args.cases:
        model, ds, layers, settings = CASES[name](cfg)
        ds = without_autotune(ds)

        def run(top_k, model=model, ds=ds, layers=layers, settings=settings):
            return lambda: kc.conductance_over_dataset(model, ds, layers, n_steps=cfg["n_steps"],
                                                       top_k=top_k, verbose=0, **settings)

        _, times, cpu = interleaved({"plain": run(None), "top_k": run(cfg["k"])}, cfg["rounds"],
                                  name)
        ratios = sorted(t / p for t, p in zip(times["top_k"], times["plain"]))
        figures[name] = dict(ratio=round_ratio(times, "top_k", "plain"), min=ratios[0],
                             max=ratios[-1], cpu_ratio=cpu["top_k"] / cpu["plain"],
                             plain=times["plain"], top_k=times["top_k"])
        print(f"{name}: top_k={cfg['k']} / plain = {figures[name]['ratio']:.3f} "
              f"(per-round ratios {ratios[0]:.3f}..{ratios[-1]:.3f}; CPU time "
              f"{figures[name]['cpu_ratio']:.3f}; goal <= 1.10)", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(settings=cfg, figures=figures), f, indent=1)
    return figures


if __name__ == "__main__":
    main()
