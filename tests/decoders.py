"""Tiny random-weight keras-hub causal LMs, built from their config classes
(no download): one per decoder family the package supports."""

import keras
import pytest

VOCAB, LAYERS, HIDDEN, HEADS, KV_HEADS, FFN = 100, 2, 32, 4, 2, 64

FAMILIES = ["gpt2", "gemma", "gemma3", "llama3", "mistral", "qwen2", "qwen3", "phi3"]


def backbone(family: str, seed: int = 0):
    """The tiny backbone of ``family`` (random init, float32)."""
    hub = pytest.importorskip("keras_hub", reason="keras-hub is not installed")
    keras.utils.set_random_seed(seed)
    m = hub.models
    common = dict(vocabulary_size=VOCAB, num_layers=LAYERS, hidden_dim=HIDDEN,
                  intermediate_dim=FFN, dtype="float32")
    gqa = dict(num_query_heads=HEADS, num_key_value_heads=KV_HEADS)
    head_dim = HIDDEN // HEADS
    if family == "gpt2":
        return m.GPT2Backbone(num_heads=HEADS, max_sequence_length=64, dropout=0.0, **common)
    if family == "gemma":
        return m.GemmaBackbone(head_dim=head_dim, **gqa, **common)
    if family == "gemma3":
        return m.Gemma3Backbone(image_size=16, head_dim=head_dim, vision_encoder=None,
                                **gqa, **common)
    if family == "llama3":
        return m.Llama3Backbone(**gqa, **common)
    if family == "mistral":
        return m.MistralBackbone(**gqa, **common)
    if family == "qwen2":
        return m.QwenBackbone(**gqa, **common)
    if family == "qwen3":
        return m.Qwen3Backbone(head_dim=head_dim, **gqa, **common)
    if family == "phi3":
        return m.Phi3Backbone(**gqa, **common)
    raise ValueError(f"Unknown family {family!r}; known: {FAMILIES}")


CAUSAL_LM = {"gpt2": "GPT2CausalLM", "gemma": "GemmaCausalLM", "gemma3": "Gemma3CausalLM",
             "llama3": "Llama3CausalLM", "mistral": "MistralCausalLM",
             "qwen2": "QwenCausalLM", "qwen3": "Qwen3CausalLM", "phi3": "Phi3CausalLM"}


def causal_lm(family: str, seed: int = 0):
    """The family's ``*CausalLM`` around its tiny backbone, no preprocessor."""
    hub = pytest.importorskip("keras_hub", reason="keras-hub is not installed")
    return getattr(hub.models, CAUSAL_LM[family])(backbone=backbone(family, seed), preprocessor=None)
