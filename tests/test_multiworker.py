"""Two MultiWorkerMirroredStrategy workers on 127.0.0.1 give the one-device result."""

import os
import pathlib
import socket
import subprocess
import sys

import numpy as np
import pytest

HERE = pathlib.Path(__file__).resolve().parent


def free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def run_workers(tmp_path, timeout=300):
    """Starts both workers at once; kills them on failure or timeout."""
    ports = [str(p) for p in free_ports(2)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("TF_CONFIG", None)
    outs = [tmp_path / f"worker{i}.npz" for i in range(2)]
    procs = [subprocess.Popen([sys.executable, str(HERE / "multiworker_check.py"), str(i),
                               *ports, str(outs[i])], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env, cwd=str(HERE))
             for i in range(2)]
    try:
        logs = [p.communicate(timeout=timeout) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, (out, err) in zip(procs, logs):
        assert p.returncode == 0, f"worker failed:\n{out[-2000:]}\n{err[-4000:]}"
        assert out.startswith("OK 2"), out
    return [dict(np.load(o)) for o in outs]


@pytest.mark.slow
def test_two_workers_equal_one_device(tmp_path):
    sys.path.insert(0, str(HERE))
    from multiworker_check import LAYERS, datasets, flatten
    from models import small_convnet

    import keras_conductance as kc

    model = small_convnet()
    single = {}
    for name, ds in datasets().items():
        single.update(flatten(kc.conductance_over_dataset(
            model, ds, LAYERS, target="label", n_steps=16, top_k=3, verbose=0), name))
    workers = run_workers(tmp_path)
    for name in ("ragged", "tiny"):
        scale = abs(single[f"{name}/diff"])
        for result in workers:  # the chief and the other worker return the same
            assert result[f"{name}/count"] == single[f"{name}/count"]
            np.testing.assert_array_equal(result[f"{name}/labels"], single[f"{name}/labels"])
            np.testing.assert_array_equal(result[f"{name}/count_per_label"],
                                          single[f"{name}/count_per_label"])
            assert result[f"{name}/diff"] == pytest.approx(single[f"{name}/diff"], rel=1e-5)
            for layer in LAYERS:
                for key in ("mean", "label_mean"):
                    np.testing.assert_allclose(result[f"{name}/{key}/{layer}"],
                                               single[f"{name}/{key}/{layer}"],
                                               rtol=1e-5, atol=1e-7)
                # Completeness errors are differences of near-equal sums:
                # compared on the scale of F(x) - F(x').
                assert abs(result[f"{name}/delta/{layer}"] - single[f"{name}/delta/{layer}"]) \
                    <= 1e-5 * scale
                # The top examples: the same examples and positions (exact merge).
                for sign in ("positive", "negative"):
                    for field in ("examples", "positions"):
                        key = f"{name}/top/{layer}/{field}/{sign}"
                        np.testing.assert_array_equal(result[key], single[key])
                    key = f"{name}/top/{layer}/values/{sign}"
                    np.testing.assert_allclose(result[key], single[key], rtol=1e-5, atol=1e-7)
    assert single["ragged/count"] == 37 and single["tiny/count"] == 1
