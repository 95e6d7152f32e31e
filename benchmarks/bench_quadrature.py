"""Adaptive quadrature (``tolerance=``) against uniform doubling.

Run from the repository root (needs ``../shared/data``)::

    python benchmarks/bench_quadrature.py                 # 20 photos on this CPU (~40 min)
    python benchmarks/bench_quadrature.py --photos 100    # the issue's 100 photos (GPU)
    python benchmarks/bench_quadrature.py --quick         # 2 photos, a tiny decoder

Two workloads:

  a. MobileNet v1 0.75/224 at ``conv_pw_7_relu``, the first ``--photos``
     val50 photos taken one class at a time, black baseline, each photo's
     own-label logit. A 4,096-step uniform reference; then, at tolerance 1 %
     and 2 %, the adaptive rule and *doubling*: what ``tolerance=`` did
     before (uniform n_steps from 50, doubled for the photos whose
     completeness error is above tolerance, up to 1,024, every round a full
     new grid). Printed per method: path points evaluated (the cost, every
     round counted), wall time, the true per-filter error against the
     reference (relative L1) and *false passes*: photos reported within
     tolerance whose true error is above it. *oracle* is doubling stopped by
     the true error instead: what uniform doubling costs to be as accurate.
  b. A Llama-3-shaped decoder (random init, 4 blocks, hidden 256, sequence
     64, ``kc.next_token``) from the zero embedding, every block's residual
     stream, to 1 %: adaptive points vs doubling up to 16,384 steps.

Points are deterministic; wall times are single runs in the order printed
(doubling first), on a machine running nothing else.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def photos(count: int, data_dir: str):
    import numpy as np

    from conductance_studies.datasets.imagenet import load_imagenet_classes

    wnids = sorted(os.listdir(os.path.join(data_dir, "imagenet", "val50")))
    per_class = -(-count // len(wnids))
    s = load_imagenet_classes(wnids, per_class=per_class, data_dir=data_dir)
    # One photo of each class in turn, so that any count spans the classes.
    order = np.argsort(np.tile(np.arange(per_class), len(wnids)), kind="stable")[:count]
    return s.images[order], s.labels[order]


def mobilenet(data_dir: str):
    import keras

    model = keras.applications.MobileNet(input_shape=(224, 224, 3), alpha=0.75, weights=None,
                                         classifier_activation=None)
    model.load_weights(os.path.join(data_dir, "imagenet", "mobilenet_v1_0.75_224.weights.h5"))
    return model


def doubling(run, n, tolerance, start=50, most=1024, error=None):
    """Uniform doubling as ``tolerance=`` did before: per example, n_steps
    from ``start``, doubled while the completeness error (or ``error(attr,
    indices)``, e.g. the true error: an oracle) is above ``tolerance``.
    ``run(indices, n_steps) -> Attribution``.

    Returns: (per-example Attribution rows merged as a dict of arrays,
    points per example, completeness error per example, steps used).
    """
    import numpy as np

    todo, steps = np.arange(n), start
    points = np.zeros(n, int)
    result, found, used = {}, np.zeros(n), np.zeros(n, int)
    while todo.size:
        attr = run(todo, steps)
        points[todo] += steps + 1
        delta = attr.relative_delta() if error is None else error(attr, todo)
        for i, e in enumerate(todo):
            result[e] = {name: attr.per_filter(name)[i] for name in attr}
            found[e], used[e] = delta[i], steps
        todo = todo[delta > tolerance]
        if steps * 2 > most:
            break
        steps *= 2
    return result, points, found, used


def true_error(per_filter, reference):
    import numpy as np

    return np.abs(per_filter - reference).sum(axis=-1) / np.abs(reference).sum(axis=-1)


def bench_mobilenet(args, out):
    import numpy as np

    import keras_conductance as kc

    x, y = photos(args.photos, args.data_dir)
    model = mobilenet(args.data_dir)
    layer = "conv_pw_7_relu"
    black = -np.ones_like(x)

    def run(idx, n_steps=None, tolerance=None, max_steps=1024):
        return kc.conductance(model, x[idx], layer, baselines=black[idx], target=y[idx],
                              n_steps=n_steps or 50, tolerance=tolerance,
                              max_steps=max_steps, verbose=0)

    cache = os.path.join(out, f"reference_{args.photos}_{args.reference}.npy")
    if os.path.exists(cache):
        reference = np.load(cache)
    else:
        t = time.perf_counter()
        reference = np.concatenate([run(np.arange(s, min(s + 4, len(x))), args.reference)
                                    .per_filter(layer) for s in range(0, len(x), 4)])
        np.save(cache, reference)
        print(f"reference: {args.reference} uniform steps, {time.perf_counter() - t:.0f} s")
    rows = {}
    for tol in (0.01, 0.02):
        t = time.perf_counter()
        merged, points, completeness, used = doubling(lambda idx, n: run(idx, n), len(x), tol)
        wall = time.perf_counter() - t
        per_filter = np.stack([merged[i][layer] for i in range(len(x))])
        err = true_error(per_filter, reference)
        passed = completeness <= tol
        rows[f"doubling {tol}"] = dict(points=points, wall=wall, err=err,
                                       false=int(np.sum(passed & (err > tol))),
                                       passed=int(passed.sum()))
        # What doubling costs to be as accurate: stopped by the true error.
        t = time.perf_counter()
        merged, points, _, used = doubling(
            lambda idx, n: run(idx, n), len(x), tol,
            error=lambda attr, idx: true_error(attr.per_filter(layer), reference[idx]))
        wall = time.perf_counter() - t
        err = true_error(np.stack([merged[i][layer] for i in range(len(x))]), reference)
        rows[f"oracle {tol}"] = dict(points=points, wall=wall, err=err, false=0,
                                     passed=int(np.sum(err <= tol)))
        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            attr = run(np.arange(len(x)), tolerance=tol)
        wall = time.perf_counter() - t
        err = true_error(attr.per_filter(layer), reference)
        passed = (attr.error_estimate[layer] <= tol) & (attr.relative_delta() <= tol)
        rows[f"adaptive {tol}"] = dict(points=attr.n_points, wall=wall, err=err,
                                       false=int(np.sum(passed & (err > tol))),
                                       passed=int(passed.sum()),
                                       estimate=attr.error_estimate[layer])
    print(f"\n[a] MobileNet v1 0.75/224, {layer}, {len(x)} photos, black baseline, own label; "
          f"true error = per-filter relative L1 against {args.reference} uniform steps")
    print(f"{'method':16s} {'points (sum)':>12s} {'median':>7s} {'max':>6s} {'wall s':>7s} "
          f"{'true err median':>15s} {'p90':>6s} {'max':>6s} {'passed':>6s} {'false':>5s}")
    for name, r in rows.items():
        print(f"{name:16s} {r['points'].sum():12d} {np.median(r['points']):7.0f} "
              f"{r['points'].max():6d} {r['wall']:7.1f} {100 * np.median(r['err']):14.2f}% "
              f"{100 * np.percentile(r['err'], 90):5.2f}% {100 * r['err'].max():5.2f}% "
              f"{r['passed']:6d} {r['false']:5d}")
    for tol in (0.01, 0.02):
        a, d, o = rows[f"adaptive {tol}"], rows[f"doubling {tol}"], rows[f"oracle {tol}"]
        print(f"tolerance {tol}: points adaptive / doubling = "
              f"{a['points'].sum() / d['points'].sum():.2f} (wall {a['wall'] / d['wall']:.2f}); "
              f"adaptive / doubling as accurate (oracle) = "
              f"{a['points'].sum() / o['points'].sum():.2f} (wall {a['wall'] / o['wall']:.2f})")
    return {k: {kk: (vv.tolist() if hasattr(vv, "tolist") else vv) for kk, vv in v.items()}
            for k, v in rows.items()}


def bench_decoder(args):
    import keras
    import keras_hub
    import numpy as np

    import keras_conductance as kc

    cfg = dict(layers=4, hidden=256, length=64, vocab=1000) if not args.quick else \
        dict(layers=2, hidden=32, length=12, vocab=100)
    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.Llama3Backbone(
        vocabulary_size=cfg["vocab"], num_layers=cfg["layers"], num_query_heads=4,
        num_key_value_heads=2, hidden_dim=cfg["hidden"], intermediate_dim=2 * cfg["hidden"])
    lm = keras_hub.models.Llama3CausalLM(backbone=backbone, preprocessor=None)
    ids = np.random.default_rng(0).integers(1, cfg["vocab"], (2, cfg["length"])).astype("int32")
    batch = {"token_ids": ids, "padding_mask": np.ones_like(ids)}
    zero = np.zeros((1, 1, cfg["hidden"]), np.float32)
    kw = dict(start_layer="token_embedding", baselines=zero, target=kc.next_token(7), verbose=0)
    units = ["*:residual"]

    def run(idx, n):
        part = {k: v[idx] for k, v in batch.items()}
        return kc.conductance(lm, part, units, n_steps=n, **kw)

    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, points, completeness, used = doubling(run, 2, 0.01, most=args.decoder_max_steps)
    wall_d = time.perf_counter() - t
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        attr = kc.conductance(lm, batch, units, tolerance=0.01, **kw)
    wall_a = time.perf_counter() - t
    worst = max(attr.error_estimate[u].max() for u in attr)
    delta = max(attr.relative_delta([u]).max() for u in attr)
    print(f"\n[b] Llama-3 shape ({cfg['layers']} blocks, hidden {cfg['hidden']}, sequence "
          f"{cfg['length']}), zero embedding, every block's residual, tolerance 1 %, 2 prompts")
    print(f"doubling: points {points.tolist()}, steps {used.tolist()}, completeness error "
          f"{np.round(100 * completeness, 2).tolist()}%, {wall_d:.0f} s")
    print(f"adaptive: points {attr.n_points.tolist()}, steps {attr.n_steps.tolist()}, "
          f"estimate up to {100 * worst:.2f}%, completeness up to {100 * delta:.2f}%, "
          f"{wall_a:.0f} s")
    print(f"points adaptive / doubling = {attr.n_points.sum() / points.sum():.3f}")
    return dict(doubling_points=points.tolist(), doubling_completeness=completeness.tolist(),
                adaptive_points=attr.n_points.tolist(), adaptive_estimate=float(worst),
                adaptive_completeness=float(delta))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", type=int, default=20)
    parser.add_argument("--reference", type=int, default=4096)
    parser.add_argument("--decoder-max-steps", type=int, default=16384)
    parser.add_argument("--data-dir", default=os.path.join("..", "shared", "data"))
    parser.add_argument("--out", default=os.path.join("benchmarks", "results"))
    parser.add_argument("--only", choices=("mobilenet", "decoder"), default=None)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.photos, args.reference, args.decoder_max_steps = 2, 512, 1024
    os.makedirs(args.out, exist_ok=True)
    results = {}
    if args.only in (None, "mobilenet"):
        results["mobilenet"] = bench_mobilenet(args, args.out)
    if args.only in (None, "decoder"):
        results["decoder"] = bench_decoder(args)
    with open(os.path.join(args.out, "bench_quadrature.json"), "w") as f:
        json.dump(results, f)


if __name__ == "__main__":
    sys.exit(main())
