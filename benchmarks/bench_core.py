"""Core speed, memory and accuracy benchmarks of keras_conductance.

Run from the repository root::

    python benchmarks/bench_core.py             # everything (~10-14 min on 2 CPU cores)
    python benchmarks/bench_core.py --quick     # tiny settings, a smoke test (< 1 min)
    python benchmarks/bench_core.py overhead layers   # only some parts

Parts (each prints its own numbers; a summary table comes last):

  overhead      a. one-layer conductance / bare forward + backward to that layer
  layers        b. all 11 InceptionV3 mixed layers in one call / mixed0 alone
  memory        c. peak RSS at n_steps=1000 / at n_steps=50 (separate processes)
  jit           d. jit_compile="auto" / the faster of True and False
  completeness  e. |delta| / |F(x) - F(x')| of "trapezoid" vs "left" on a
                   trained conv net (scikit-learn's digits, or synthetic data)
  bert          f. keras-hub BertTextClassifier (4 layers, hidden 256,
                   sequence 128, random init) explained from its token
                   embedding: all 4 transformer_layer_i in one call /
                   transformer_layer_0 alone (needs keras-hub)

Timing protocol: every timed function is called once first (tracing and
compilation excluded), then the compared variants run interleaved
(A, B, C, A, B, C, ...) for ``--rounds`` rounds and each variant's median is
reported; ratios are taken between medians of the same run. The machine may
be shared: before each round the script waits (at most 20 s, 2 min in all;
``--no-wait`` skips this) until other processes use < 15% of the CPUs, prints
how much CPU other processes took during each round, and also reports each
ratio by this process's CPU time, which contention inflates much less than
the wall clock. Models use random
weights (``weights=None``; speed does not depend on them) and no final softmax
(``classifier_activation=None``), so the explained score is a logit.
"""

from __future__ import annotations

import argparse
from importlib import metadata
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

PARTS = ("overhead", "layers", "memory", "jit", "completeness", "bert")
MIXED = [f"mixed{i}" for i in range(11)]

FULL = dict(
    batch=4, n_steps=50, rounds=5, jit_rounds=3, inception_size=150,
    mobilenet_size=160, mem_steps=(50, 1000), completeness_steps=(20, 50, 100),
    completeness_examples=32, epochs=2, batch_size=None, overhead_from=0,
    bert=dict(layers=4, hidden=256, heads=4, intermediate=1024, length=128, batch=4),
)
QUICK = dict(
    batch=2, n_steps=4, rounds=2, jit_rounds=1, inception_size=75,
    mobilenet_size=32, mem_steps=(4, 40), completeness_steps=(5, 20),
    completeness_examples=8, epochs=1, batch_size=8,
    overhead_from=1,  # part a on MobileNetV2 only (InceptionV3 compiles slowly)
    bert=dict(layers=2, hidden=32, heads=2, intermediate=64, length=16, batch=2),
)


# -- helpers -----------------------------------------------------------------


def _tf():
    import tensorflow as tf

    return tf


def load_avg() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def quiet():
    """Silences warnings that are expected in a benchmark: the completeness
    warning at small n_steps and TF's notice that several explainers traced
    the same Python function."""
    warnings.filterwarnings("ignore", message="Completeness error")
    _tf().get_logger().setLevel("ERROR")


class OtherLoad:
    """CPU used by other processes, from /proc/stat minus this process."""

    HZ = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    def __init__(self):
        self.total_wait = 0.0
        self.enabled = True

    @staticmethod
    def _sample():
        try:
            with open("/proc/stat") as f:
                v = [int(x) for x in f.readline().split()[1:]]
            with open("/proc/self/stat") as f:
                own = f.read().rsplit(")", 1)[1].split()
        except OSError:
            return None
        busy = sum(v) - v[3] - v[4]  # all but idle and iowait
        mine = sum(int(x) for x in own[11:15])  # utime stime cutime cstime
        return busy - mine, time.perf_counter()

    def start(self):
        self._t0 = self._sample()

    def share(self) -> float:
        """Fraction of all cores other processes used since ``start``."""
        t1 = self._sample()
        if t1 is None or self._t0 is None:
            return float("nan")
        ticks, secs = t1[0] - self._t0[0], t1[1] - self._t0[1]
        return max(0.0, ticks / (self.HZ * secs * (os.cpu_count() or 1)))

    def wait_quiet(self, threshold=0.15, longest=20.0, budget=120.0):
        """Waits (up to ``longest`` s, ``budget`` s in all) until other
        processes use less than ``threshold`` of the cores over 1 s."""
        t = time.perf_counter()
        while self.enabled and self.total_wait < budget:
            self.start()
            time.sleep(1.0)
            if self.share() < threshold or time.perf_counter() - t > longest:
                break
        waited = time.perf_counter() - t
        self.total_wait += waited
        return waited


