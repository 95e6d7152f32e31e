"""One worker of a two-worker MultiWorkerMirroredStrategy run on 127.0.0.1.

Started twice by tests/test_multiworker.py (``python multiworker_check.py
INDEX PORT0 PORT1 OUT.npz``). Each worker runs ``conductance_over_dataset``
on the same datasets (tf.distribute shards them between the workers) and
saves what it returns; the test compares both workers' results with the
one-device result.
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from keras_conductance import conductance_over_dataset  # noqa: E402
from models import small_convnet  # noqa: E402

LAYERS = ["conv1", "conv2", "dense"]


def datasets():
    """37 examples in batches of 8 (a ragged last batch of 5), and one
    example: fewer than the workers, so one worker's share is empty."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(37, 8, 8, 2)).astype("float32")
    y = rng.integers(0, 3, 37)
    return {"ragged": tf.data.Dataset.from_tensor_slices((x, y)).batch(8),
            "tiny": tf.data.Dataset.from_tensor_slices((x[:1], y[:1])).batch(8)}


def flatten(result, prefix):
    out = {f"{prefix}/count": result.count, f"{prefix}/diff": result.mean_output_diff,
           f"{prefix}/labels": result.labels, f"{prefix}/count_per_label": result.count_per_label}
    for layer in LAYERS:
        out[f"{prefix}/mean/{layer}"] = result.mean[layer]
        out[f"{prefix}/label_mean/{layer}"] = result.mean_per_label[layer]
        out[f"{prefix}/delta/{layer}"] = result.mean_abs_delta[layer]
        for sign in ("positive", "negative"):
            for field in ("examples", "positions", "values"):
                out[f"{prefix}/top/{layer}/{field}/{sign}"] = getattr(result.top[layer], field)[sign]
    return out


def main(index, ports, out):
    # The cluster resolver reads TF_CONFIG when the strategy is created.
    os.environ["TF_CONFIG"] = json.dumps({
        "cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
        "task": {"type": "worker", "index": index},
    })
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    with strategy.scope():
        model = small_convnet()
    arrays = {}
    for name, ds in datasets().items():
        result = conductance_over_dataset(model, ds, LAYERS, target="label", n_steps=16,
                                          strategy=strategy, top_k=3, verbose=0)
        arrays.update(flatten(result, name))
    np.savez(out, **arrays)
    print("OK", strategy.num_replicas_in_sync, strategy.cluster_resolver.task_id)


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2:4], sys.argv[4])
