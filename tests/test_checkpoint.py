"""Resumable dataset runs: interrupted any way, resumed, exactly the same."""

import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import keras_conductance as kc
from checkpoint_child import BATCHES, model_and_data, run
from keras_conductance.checkpoint import CHECKPOINT_FILE

CHILD = pathlib.Path(__file__).with_name("checkpoint_child.py")


def saved_batches(directory) -> int:
    try:
        with np.load(pathlib.Path(directory) / CHECKPOINT_FILE) as data:
            return int(data["done"])
    except (OSError, KeyError, ValueError, EOFError):
        return 0  # not there yet


def interrupt_child(directory, sig, after_batches=3):
    """Starts the run in a subprocess and sends ``sig`` once it has saved
    ``after_batches`` batches; returns the child's exit code."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    child = subprocess.Popen([sys.executable, str(CHILD), str(directory)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                             cwd=str(CHILD.parent))
    try:
        deadline = time.monotonic() + 120
        while saved_batches(directory) < after_batches:
            if child.poll() is not None:
                raise AssertionError(f"child ended early: {child.communicate()[1][-2000:]}")
            if time.monotonic() > deadline:
                raise AssertionError("child made no progress in 120 s")
            time.sleep(0.05)
        child.send_signal(sig)
        return child.wait(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT, signal.SIGTERM],
                         ids=["SIGKILL", "SIGINT", "SIGTERM"])
def test_an_interrupted_run_resumes_to_exactly_the_uninterrupted_result(sig, tmp_path):
    whole = run()
    for attempt in range(3):
        code = interrupt_child(tmp_path, sig)
        # On a loaded machine this process may poll too late and the child
        # finishes all batches before the signal lands (exit 0, everything
        # saved): a race of the test, not a resume; start again.
        if not (code == 0 and saved_batches(tmp_path) == BATCHES):
            break
        (tmp_path / CHECKPOINT_FILE).unlink()
    assert code != 0
    stopped_at = saved_batches(tmp_path)
    assert 3 <= stopped_at < BATCHES
    resumed = run(tmp_path)
    # Fewer batches computed than a full run, and the very same numbers.
    assert resumed.resumed_batches == stopped_at and resumed.batches == BATCHES
    assert whole.batches == BATCHES and whole.resumed_batches == 0
    for layer in ["conv1", "conv2"]:
        np.testing.assert_array_equal(resumed.mean[layer], whole.mean[layer])
        np.testing.assert_array_equal(resumed.mean_per_label[layer], whole.mean_per_label[layer])
        assert resumed.mean_abs_delta[layer] == whole.mean_abs_delta[layer]
        # The running top examples resume bit for bit too.
        for field in ("values", "examples", "positions", "targets", "labels", "contexts"):
            for sign in ("positive", "negative"):
                np.testing.assert_array_equal(getattr(resumed.top[layer], field)[sign],
                                              getattr(whole.top[layer], field)[sign])
        np.testing.assert_array_equal(resumed.histogram[layer], whole.histogram[layer])
        np.testing.assert_array_equal(resumed.mean_abs[layer], whole.mean_abs[layer])
    np.testing.assert_array_equal(resumed.count_per_label, whole.count_per_label)
    # A finished run's checkpoint answers at once: nothing left to compute.
    again = run(tmp_path)
    assert again.resumed_batches == BATCHES
    np.testing.assert_array_equal(again.mean["conv2"], whole.mean["conv2"])


def test_a_checkpoint_of_other_settings_is_refused(tmp_path):
    run(tmp_path)
    with pytest.raises(ValueError, match=r"other settings.*n_steps: checkpoint 32, now 16"):
        run(tmp_path, n_steps=16)
    with pytest.raises(ValueError, match=r"method: checkpoint 'trapezoid', now 'left'"):
        run(tmp_path, method="left")
    with pytest.raises(ValueError, match=r"target: checkpoint 'label', now 'top'"):
        run(tmp_path, target=None)
    model, _ = model_and_data()
    model.get_layer("conv1").kernel.assign(model.get_layer("conv1").kernel * 2.0)
    with pytest.raises(ValueError, match=r"weights: checkpoint '[0-9a-f]+', now"):
        run(tmp_path, model=model)
    with pytest.raises(ValueError, match=r"`checkpoint_every` must be an int >= 1\. Received: checkpoint_every=0"):
        kc.conductance_over_dataset(model, model_and_data()[1], "conv1", checkpoint_dir=str(tmp_path),
                                    checkpoint_every=0)


def test_checkpoint_files_are_written_atomically(tmp_path):
    run(tmp_path)
    # Only the checkpoint itself remains: temporary files were renamed.
    assert sorted(p.name for p in tmp_path.iterdir()) == [CHECKPOINT_FILE]