LOAD = OtherLoad()


def interleaved(variants: dict, rounds: int, label: str):
    """Warm each variant up once, then time them A, B, ..., A, B, ...

    Before each round we wait (bounded) until other processes are quiet, and
    we print the share of the CPUs that other processes took during the
    round. Each call is timed by the wall clock and by this process's CPU
    time (all its threads), which other processes disturb much less.

    Returns ``(medians, times, cpu_medians)``: name -> median wall seconds,
    name -> wall seconds per round, name -> median CPU seconds.
    """
    for name, fn in variants.items():
        t = time.perf_counter()
        fn()
        print(f"  [{label}] warm-up {name}: {time.perf_counter() - t:.2f} s", flush=True)
    times = {name: [] for name in variants}
    cpu = {name: [] for name in variants}
    for r in range(rounds):
        waited = LOAD.wait_quiet()
        LOAD.start()
        for name, fn in variants.items():
            t, c = time.perf_counter(), time.process_time()
            fn()
            times[name].append(time.perf_counter() - t)
            cpu[name].append(time.process_time() - c)
        print(
            f"  [{label}] round {r + 1}/{rounds} (waited {waited:.0f} s for quiet; other "
            f"processes {100 * LOAD.share():.0f}% of the CPUs): "
            + ", ".join(f"{n} {times[n][-1]:.3f} s (cpu {cpu[n][-1]:.2f})" for n in variants),
            flush=True,
        )
    medians = {n: statistics.median(v) for n, v in times.items()}
    cpu_medians = {n: statistics.median(v) for n, v in cpu.items()}
    for n, v in times.items():
        print(
            f"  [{label}] {n}: median {medians[n]:.3f} s (min {min(v):.3f}, max "
            f"{max(v):.3f}, n={len(v)}); CPU time median {cpu_medians[n]:.2f} s"
        )
    return medians, times, cpu_medians


def round_ratio(times: dict, a: str, b: str) -> float:
    """Median over rounds of a / b within each round (a noise check: the two
    calls of one round ran seconds apart)."""
    return statistics.median(x / y for x, y in zip(times[a], times[b]))


def make_app(name: str, size: int):
    import keras

    keras.utils.set_random_seed(0)
    ctor = {"InceptionV3": keras.applications.InceptionV3,
            "MobileNetV2": keras.applications.MobileNetV2}[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ctor(weights=None, input_shape=(size, size, 3),
                    classifier_activation=None)


def make_inputs(batch: int, size: int):
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (batch, size, size, 3)).astype(np.float32)
    xb = rng.uniform(-0.1, 0.1, (batch, size, size, 3)).astype(np.float32)
    target = np.arange(batch, dtype=np.int32) % 1000
    return x, xb, target


