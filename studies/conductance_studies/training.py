"""Training helpers shared by the studies' sentiment models."""

from __future__ import annotations

import json
import pathlib
import time
from typing import Callable, List, Sequence, Tuple

import numpy as np

__all__ = ["accuracy", "fit_keeping_best", "load_cache", "save_cache"]


def accuracy(model, inputs, labels: np.ndarray, batch_size: int = 256) -> float:
    """Share of examples whose logit sign matches the binary label."""
    logits = np.asarray(model.predict(inputs, batch_size=batch_size, verbose=0))[:, 0]
    return float(np.mean((logits > 0) == (labels == 1)))


def fit_keeping_best(model, x, y, x_dev, y_dev, *, epochs: int, batch_size: int,
                     say: Callable = print) -> Tuple[float, List[dict]]:
    """Trains one epoch at a time and keeps the weights of the epoch with the
    best dev accuracy (model selection on dev, never on test).

    Returns:
        ``(best dev accuracy, per-epoch history)``; ``model`` holds the best
        weights.
    """
    best, best_weights, history = -1.0, None, []
    for epoch in range(epochs):
        start = time.perf_counter()
        loss = model.fit(x, y, batch_size=batch_size, epochs=1, shuffle=True,
                         verbose=0).history["loss"][-1]
        acc = accuracy(model, x_dev, y_dev)
        history.append({"epoch": epoch + 1, "loss": float(loss), "dev_accuracy": acc})
        say(f"      epoch {epoch + 1}/{epochs}: loss {loss:.3f}, dev accuracy {acc:.3f} "
            f"({time.perf_counter() - start:.0f} s)")
        if acc > best:
            best, best_weights = acc, model.get_weights()
    model.set_weights(best_weights)
    return best, history


def load_cache(files: Sequence[pathlib.Path], settings: dict, build: Callable,
               what: str, say: Callable = print):
    """``(model, vocab, meta)`` from the cache when it exists and was trained
    with ``settings``; else None. ``build(vocab_size)`` makes the network."""
    from conductance_studies.datasets import Vocabulary

    weights, vocab_file, meta_file = files
    if not all(f.exists() for f in files):
        return None
    meta = json.loads(meta_file.read_text())
    if any(meta.get(k) != v for k, v in settings.items()):
        return None
    vocab = Vocabulary.from_json(vocab_file.read_text())
    model = build(len(vocab))
    model.load_weights(str(weights))
    say(f"      loaded the cached {what} from {weights.parent} "
        f"(test accuracy {meta['test_accuracy']:.3f})")
    return model, vocab, meta


def save_cache(files: Sequence[pathlib.Path], model, vocab, meta: dict, say: Callable = print):
    """Writes ``(weights, vocab.json, meta.json)`` into their folder."""
    weights, vocab_file, meta_file = files
    weights.parent.mkdir(parents=True, exist_ok=True)
    model.save_weights(str(weights))
    vocab_file.write_text(vocab.to_json())
    meta_file.write_text(json.dumps(meta, indent=1))
    say(f"      test accuracy {meta['test_accuracy']:.3f} on {meta['test_size']} sentences; "
        f"saved to {weights.parent}")
