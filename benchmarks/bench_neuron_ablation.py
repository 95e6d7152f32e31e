"""Batched neuron conductance and ablation vs one-filter-at-a-time loops.

Run from the repository root::

    python benchmarks/bench_neuron_ablation.py           # ~5 min on 2 CPU cores
    python benchmarks/bench_neuron_ablation.py --quick   # smoke test (< 1 min)

Two comparisons, each on the paper's sentiment CNN (random weights, 256
pooled filters, random sentences of 10-30 tokens padded to 56) and on
MobileNet v1 0.25 at 128 px (random weights) at a shallow, a middle and the
last pointwise layer:

  neuron    ``neuron_conductance`` for all filters of a layer / a loop calling
            it for one filter at a time (each call picks its best mode: with
            one filter, one masked VJP per path point). All filters at once
            use per-token JVPs for the text model (forward mode: every filter
            from the same JVPs) and batched VJPs for the images.
  ablation  ``ablation_scores`` for all filters (head once, tail on
            example x filter rows) / a loop that ablates one filter by
            setting its bias to -1e9 (the paper's bias -> -inf; for
            MobileNet the batch-norm offset before the ReLU) and re-runs the
            whole model.

  floor     ``neuron_conductance`` (reverse mode, all filters) / its floor: a
            bare compiled function doing only the forward pass, dF/dy and one
            vectorised masked VJP per (path point, filter chunk), on the same
            rows per call, plus the trapezoid weights (MobileNet, the middle
            layer).

Timing protocol: each function runs once first (tracing excluded), then the
two variants alternate for ``--rounds`` rounds and each one's median is
reported. Both variants' results are checked to agree.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

FULL = dict(rounds=2, text_batch=4, text_steps=50, image_batch=2, image_steps=16,
            ablate_text=32, ablate_images=8,
            layers=("conv_pw_3_relu", "conv_pw_7_relu", "conv_pw_13_relu"))
QUICK = dict(rounds=1, text_batch=2, text_steps=4, image_batch=1, image_steps=2,
             ablate_text=4, ablate_images=2, layers=("conv_pw_3_relu",))


def _sentences(rng, n):
    """Random token ids with SST-like lengths (10-30 tokens, then padding)."""
    tokens = rng.integers(2, 15000, size=(n, 56)).astype("int32")
    lengths = rng.integers(10, 31, size=n)
    tokens[np.arange(56)[None, :] >= lengths[:, None]] = 0
    return tokens


def _median_times(fns, rounds):
    for fn in fns:
        fn()  # trace and warm up
    times = [[] for _ in fns]
    for _ in range(rounds):
        for t, fn in zip(times, fns):
            start = time.perf_counter()
            fn()
            t.append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def _models():
    import keras

    from conductance_studies.sentiment_cnn import build_sentiment_cnn

    keras.utils.set_random_seed(0)
    text = build_sentiment_cnn(15000)
    image = keras.applications.MobileNet(input_shape=(128, 128, 3), alpha=0.25, weights=None,
                                         classifier_activation=None)
    return text, image


def bench_neuron(text, image, cfg, report):
    from keras_conductance.neuron import neuron_conductance

    rng = np.random.default_rng(0)
    tokens = _sentences(rng, cfg["text_batch"])
    images = rng.uniform(-1, 1, size=(cfg["image_batch"], 128, 128, 3)).astype("float32")
    cases = [("sentiment CNN", text, tokens, "pooled", dict(start_layer="embedding", target=0,
                                                             n_steps=cfg["text_steps"]))]
    cases += [("MobileNet 0.25/128", image, images, layer,
               dict(target=0, n_steps=cfg["image_steps"], baselines=-1.0))
              for layer in cfg["layers"]]
    for name, model, x, layer, kw in cases:
        n_filters = int(model.get_layer(layer).output.shape[-1])
        batched = lambda: neuron_conductance(model, x, layer, None, **kw)
        loop = lambda: np.concatenate([neuron_conductance(model, x, layer, [f], **kw)
                                       for f in range(n_filters)], axis=1)
        a, b = batched(), loop()
        scale = np.abs(a).max() or 1.0
        assert np.abs(a - b).max() <= 1e-4 * scale, "batched and looped results differ"
        t_batched, t_loop = _median_times([batched, loop], cfg["rounds"])
        report.append(dict(part="neuron", model=name, layer=layer, filters=n_filters,
                           examples=len(x), steps=kw["n_steps"], batched_s=t_batched,
                           loop_s=t_loop, speedup=t_loop / t_batched))
        print(f"neuron    {name:20s} {layer:16s} {n_filters:4d} filters: batched "
              f"{t_batched:7.2f} s, loop {t_loop:7.2f} s, x{t_loop / t_batched:.1f}", flush=True)



def bench_floor(image, cfg, report):
    """Eq. 2 through the driver against the bare computation it streams."""
    import keras
    import tensorflow as tf

    from keras_conductance import quadrature
    from keras_conductance.neuron import NeuronConductance, point_weights

    layer = cfg["layers"][len(cfg["layers"]) // 2]
    rng = np.random.default_rng(2)
    x = rng.uniform(-1, 1, size=(cfg["image_batch"], 128, 128, 3)).astype("float32")
    xb = -np.ones_like(x)
    n_steps = cfg["image_steps"]
    explainer = NeuronConductance(image, layer)
    ours = lambda: explainer(x, None, target=0, baselines=-1.0, n_steps=n_steps, mode="reverse")
    sub = keras.Model(image.inputs, [image.get_layer(layer).output, image.output])
    n_filters = int(sub.outputs[0].shape[-1])
    budget = 341  # the explainer's default for 128 x 128 x 3 inputs (64 MB of Jacobian)
    f_chunk = min(n_filters, budget)
    rule = quadrature.make_rule("trapezoid", n_steps)
    weights = point_weights(rule)
    keep = np.flatnonzero(weights)

    @tf.function
    def chunk(rows, filters):
        with tf.GradientTape() as outer:
            outer.watch(rows)
            with tf.GradientTape() as inner:
                inner.watch(rows)
                y, out = sub(rows, training=False)
                score = tf.reduce_sum(out[:, 0])
            with outer.stop_recording():
                g = tf.stop_gradient(inner.gradient(score, y))
            s = tf.gather(tf.reduce_sum(g * y, axis=[1, 2]), filters, axis=1)
        return outer.batch_jacobian(s, rows, experimental_use_pfor=True)

    per_call = max(1, budget // f_chunk)  # path points per call, as the driver's plan

    def bare():
        total = np.zeros((len(x), n_filters) + x.shape[1:], np.float32)
        for b in range(len(x)):
            for p0 in range(0, keep.size, per_call):
                p = keep[p0:p0 + per_call]
                a = rule.alphas[p].reshape(-1, 1, 1, 1)
                rows = tf.constant((xb[b:b + 1] + a * (x[b:b + 1] - xb[b:b + 1])).astype("float32"))
                for f0 in range(0, n_filters, f_chunk):
                    jac = chunk(rows, tf.range(f0, min(f0 + f_chunk, n_filters))).numpy()
                    total[b, f0:f0 + f_chunk] += np.tensordot(weights[p], jac, axes=1)
        return total * (x - xb)[:, None]

    a, b = ours(), bare()
    assert np.abs(a - b).max() <= 1e-4 * (np.abs(a).max() or 1.0), "driver and floor differ"
    t_ours, t_bare = _median_times([ours, bare], cfg["rounds"])
    report.append(dict(part="floor", model="MobileNet 0.25/128", layer=layer,
                       filters=n_filters, examples=len(x), batched_s=t_ours, loop_s=t_bare,
                       speedup=t_ours / t_bare))
    print(f"floor     Eq. 2 maps {layer}: driver {t_ours:7.2f} s, bare {t_bare:7.2f} s, "
          f"ratio {t_ours / t_bare:.2f} (goal <= 1.2)", flush=True)


def _loop_ablation(model, forward, x, layer, target):
    """Ablate one filter by a -1e9 bias, re-run the whole (compiled) model,
    restore."""
    full = forward(x).numpy()[np.arange(len(x)), target]
    if layer == "pooled":
        convs = [model.get_layer(f"conv{w}") for w in (3, 4, 5, 6)]
        owners = [(conv, 1, c) for conv in convs for c in range(conv.filters)]
    else:
        bn = model.get_layer(layer.replace("_relu", "_bn"))
        owners = [(bn, 1, c) for c in range(bn.get_weights()[1].shape[0])]
    out = np.zeros((len(x), len(owners)), np.float32)
    for j, (owner, index, c) in enumerate(owners):
        saved = owner.get_weights()
        edited = [w.copy() for w in saved]
        edited[index][c] = -1e9
        owner.set_weights(edited)
        out[:, j] = full - forward(x).numpy()[np.arange(len(x)), target]
        owner.set_weights(saved)
    return out


def bench_ablation(text, image, cfg, report):
    import tensorflow as tf

    from keras_conductance.ablation import ablation_scores

    rng = np.random.default_rng(1)
    tokens = _sentences(rng, cfg["ablate_text"])
    images = rng.uniform(-1, 1, size=(cfg["ablate_images"], 128, 128, 3)).astype("float32")
    cases = [("sentiment CNN", text, tokens, "pooled")]
    cases += [("MobileNet 0.25/128", image, images, layer) for layer in cfg["layers"]]
    for name, model, x, layer in cases:
        target = np.asarray(model(x)).reshape(len(x), -1).argmax(axis=1)
        batched = lambda: ablation_scores(model, x, layer, target=target)
        # The loop's forward pass is compiled too (variables are read at call
        # time, so it sees every edited bias without retracing).
        forward = tf.function(lambda t: model(t, training=False))
        loop = lambda: _loop_ablation(model, forward, tf.constant(x), layer, target)
        a, b = batched(), loop()
        scale = np.abs(a).max() or 1.0
        assert np.abs(a - b).max() <= 1e-3 * scale, "tail ablation and bias editing differ"
        t_batched, t_loop = _median_times([batched, loop], cfg["rounds"])
        report.append(dict(part="ablation", model=name, layer=layer, filters=a.shape[1],
                           examples=len(x), batched_s=t_batched, loop_s=t_loop,
                           speedup=t_loop / t_batched))
        print(f"ablation  {name:20s} {layer:16s} {a.shape[1]:4d} filters: batched "
              f"{t_batched:7.2f} s, loop {t_loop:7.2f} s, x{t_loop / t_batched:.1f}", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("parts", nargs="*", default=["neuron", "ablation", "floor"])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args(argv)
    cfg = dict(QUICK if args.quick else FULL)
    if args.rounds:
        cfg["rounds"] = args.rounds
    import tensorflow as tf

    text, image = _models()
    report = []
    if "neuron" in args.parts:
        bench_neuron(text, image, cfg, report)
    if "ablation" in args.parts:
        bench_ablation(text, image, cfg, report)
    if "floor" in args.parts:
        bench_floor(image, cfg, report)
    print("\n| part | model | layer | filters | examples | batched (s) | loop or floor (s) | "
          "ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for r in report:
        print(f"| {r['part']} | {r['model']} | `{r['layer']}` | {r['filters']} | {r['examples']} | "
              f"{r['batched_s']:.2f} | {r['loop_s']:.2f} | " +
              (f"{r['speedup']:.2f} |" if r["part"] == "floor" else f"{r['speedup']:.1f}x |"))
    print(f"\nTensorFlow {tf.__version__}, {os.cpu_count()} CPU cores, rounds={cfg['rounds']}.")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(config=cfg, results=report), f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