def engine_chunking(n_examples: int, n_points: int, batch_size: int):
    """The engine's chunking (engine.PathEngine.run): examples per group,
    path points per chunk, chunks and padded points."""
    from keras_conductance.engine import points_per_chunk

    group = min(n_examples, batch_size)
    m = points_per_chunk(n_points, max(1, batch_size // group))
    n_chunks = -(-n_points // m)
    return group, m, n_chunks, n_chunks * m - n_points


class BareGradient:
    """Forward + backward to one layer over the path rows, nothing else.

    Same rows as conductance (x' + alpha (x - x') for the n_steps + 1 points
    of the trapezoid rule, example-major) and the same chunks (the engine's
    group of examples x m path points, at most batch_size rows). With
    ``padded=True`` the last chunk is padded to m points as the engine does;
    otherwise it holds only the remaining points.
    """

    def __init__(self, model, layer: str, jit_compile: bool = False):
        import keras

        tf = _tf()
        probe = keras.Model(model.inputs[0], [model.get_layer(layer).output, model.outputs[0]])

        def grad(x, xb, alphas, target):
            a = tf.reshape(alphas, [1, -1, 1, 1, 1])
            rows = xb[:, None] + a * (x - xb)[:, None]
            rows = tf.reshape(rows, tf.concat([[-1], tf.shape(x)[1:]], 0))
            target = tf.repeat(target, tf.shape(alphas)[0])
            with tf.GradientTape() as tape:
                y, out = probe(rows, training=False)
                score = tf.reduce_sum(out * tf.one_hot(target, tf.shape(out)[1]))
            return tape.gradient(score, y)

        self.fn = tf.function(grad, jit_compile=jit_compile)

    def run(self, x, xb, target, n_steps: int, batch_size: int, padded: bool):
        tf = _tf()
        n_points = n_steps + 1
        group, m, n_chunks, pad = engine_chunking(x.shape[0], n_points, batch_size)
        alphas = np.linspace(0.0, 1.0, n_points).astype(np.float32)
        if padded:
            alphas = np.concatenate([alphas, np.ones(pad, np.float32)])
        for start in range(0, x.shape[0], group):
            xg = tf.constant(x[start:start + group])
            bg = tf.constant(xb[start:start + group])
            tg = tf.constant(target[start:start + group])
            for c in range(n_chunks):
                out = self.fn(xg, bg, tf.constant(alphas[c * m:(c + 1) * m]), tg)
        return out


def conductance_call(model, x, xb, target, layers, **kw):
    import keras_conductance as kc

    def call():
        return kc.conductance(model, x, layers, target=target, baselines=xb,
                              verbose=0, **kw)

    return call


# -- a. one-layer overhead ---------------------------------------------------


def balanced_batch_size(n_examples: int, n_points: int, batch_size: int) -> int:
    """The largest batch_size <= ``batch_size`` whose chunks split the path
    points evenly (what the engine would pad least with)."""
    group = min(n_examples, batch_size)
    m_max = max(1, batch_size // group)
    n_chunks = -(-n_points // m_max)
    return group * -(-n_points // n_chunks)


def bench_overhead(cfg, results):
    import keras_conductance as kc
    from keras_conductance.explainer import DEFAULT_BATCH_SIZE

    bs = cfg["batch_size"] or DEFAULT_BATCH_SIZE
    n = cfg["n_steps"]
    nets = [("InceptionV3", cfg["inception_size"], "mixed5"),
            ("MobileNetV2", cfg["mobilenet_size"], "block_6_expand_relu")]
    for net, size, layer in nets[cfg["overhead_from"]:]:
        model = make_app(net, size)
        x, xb, target = make_inputs(cfg["batch"], size)
        rows = x.shape[0] * (n + 1)
        group, m, n_chunks, pad = engine_chunking(x.shape[0], n + 1, bs)
        engine_rows = n_chunks * group * m
        bs2 = balanced_batch_size(x.shape[0], n + 1, bs)
        g2, m2, c2, pad2 = engine_chunking(x.shape[0], n + 1, bs2)
        print(f"\n[a] {net} {size}x{size}, layer {layer}: B={x.shape[0]}, n_steps={n}: "
              f"{rows} path rows. batch_size={bs}: engine runs {n_chunks} chunks of "
              f"{group}x{m} rows = {engine_rows} rows ({pad} padded points per example); "
              f"batch_size={bs2}: {c2} x {g2}x{m2} = {c2 * g2 * m2} rows ({pad2} padded)",
              flush=True)
        bare = BareGradient(model, layer)
        variants = {
            "conductance": conductance_call(model, x, xb, target, layer, n_steps=n,
                                            jit_compile=False, batch_size=bs),
            "bare": lambda: bare.run(x, xb, target, n, bs, padded=False),
            "bare_padded": lambda: bare.run(x, xb, target, n, bs, padded=True),
        }
        if pad2 < pad:
            variants[f"conductance_bs{bs2}"] = conductance_call(
                model, x, xb, target, layer, n_steps=n, jit_compile=False, batch_size=bs2)
            variants[f"bare_bs{bs2}"] = lambda: bare.run(x, xb, target, n, bs2, padded=False)
        med, times, cpu = interleaved(variants, cfg["rounds"], f"a {net}")
        r = dict(net=net, size=size, layer=layer, rows=rows, batch_size=bs,
                 default_batch_size=cfg["batch_size"] is None,
                 engine_rows=engine_rows, medians=med, cpu_medians=cpu,
                 ratio=med["conductance"] / med["bare"],
                 cpu_ratio=cpu["conductance"] / cpu["bare"],
                 cpu_ratio_vs_padded=cpu["conductance"] / cpu["bare_padded"],
                 round_ratio=round_ratio(times, "conductance", "bare"),
                 ratio_vs_padded=med["conductance"] / med["bare_padded"],
                 padded_over_bare=med["bare_padded"] / med["bare"])
        print(f"  [a {net}] batch_size={bs}: conductance / bare = {r['ratio']:.3f} "
              f"(goal <= 1.10; median of per-round ratios {r['round_ratio']:.3f}; CPU "
              f"time {r['cpu_ratio']:.3f}); "
              f"conductance / bare_padded = {r['ratio_vs_padded']:.3f}; bare_padded / "
              f"bare = {r['padded_over_bare']:.3f} (rows {engine_rows} / {rows} = "
              f"{engine_rows / rows:.3f})")
        if pad2 < pad:
            a, b = f"conductance_bs{bs2}", f"bare_bs{bs2}"
            r.update(balanced_batch_size=bs2, balanced_rows=c2 * g2 * m2,
                     balanced_ratio=med[a] / med[b], balanced_cpu_ratio=cpu[a] / cpu[b],
                     balanced_round_ratio=round_ratio(times, a, b))
            print(f"  [a {net}] batch_size={bs2} (even chunks): conductance / bare = "
                  f"{r['balanced_ratio']:.3f} (median of per-round ratios "
                  f"{r['balanced_round_ratio']:.3f}; CPU time {r['balanced_cpu_ratio']:.3f})")
        results[f"a_{net}"] = r
        kc.clear_cache()
        del model


# -- b. many layers in one pass ----------------------------------------------


def bench_layers(cfg, results):
    import keras_conductance as kc

    size, n = cfg["inception_size"], cfg["n_steps"]
    model = make_app("InceptionV3", size)
    x, xb, target = make_inputs(cfg["batch"], size)
    print(f"\n[b] InceptionV3 {size}x{size}: mixed0..mixed10 in one call vs mixed0 "
          f"alone, B={x.shape[0]}, n_steps={n}", flush=True)
    bs = cfg["batch_size"]
    med, times, cpu = interleaved(
        {
            "all11": conductance_call(model, x, xb, target, MIXED, n_steps=n,
                                      jit_compile=False, batch_size=bs),
            "mixed0": conductance_call(model, x, xb, target, "mixed0", n_steps=n,
                                       jit_compile=False, batch_size=bs),
        },
        cfg["rounds"], "b",
    )
    ratio = med["all11"] / med["mixed0"]
    rr = round_ratio(times, "all11", "mixed0")
    cr = cpu["all11"] / cpu["mixed0"]
    captum = 11 * med["mixed0"]
    print(f"  [b] all11 / mixed0 = {ratio:.3f} (goal <= 1.15; median of per-round "
          f"ratios {rr:.3f}; CPU time {cr:.3f}); Captum-style 11 "
          f"separate passes ~ 11 x mixed0 = {captum:.2f} s, all11 is "
          f"{captum / med['all11']:.1f}x faster")
    results["b"] = dict(size=size, medians=med, cpu_medians=cpu, ratio=ratio,
                        round_ratio=rr, cpu_ratio=cr,
                        captum_11x=captum)
    kc.clear_cache()


# -- f. keras-hub BERT, all blocks in one call ------------------------------


def make_bert(b: dict, padding: float = 0.0):
    """A random-init keras-hub BertTextClassifier of config ``b`` (layers,
    hidden, heads, intermediate, length, batch) and a batch of token ids whose
    last ``padding`` share of positions is padding."""
    import keras
    import keras_hub

    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=30522, num_layers=b["layers"], num_heads=b["heads"],
        hidden_dim=b["hidden"], intermediate_dim=b["intermediate"],
        max_sequence_length=b["length"])
    model = keras_hub.models.BertTextClassifier(backbone, num_classes=2, preprocessor=None)
    rng = np.random.default_rng(0)
    ids = rng.integers(1000, 30000, size=(b["batch"], b["length"])).astype("int32")
    mask = np.ones_like(ids)
    mask[:, b["length"] - int(b["length"] * padding):] = 0
    inputs = {"token_ids": ids * mask, "segment_ids": np.zeros_like(ids), "padding_mask": mask}
    return model, inputs


def bench_bert(cfg, results):
    import keras_conductance as kc

    b, n = cfg["bert"], cfg["n_steps"]
    model, inputs = make_bert(b, padding=0.25)
    layers = [f"transformer_layer_{i}" for i in range(b["layers"])]
    print(f"\n[f] BertTextClassifier {b}: {len(layers)} blocks in one call vs "
          f"transformer_layer_0 alone, n_steps={n}, start_layer='token_embedding'", flush=True)

    def call(names):
        return lambda: kc.conductance(model, inputs, names, target=1, n_steps=n,
                                      start_layer="token_embedding", jit_compile=False,
                                      batch_size=cfg["batch_size"], verbose=0)

    med, times, cpu = interleaved({"all": call(layers), "first": call(layers[0])},
                                  cfg["rounds"], "f")
    ratio = med["all"] / med["first"]
    rr = round_ratio(times, "all", "first")
    cr = cpu["all"] / cpu["first"]
    attr = call(layers)()
    worst = max(float(np.abs(attr.relative_delta([name])).max()) for name in layers)
    print(f"  [f] all / first = {ratio:.3f} (goal <= 1.15; median of per-round ratios "
          f"{rr:.3f}; CPU time {cr:.3f}); {len(layers)} separate calls ~ "
          f"{len(layers) * med['first']:.2f} s; worst completeness error {worst:.2%}")
    results["f"] = dict(config=b, medians=med, cpu_medians=cpu, ratio=ratio, round_ratio=rr,
                        cpu_ratio=cr, n_layers=len(layers), worst_delta=worst)
    kc.clear_cache()


# -- c. memory vs n_steps ----------------------------------------------------


def _rss_kib():
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmHWM", "VmRSS")):
                key, value = line.split(":")
                out[key] = int(value.split()[0])
    return out


def mem_child(args):
    """Runs in a fresh process: one conductance call, prints peak RSS as JSON."""
    import keras_conductance as kc
    from keras_conductance.explainer import DEFAULT_BATCH_SIZE

    quiet()
    model = make_app("MobileNetV2", args.size)
    x, xb, target = make_inputs(args.batch, args.size)
    before = _rss_kib()
    t = time.perf_counter()
    kc.conductance(model, x, "block_6_expand_relu", target=target, baselines=xb,
                   n_steps=args.n_steps, jit_compile=False, verbose=0,
                   batch_size=args.batch_size or None)
    seconds = time.perf_counter() - t
    after = _rss_kib()
    print("MEMJSON " + json.dumps(dict(
        n_steps=args.n_steps, rows=args.batch * (args.n_steps + 1),
        batch_size=args.batch_size or DEFAULT_BATCH_SIZE,
        ru_maxrss_kib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        vmhwm_kib=after["VmHWM"], rss_before_call_kib=before["VmRSS"],
        hwm_before_call_kib=before["VmHWM"], seconds=seconds,
    )))


def bench_memory(cfg, results):
    """Runs before TensorFlow is imported here: a child's ru_maxrss counts the
    peak RSS of the process it was spawned from, so that one must be small."""
    assert "tensorflow" not in sys.modules, "run the memory part before importing TF"
    size = cfg["mobilenet_size"]
    print(f"\n[c] MobileNetV2 {size}x{size}, block_6_expand_relu, B={cfg['batch']}, "
          f"batch_size={cfg['batch_size'] or 'default'}: peak RSS of a fresh process "
          "per n_steps (both run at once)", flush=True)
    procs = {}
    for steps in cfg["mem_steps"]:
        cmd = [sys.executable, os.path.abspath(__file__), "_mem_child",
               "--n-steps", str(steps), "--size", str(size), "--batch", str(cfg["batch"]),
               "--batch-size", str(cfg["batch_size"] or 0)]
        procs[steps] = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True)
    out = {}
    for steps, proc in procs.items():
        stdout, stderr = proc.communicate()
        line = [l for l in stdout.splitlines() if l.startswith("MEMJSON ")]
        if proc.returncode or not line:
            raise RuntimeError(f"memory child failed:\n{stdout}\n{stderr}")
        r = json.loads(line[0][len("MEMJSON "):])
        out[steps] = r
        print(f"  [c] n_steps={steps} ({r['rows']} path rows, batch_size={r['batch_size']}): "
              f"peak RSS VmHWM {r['vmhwm_kib'] / 1024:.0f} MiB, ru_maxrss "
              f"{r['ru_maxrss_kib'] / 1024:.0f} MiB; RSS just before the call "
              f"{r['rss_before_call_kib'] / 1024:.0f} MiB; call {r['seconds']:.1f} s", flush=True)
    lo, hi = cfg["mem_steps"]
    ratio = out[hi]["vmhwm_kib"] / out[lo]["vmhwm_kib"]
    ratio_ru = out[hi]["ru_maxrss_kib"] / out[lo]["ru_maxrss_kib"]
    inc = ((out[hi]["vmhwm_kib"] - out[hi]["rss_before_call_kib"])
           / max(out[lo]["vmhwm_kib"] - out[lo]["rss_before_call_kib"], 1))
    print(f"  [c] peak RSS n_steps={hi} / n_steps={lo} = {ratio:.3f} (VmHWM; ru_maxrss "
          f"{ratio_ru:.3f}) (goal <= 1.2); for information, growth above the RSS "
          f"before the call: {inc:.3f}")
    results["c"] = dict(size=size, batch_size=out[lo]["batch_size"], runs=out,
                        ratio=ratio, ratio_ru_maxrss=ratio_ru, growth_ratio=inc)


# -- d. jit_compile ----------------------------------------------------------


def bench_jit(cfg, results, nets):
    import keras_conductance as kc

    n = cfg["n_steps"]
    for net in nets:
        size = cfg["inception_size" if net == "InceptionV3" else "mobilenet_size"]
        layer = "mixed5" if net == "InceptionV3" else "block_6_expand_relu"
        model = make_app(net, size)
        x, xb, target = make_inputs(cfg["batch"], size)
        print(f"\n[d] {net} {size}x{size}, {layer}: jit_compile True / False / 'auto' "
              f"(auto resolves to {_auto_value()} here)", flush=True)
        med, times, cpu = interleaved(
            {str(j): conductance_call(model, x, xb, target, layer, n_steps=n,
                                      jit_compile=j, batch_size=cfg["batch_size"])
             for j in (True, False, "auto")},
            cfg["jit_rounds"], f"d {net}",
        )
        best = "True" if med["True"] < med["False"] else "False"
        ratio = med["auto"] / med[best]
        rr = round_ratio(times, "auto", best)
        cr = cpu["auto"] / min(cpu["True"], cpu["False"])
        tf_ratio = round_ratio(times, "True", "False")
        print(f"  [d {net}] auto / min(True, False) = {ratio:.3f} (goal <= 1.1; median "
              f"of per-round ratios auto / {best} {rr:.3f}; CPU time {cr:.3f}); True / False = "
              f"{med['True'] / med['False']:.2f} (per-round {tf_ratio:.2f})")
        results[f"d_{net}"] = dict(size=size, layer=layer, medians=med, ratio=ratio,
                                   cpu_medians=cpu, cpu_ratio=cr,
                                   round_ratio=rr, true_over_false=tf_ratio)
        kc.clear_cache()


def _auto_value():
    from keras_conductance.engine import resolve_jit

    return resolve_jit("auto")


# -- e. completeness on a trained model --------------------------------------


def digits_data(rng):
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        print("  [e] scikit-learn not installed: using synthetic 8x8 data "
              "(pip install scikit-learn for the real digits)")
        centers = rng.uniform(0, 1, (10, 8, 8))
        y = rng.integers(0, 10, 1797)
        x = np.clip(centers[y] + rng.normal(0, 0.3, (1797, 8, 8)), 0, 1)
        return x[..., None].astype(np.float32), y, "synthetic 8x8 (10 classes)"
    d = load_digits()
    return (d.images[..., None] / 16.0).astype(np.float32), d.target, "scikit-learn load_digits (8x8)"


def bench_completeness(cfg, results):
    import keras

    import keras_conductance as kc

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x, y, source = digits_data(rng)
    order = rng.permutation(len(x))
    x, y = x[order], y[order]
    n_test = 360
    xtr, ytr, xte, yte = x[n_test:], y[n_test:], x[:n_test], y[:n_test]
    model = keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv1"),
        keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="conv2"),
        keras.layers.MaxPooling2D(name="pool"),
        keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="conv3"),
        keras.layers.Flatten(name="flatten"),
        keras.layers.Dense(64, activation="relu", name="dense"),
        keras.layers.Dense(10, name="logits"),
    ])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(xtr, ytr, epochs=cfg["epochs"], batch_size=32, verbose=0)
    acc = model.evaluate(xte, yte, verbose=0)[1]
    k = cfg["completeness_examples"]
    layer = "conv2"
    print(f"\n[e] {source}: conv net trained {cfg['epochs']} epoch(s), test accuracy "
          f"{acc:.3f}; |delta| / |F(x) - F(x')| at layer {layer} over {k} test "
          "examples, zero baseline, top predicted class", flush=True)
    table = {}
    for steps in cfg["completeness_steps"]:
        for method in ("left", "trapezoid"):
            attr = kc.conductance(model, xte[:k], layer, n_steps=steps, method=method,
                                  jit_compile=False, verbose=0)
            rel = attr.relative_delta([layer])
            table[(steps, method)] = (float(np.median(rel)), float(np.max(rel)))
            print(f"  [e] n_steps={steps:4d} {method:9s}: median {np.median(rel):.2e}, "
                  f"max {np.max(rel):.2e}", flush=True)
    results["e"] = dict(source=source, accuracy=float(acc), layer=layer, examples=k,
                        table={f"{s}/{m}": v for (s, m), v in table.items()})
    results["e_fresh"] = fresh_relu_completeness(cfg)


