"""Benchmarks for ConductanceCallback and conductance_over_dataset.

1. Callback overhead: ``fit`` of a small CNN for one epoch with and without
   a ``ConductanceCallback`` (32-example probe set, n_steps=50, TensorBoard
   and CSV output), as a ratio; and the added time per epoch against one
   explainer call on the probe set (it should be about 1: the callback's
   compute is one explainer call per epoch).
2. ``conductance_over_dataset`` throughput (examples/s) on one device vs a
   ``MirroredStrategy`` over two logical devices. Logical devices must be
   configured before TensorFlow starts, so each measurement runs in a fresh
   subprocess (``--dataset-worker N``).

Variants are interleaved and medians reported, since the machine may be
shared. Run from the project root:

    .venv/bin/python benchmarks/bench_callbacks.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

N_STEPS = 50
PROBE = 32


def small_cnn(keras, classes=10):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((28, 28, 1)),
        keras.layers.Conv2D(16, 3, activation="relu", name="conv1"),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(32, 3, activation="relu", name="conv2"),
        keras.layers.MaxPooling2D(),
        keras.layers.Flatten(),
        keras.layers.Dense(64, activation="relu", name="dense"),
        keras.layers.Dense(classes, name="logits"),
    ])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def data(n, classes=10, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 28, 28, 1)).astype("float32"), rng.integers(0, classes, n)


# -- 1. callback overhead ------------------------------------------------------


def bench_callback(repeats: int, train_examples: int):
    import warnings

    import keras

    import keras_conductance as kc
    from keras_conductance.callbacks import ConductanceCallback

    warnings.filterwarnings("ignore", message="Completeness error")
    x, y = data(train_examples)
    probe = x[:PROBE]
    model = small_cnn(keras)
    folder = tempfile.mkdtemp(prefix="kc_bench_")
    callback = ConductanceCallback(
        probe, ["conv1", "conv2", "dense"], n_steps=N_STEPS, log_dir=folder,
        filename=os.path.join(folder, "history.csv"),
    )
    # The same computation, kept in memory only: isolates the writing cost.
    quiet = ConductanceCallback(probe, ["conv1", "conv2", "dense"], n_steps=N_STEPS)
    explainer = kc.Conductance(model, ["conv1", "conv2", "dense"], n_steps=N_STEPS, verbose=0)

    def fit(callbacks):
        start = time.perf_counter()
        model.fit(x, y, batch_size=64, epochs=1, callbacks=callbacks, verbose=0)
        return time.perf_counter() - start

    def explain():
        start = time.perf_counter()
        explainer(probe)
        return time.perf_counter() - start

    fit([]), fit([callback]), fit([quiet]), explain()  # warm-up: traces everything once
    traced = callback.explainer.tracing_count
    plain, with_cb, with_quiet, one_call = [], [], [], []
    variants = [([], plain), ([callback], with_cb), ([quiet], with_quiet)]
    for r in range(repeats):
        # Rotate the order so drifting machine load hits every variant.
        for callbacks, times in variants[r % 3:] + variants[: r % 3]:
            times.append(fit(callbacks))
        one_call.append(explain())
    plain_s, with_s, quiet_s, call_s = (
        float(np.median(t)) for t in (plain, with_cb, with_quiet, one_call)
    )
    return {
        "train_examples": train_examples,
        "fit_epoch_s": plain_s,
        "fit_epoch_with_callback_s": with_s,
        "ratio": with_s / plain_s,
        "fit_epoch_with_quiet_callback_s": quiet_s,
        "quiet_ratio": quiet_s / plain_s,
        "explainer_call_s": call_s,
        "added_s_per_epoch": with_s - plain_s,
        "added_over_one_explainer_call": (with_s - plain_s) / call_s,
        "quiet_added_over_one_explainer_call": (quiet_s - plain_s) / call_s,
        "retraces_after_warmup": callback.explainer.tracing_count - traced,
    }


# -- 2. dataset throughput ------------------------------------------------------


def dataset_worker(devices: int, examples: int, batch: int, passes: int):
    """Runs in a subprocess: configures ``devices`` logical devices first."""
    import tensorflow as tf

    kind = "GPU" if tf.config.list_physical_devices("GPU") else "CPU"
    physical = tf.config.list_physical_devices(kind)[0]
    if devices > 1:
        config = tf.config.LogicalDeviceConfiguration(
            memory_limit=8192 if kind == "GPU" else None
        )
        tf.config.set_logical_device_configuration(physical, [config] * devices)
    import keras

    from keras_conductance import conductance_over_dataset

    names = [d.name for d in tf.config.list_logical_devices(kind)][:devices]
    if devices > 1:
        strategy = tf.distribute.MirroredStrategy(names)
    else:
        strategy = tf.distribute.get_strategy()
    with strategy.scope():
        model = small_cnn(keras)
    x, y = data(examples)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch)

    def run():
        return conductance_over_dataset(model, ds, ["conv1", "conv2", "dense"], n_steps=N_STEPS,
                                        strategy=strategy, verbose=0)

    run()  # warm-up (tracing)
    times = []
    for _ in range(passes):
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
    print(json.dumps({"devices": devices, "kind": kind, "examples": result.count,
                      "times_s": times}))


def bench_dataset(repeats: int, examples: int, batch: int):
    times = {1: [], 2: []}
    kind = None
    for r in range(repeats):
        for devices in ((1, 2) if r % 2 == 0 else (2, 1)):
            done = subprocess.run(
                [sys.executable, __file__, "--dataset-worker", str(devices),
                 "--examples", str(examples), "--batch", str(batch)],
                capture_output=True, text=True, check=True,
            )
            line = json.loads(done.stdout.strip().splitlines()[-1])
            kind = line["kind"]
            times[devices].extend(line["times_s"])
    rates = {d: examples / float(np.median(t)) for d, t in times.items()}
    return {
        "device_kind": kind,
        "examples": examples,
        "global_batch": batch,
        "examples_per_s_1_device": rates[1],
        "examples_per_s_2_devices": rates[2],
        "speedup": rates[2] / rates[1],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--train-examples", type=int, default=2048)
    parser.add_argument("--examples", type=int, default=512)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--dataset-worker", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.dataset_worker:
        dataset_worker(args.dataset_worker, args.examples, args.batch, passes=2)
        return
    import tensorflow as tf

    print(f"TensorFlow {tf.__version__}; CPUs: {os.cpu_count()}; "
          f"GPUs: {len(tf.config.list_physical_devices('GPU'))}")
    cb = bench_callback(args.repeats, args.train_examples)
    print(f"[callback] small CNN, {cb['train_examples']} training examples, batch 64, "
          f"probe {PROBE}, n_steps={N_STEPS}, 3 layers, TensorBoard + CSV")
    print(f"  fit epoch without callback  {cb['fit_epoch_s'] * 1e3:8.1f} ms")
    print(f"  fit epoch with callback     {cb['fit_epoch_with_callback_s'] * 1e3:8.1f} ms"
          f"   ratio {cb['ratio']:.2f}x   added / explainer call "
          f"{cb['added_over_one_explainer_call']:.2f}")
    print(f"  ... no TensorBoard/CSV      {cb['fit_epoch_with_quiet_callback_s'] * 1e3:8.1f} ms"
          f"   ratio {cb['quiet_ratio']:.2f}x   added / explainer call "
          f"{cb['quiet_added_over_one_explainer_call']:.2f}")
    print(f"  one explainer call (probe)  {cb['explainer_call_s'] * 1e3:8.1f} ms")
    print(f"  retraces after warm-up      {cb['retraces_after_warmup']}")
    ds = bench_dataset(max(2, args.repeats // 2), args.examples, args.batch)
    print(f"[dataset] conductance_over_dataset, {ds['examples']} examples, global batch "
          f"{ds['global_batch']}, n_steps={N_STEPS}, 3 layers, {ds['device_kind']}")
    print(f"  1 device                    {ds['examples_per_s_1_device']:8.1f} examples/s")
    print(f"  2 logical devices (Mirrored){ds['examples_per_s_2_devices']:8.1f} examples/s"
          f"   speedup {ds['speedup']:.2f}x")


if __name__ == "__main__":
    main()