def fresh_relu_completeness(cfg):
    """A freshly built 8-conv ReLU net at 64 px (zero biases) from a zero
    baseline: every ReLU on its kink at alpha = 0. Our trapezoid (first point
    1e-9 inside the path), the same rule started at exactly 0 (before the
    fix), and Gauss-Legendre nodes (Captum's default rule, never at 0)."""
    import keras

    import keras_conductance as kc
    from keras_conductance import quadrature

    keras.utils.set_random_seed(0)
    inp = keras.Input((64, 64, 3))
    h = inp
    for i in range(8):
        h = keras.layers.Conv2D(16, 3, padding="same", activation="relu",
                                strides=2 if i % 2 else 1, name=f"conv{i}")(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    model = keras.Model(inp, keras.layers.Dense(10, name="logits")(h))
    x = np.random.default_rng(1).uniform(-1, 1, (8, 64, 64, 3)).astype("float32")
    print("\n[e'] fresh 8-conv ReLU net, 64 px, zero biases, zero baseline; "
          "|delta| / |F(x) - F(x')| at conv3, median over 8 inputs", flush=True)
    table = {}
    for steps in (10, 50, 200):
        for label, method, start in (("trapezoid", "trapezoid", quadrature.START),
                                     ("trapezoid from 0", "trapezoid", 0.0),
                                     ("gauss_legendre", "gauss_legendre", quadrature.START)):
            saved, quadrature.START = quadrature.START, start
            try:
                attr = kc.conductance(model, x, "conv3", target=0, n_steps=steps,
                                      method=method, verbose=0)
            finally:
                quadrature.START = saved
            table[f"{steps}/{label}"] = float(np.median(attr.relative_delta(["conv3"])))
            print(f"  [e'] n_steps={steps:4d} {label:17s}: {table[f'{steps}/{label}']:.2e}",
                  flush=True)
    return dict(table=table)


# -- summary -----------------------------------------------------------------


def summary(cfg, results):
    rows = []

    def verdict(value, goal):
        return "pass" if value <= goal else f"FAIL (+{100 * (value / goal - 1):.0f}% over)"

    for net in ("InceptionV3", "MobileNetV2"):
        r = results.get(f"a_{net}")
        if r:
            m = r["medians"]
            rows.append((f"a. 1-layer conductance / bare fwd+bwd, {net} {r['size']}px "
                         f"`{r['layer']}`, batch_size={r['batch_size']}"
                         + (" (default)" if r["default_batch_size"] else ""),
                         f"{m['conductance']:.2f} s / {m['bare']:.2f} s = **{r['ratio']:.2f}** "
                         f"(vs bare over the engine's {r['engine_rows']} padded rows, "
                         f"{m['bare_padded']:.2f} s: {r['ratio_vs_padded']:.2f})",
                         f"{r['cpu_ratio']:.2f} (vs padded: {r['cpu_ratio_vs_padded']:.2f})",
                         "<= 1.10", verdict(r["ratio"], 1.10)))
            if "balanced_ratio" in r:
                bs2 = r["balanced_batch_size"]
                rows.append((f"a'. same, batch_size={bs2} (even chunks, {r['balanced_rows']} rows)",
                             f"{m[f'conductance_bs{bs2}']:.2f} s / {m[f'bare_bs{bs2}']:.2f} s "
                             f"= **{r['balanced_ratio']:.2f}**",
                             f"{r['balanced_cpu_ratio']:.2f}", "<= 1.10", verdict(r["balanced_ratio"], 1.10)))
    r = results.get("b")
    if r:
        m = r["medians"]
        rows.append((f"b. InceptionV3 {r['size']}px mixed0..10 in one call / mixed0",
                     f"{m['all11']:.2f} s / {m['mixed0']:.2f} s = **{r['ratio']:.2f}** "
                     f"(Captum-style 11 x mixed0 = {r['captum_11x']:.1f} s)",
                     f"{r['cpu_ratio']:.2f}", "<= 1.15", verdict(r["ratio"], 1.15)))
    r = results.get("c")
    if r:
        lo, hi = cfg["mem_steps"]
        a, b = r["runs"][hi]["ru_maxrss_kib"] / 1024, r["runs"][lo]["ru_maxrss_kib"] / 1024
        rows.append((f"c. peak RSS n_steps={hi} / {lo}, MobileNetV2 {r['size']}px, batch_size={r['batch_size']}",
                     f"{a:.0f} MiB / {b:.0f} MiB = **{r['ratio']:.2f}**", "n/a",
                     "<= 1.2", verdict(r["ratio"], 1.2)))
    for net in ("MobileNetV2", "InceptionV3"):
        r = results.get(f"d_{net}")
        if r:
            m = r["medians"]
            rows.append((f"d. jit 'auto' / min(True, False), {net} {r['size']}px",
                         f"auto {m['auto']:.2f} s, True {m['True']:.2f} s, False "
                         f"{m['False']:.2f} s: **{r['ratio']:.2f}**",
                         f"{r['cpu_ratio']:.2f}", "<= 1.1", verdict(r["ratio"], 1.1)))
    r = results.get("e")
    if r:
        steps = sorted({int(k.split("/")[0]) for k in r["table"]})
        for n in steps:
            (lm, lx), (tm, tx) = r["table"][f"{n}/left"], r["table"][f"{n}/trapezoid"]
            rows.append((f"e. abs(delta) / abs(F(x) - F(x')), `{r['layer']}`, n_steps={n}: "
                         "left vs trapezoid (median; max)",
                         f"left {lm:.1e}; {lx:.1e} -- trapezoid {tm:.1e}; {tx:.1e}",
                         "n/a", "trapezoid < left", "pass" if tm < lm and tx < lx else "FAIL"))
    r = results.get("e_fresh")
    if r:
        t = r["table"]
        for n in (10, 50, 200):
            ours, old, gl = (t[f"{n}/{k}"] for k in ("trapezoid", "trapezoid from 0",
                                                      "gauss_legendre"))
            rows.append((f"e'. fresh ReLU net (zero biases, zero baseline), n_steps={n}: "
                         "trapezoid vs Gauss-Legendre (Captum's default nodes)",
                         f"trapezoid {ours:.1e} (from alpha = 0: {old:.1e}) -- GL {gl:.1e}",
                         "n/a", "trapezoid <= GL or both at float32 rounding (1e-6)",
                         "pass" if ours <= max(gl, 1e-6) else "FAIL"))
    r = results.get("f")
    if r:
        m, c = r["medians"], r["config"]
        rows.append((f"f. BERT classifier ({c['layers']} layers, hidden {c['hidden']}, "
                     f"sequence {c['length']}, B={c['batch']}), all {r['n_layers']} "
                     "transformer_layer_i in one call / the first alone",
                     f"{m['all']:.2f} s / {m['first']:.2f} s = **{r['ratio']:.2f}** "
                     f"(worst completeness error {r['worst_delta']:.2%})",
                     f"{r['cpu_ratio']:.2f}", "<= 1.15", verdict(r["ratio"], 1.15)))
    if cfg.get("quick"):
        print("\n(--quick: tiny inputs, where fixed per-call costs dominate; the "
              "ratios below are a smoke test, not measurements)")
    print("\n| benchmark | measured (wall-clock medians) | ratio by CPU time | goal | result |"
          "\n| --- | --- | --- | --- | --- |")
    for row in rows:
        print("| " + " | ".join(row) + " |")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("parts", nargs="*", help=f"subset of {PARTS} (default: all)")
    p.add_argument("--quick", action="store_true", help="tiny settings (smoke test, < 1 min)")
    p.add_argument("--rounds", type=int, help="timing rounds per variant")
    p.add_argument("--jit-inception", action="store_true",
                   help="also time jit True/False/auto on InceptionV3 (slow: XLA on CPU)")
    p.add_argument("--no-wait", action="store_true",
                   help="do not wait for other processes to go quiet before each round "
                        "(implied by --quick)")
    p.add_argument("--json", help="write the results to this JSON file")
    # Internal: the memory benchmark's child process.
    p.add_argument("--n-steps", type=int, help=argparse.SUPPRESS)
    p.add_argument("--size", type=int, help=argparse.SUPPRESS)
    p.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    p.add_argument("--batch-size", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.parts == ["_mem_child"]:
        return mem_child(args)
    parts = args.parts or list(PARTS)
    bad = set(parts) - set(PARTS)
    if bad:
        p.error(f"unknown parts {sorted(bad)}; choose from {PARTS}")
    cfg = dict(QUICK if args.quick else FULL, quick=args.quick)
    LOAD.enabled = not (args.quick or args.no_wait)
    if args.rounds:
        cfg["rounds"] = cfg["jit_rounds"] = args.rounds

    t0 = time.perf_counter()
    print(f"keras_conductance benchmarks ({'quick' if args.quick else 'full'}): "
          f"TensorFlow {metadata.version('tensorflow')}, Keras {metadata.version('keras')}, "
          f"Python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPU "
          f"cores; load average {load_avg()}")
    print(f"settings: B={cfg['batch']}, n_steps={cfg['n_steps']}, InceptionV3 "
          f"{cfg['inception_size']}x{cfg['inception_size']}, MobileNetV2 "
          f"{cfg['mobilenet_size']}x{cfg['mobilenet_size']}, rounds={cfg['rounds']} "
          f"(jit: {cfg['jit_rounds']}), random weights, random nonzero baseline", flush=True)
    results = {}
    if "memory" in parts:  # first: the children must be spawned before TF is imported
        bench_memory(cfg, results)

    import tensorflow as tf

    quiet()
    print(f"\nGPUs visible to TensorFlow: {len(tf.config.list_physical_devices('GPU'))}")
    if "overhead" in parts:
        bench_overhead(cfg, results)
    if "layers" in parts:
        bench_layers(cfg, results)
    if "jit" in parts:
        bench_jit(cfg, results, ["MobileNetV2"] + (["InceptionV3"] if args.jit_inception else []))
    if "completeness" in parts:
        bench_completeness(cfg, results)
    if "bert" in parts:
        bench_bert(cfg, results)
    summary(cfg, results)
    total = time.perf_counter() - t0
    print(f"\ntotal runtime {total:.0f} s (of which {LOAD.total_wait:.0f} s waiting for "
          f"other processes to go quiet); load average {load_avg()}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(settings=cfg, results=results, seconds=total), f, indent=1,
                      default=str)


if __name__ == "__main__":
    main()
