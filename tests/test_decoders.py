"""Decoder language models: layers called twice, nested models called by
keyword, and every keras-hub ``*CausalLM`` family explained from its token
embedding."""

import keras
import numpy as np
import pytest

import keras_conductance as kc

keras_hub = pytest.importorskip("keras_hub", reason="keras-hub is not installed")


def tied_lm(seed=0):
    """ids -> tied embedding -> Dense 'block' -> the same embedding, reversed."""
    keras.utils.set_random_seed(seed)
    ids = keras.Input((None,), dtype="int32", name="ids")
    emb = keras_hub.layers.ReversibleEmbedding(50, 8, name="token_embedding")
    h = keras.layers.Dense(8, activation="gelu", name="block")(emb(ids))
    return keras.Model(ids, emb(h, reverse=True), name="tied_lm")


def test_a_layer_called_twice_is_named_per_call_and_starts_at_its_first_call(rng):
    model = tied_lm()
    ids = rng.integers(1, 50, (3, 5)).astype("int32")
    names = [u.path for u in kc.list_units(model)]
    assert {"token_embedding@0", "token_embedding@1"} <= set(names)
    shapes = {u.path: u.shape for u in kc.list_units(model)}
    assert shapes["token_embedding"] == shapes["token_embedding@0"] == (None, None, 8)
    assert shapes["token_embedding@1"] == (None, None, 50)
    attr = kc.conductance(model, ids, ["block"], start_layer="token_embedding",
                          target=lambda o: o[:, -1, 7], n_steps=64, verbose=0)
    # Hand-built equivalent: the path in the embedding space as a float input.
    emb = model.get_layer("token_embedding")
    vectors = keras.Input((None, 8), name="vectors")
    block = model.get_layer("block")
    hand = keras.Model(vectors, emb(block(vectors), reverse=True))
    x = np.asarray(emb(ids))
    ref = kc.conductance(hand, x, [hand.layers[1].name], target=lambda o: o[:, -1, 7],
                         n_steps=64, verbose=0)
    np.testing.assert_allclose(attr["block"], ref[hand.layers[1].name], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(attr.output_at_input, np.asarray(model(ids))[:, -1, 7],
                               rtol=1e-5)
    assert attr.relative_delta(["block"]).max() < 0.01
    # The second call is its own tensor (the LM head's logits), and addressable.
    last = kc.conductance(model, ids, ["token_embedding@1"], start_layer="token_embedding@0",
                          target=lambda o: o[:, -1, 7], n_steps=8, verbose=0)
    assert last["token_embedding@1"].shape == (3, 5, 50)


def test_a_nested_model_called_by_keyword_equals_one_called_positionally(rng):
    keras.utils.set_random_seed(1)
    y = keras.Input((4,), name="y")
    inner = keras.Model(y, keras.layers.Dense(3, activation="tanh", name="d2")(y), name="inner")
    head = keras.layers.Dense(2, name="head")
    outer_in = keras.Input((4,), name="x")
    by_keyword = keras.Model(outer_in, head(inner(inputs=outer_in)), name="by_keyword")
    positional = keras.Model(outer_in, head(inner(outer_in)), name="positional")
    x = rng.normal(size=(3, 4)).astype("float32")
    assert "inner/d2" in [u.path for u in kc.list_units(by_keyword)]
    a = kc.conductance(by_keyword, x, ["inner/d2", "inner"], target=1, verbose=0)
    b = kc.conductance(positional, x, ["inner/d2", "inner"], target=1, verbose=0)
    for name in ("inner/d2", "inner"):
        np.testing.assert_allclose(a[name], b[name], rtol=1e-6)
    assert a.relative_delta(["inner/d2"]).max() < 0.01


def _batch(rng, n=2, length=8, left_pad=3):
    import decoders

    ids = rng.integers(1, decoders.VOCAB, (n, length)).astype("int32")
    mask = np.ones_like(ids)
    ids[0, :left_pad], mask[0, :left_pad] = 0, 0  # example 0 left-padded
    return {"token_ids": ids, "padding_mask": mask}


def test_token_targets_equal_hand_computations_and_never_retrace(rng):
    import decoders
    import tensorflow as tf

    lm = decoders.causal_lm("llama3")
    batch = _batch(rng)
    ids = batch["token_ids"]
    logits = np.asarray(lm(batch))
    logp = tf.nn.log_softmax(logits).numpy()
    explainer = kc.Conductance(lm, ["transformer_layer_1"], start_layer="token_embedding",
                               n_steps=16, verbose=0)
    cases = [
        (kc.next_token(7), logits[:, -1, 7]),
        (kc.next_token([7, 8], log_prob=True), [logp[0, -1, 7], logp[1, -1, 8]]),
        (kc.logit_difference(7, 3, position=4), logits[:, 4, 7] - logits[:, 4, 3]),
        (kc.continuation(ids[:, -2:]),
         [logp[b, 5, ids[b, 6]] + logp[b, 6, ids[b, 7]] for b in range(2)]),
    ]
    for target, expected in cases:
        attr = explainer(batch, target=target)
        np.testing.assert_allclose(attr.output_at_input, expected, rtol=1e-5, atol=1e-6)
        assert attr.relative_delta(["transformer_layer_1"]).max() < 0.01
    traced = explainer.tracing_count
    for token in [3, 5, 9, 11, 42]:
        explainer(batch, target=kc.next_token(token))
    explainer(batch, target=kc.next_token(7, position=[2, 5]))
    explainer({k: v[:1] for k, v in batch.items()}, target=kc.next_token(7))
    assert explainer.tracing_count == traced  # token ids, positions, batch size: data
    # The last real position under right padding too.
    right = {"token_ids": ids.copy(), "padding_mask": np.ones_like(ids)}
    right["padding_mask"][1, 6:] = 0
    attr = explainer(right, target=kc.next_token(7))
    right_logits = np.asarray(lm(right))
    np.testing.assert_allclose(attr.output_at_input,
                               [right_logits[0, 7, 7], right_logits[1, 5, 7]], rtol=1e-5)
    with pytest.raises(ValueError, match=r"outside the vocabulary.*valid ids 0\.\.99"):
        explainer(batch, target=kc.next_token(100))
    with pytest.raises(ValueError, match="past the sequence"):
        explainer(batch, target=kc.next_token(3, position=8))
    with pytest.raises(ValueError, match="teacher forcing"):
        explainer(batch, target=kc.continuation([1, 2]))
    with pytest.raises(ValueError, match="flattened values.*kc.next_token"):
        explainer(batch, target=5)


def test_rms_norm_decoders_default_to_the_pad_token_and_the_warning_names_the_norm(rng):
    import decoders

    lm = decoders.causal_lm("gemma")
    batch = _batch(rng)
    units = ["decoder_block_0", "decoder_block_1"]
    explainer = kc.Conductance(lm, units, start_layer="token_embedding", verbose=0)
    assert explainer.adapter.singular_norm == "decoder_block_0"
    attr = explainer(batch, target=kc.next_token(7))
    pad = explainer(batch, target=kc.next_token(7), baselines=0)  # token id 0
    np.testing.assert_allclose(attr[units[1]], pad[units[1]], rtol=1e-6)
    assert attr.relative_delta([units[1]]).max() < 0.01
    with pytest.warns(UserWarning, match="zero embedding.*'decoder_block_0'.*divides by its norm"):
        zero = explainer(batch, target=kc.next_token(7),
                         baselines=np.zeros((1, 1, decoders.HIDDEN), "float32"))
    assert zero.relative_delta([units[1]]).max() > 0.05
    # GPT-2 adds a position embedding first: its default stays the zero embedding.
    gpt2 = kc.Conductance(decoders.causal_lm("gpt2"), ["transformer_layer_1"],
                          start_layer="token_embedding", verbose=0)
    assert gpt2.adapter.singular_norm is None
    assert gpt2.adapter.default_baseline == "the zero embedding"


@pytest.mark.slow
@pytest.mark.parametrize("family", ["gpt2", "gemma", "gemma3", "llama3", "mistral", "qwen2",
                                    "qwen3", "phi3"])
def test_every_causal_lm_family_from_its_token_embedding(family, rng):
    import decoders

    lm = decoders.causal_lm(family)
    batch = _batch(rng)
    units = ["*:residual", "*:ffn_neurons", "*:heads"]
    explainer = kc.Conductance(lm, units, start_layer="token_embedding", verbose=0)
    names = explainer.layers
    blocks = [n[: -len(":residual")] for n in names if n.endswith(":residual")]
    assert len(blocks) == decoders.LAYERS
    inside = explainer.adapter._internal
    # The projections the units feed, by their sublayer names, in the same pass.
    projections = [inside[f"{b}:ffn_neurons"][: -len(":input")] for b in blocks] + [
        inside[f"{b}:heads"][: -len(":input")] for b in blocks]
    explainer = kc.Conductance(lm, names + projections, start_layer="token_embedding",
                               verbose=0)
    attr = explainer(batch, target=kc.next_token(7))  # default settings, last real position
    logits = np.asarray(lm(batch))
    np.testing.assert_allclose(attr.output_at_input, logits[:, -1, 7], rtol=1e-5, atol=1e-6)

    def total(name):
        return attr[name].reshape(2, -1).sum(1)

    for b in blocks:
        assert attr.is_cut[f"{b}:residual"]
        assert attr.relative_delta([f"{b}:residual"]).max() <= 0.01
        ffn_out = inside[f"{b}:ffn_neurons"][: -len(":input")]
        np.testing.assert_allclose(total(f"{b}:ffn_neurons"), total(ffn_out), rtol=1e-4,
                                   atol=1e-6)
        heads_out = inside[f"{b}:heads"][: -len(":input")]
        np.testing.assert_allclose(total(f"{b}:heads"), total(heads_out), rtol=1e-4, atol=1e-6)
        assert attr[f"{b}:heads"].shape[2] == decoders.HEADS  # query heads under GQA
        assert attr.per_filter(f"{b}:heads").shape == (2, decoders.HEADS)
        for unit in (f"{b}:residual", f"{b}:ffn_neurons", f"{b}:heads"):
            assert np.all(attr[unit][0, :3] == 0)  # left-padded positions
    # The backbone with a hand-written LM head gives the same numbers.
    backbone = lm.backbone
    emb = backbone.get_layer("token_embedding")

    def head(seq):
        return emb(seq[:, -1:], reverse=True)[:, 0, 7]

    plain = [n.rsplit("/", 1)[-1] for n in names]
    by_hand = kc.Conductance(backbone, plain, start_layer="token_embedding",
                             verbose=0)(batch, target=head)
    for name, short in zip(names, plain):
        np.testing.assert_allclose(attr[name], by_hand[short], rtol=1e-5, atol=1e-7)


def test_list_units_shows_what_units_by_meaning_resolve_to():
    import decoders

    lm = decoders.causal_lm("gemma")
    units = {u.path: u for u in kc.list_units(lm)}
    ffn = units["decoder_block_1:ffn_neurons"]
    assert ffn.resolves_to == "decoder_block_1/ffw_linear:input"
    assert ffn.shape == (None, None, decoders.FFN // 2)  # Gemma's gate halves it
    heads = units["decoder_block_0:heads"]
    assert heads.resolves_to == "decoder_block_0/attention/attention_output:input"
    assert heads.shape == (None, None, decoders.HEADS, decoders.HIDDEN // decoders.HEADS)
    assert units["decoder_block_0:residual"].in_graph
    assert units[lm.backbone.name].kind.startswith("Model")  # gemma_backbone(_N)
    assert "= decoder_block_1/ffw_linear:input" in str(ffn)
    with pytest.raises(ValueError, match=r"no heads.*Units by meaning of 'token_embedding'"):
        kc.Conductance(lm, ["token_embedding:heads"],
                       start_layer="token_embedding")


def test_masked_lstm_from_its_embedding(rng):
    keras.utils.set_random_seed(0)
    ids = keras.Input((None,), dtype="int32", name="ids")
    e = keras.layers.Embedding(30, 8, mask_zero=True, name="embedding")(ids)
    h = keras.layers.LSTM(6, name="lstm")(e)
    hidden = keras.layers.Dense(4, activation="tanh", name="hidden")(h)
    model = keras.Model(ids, keras.layers.Dense(2, name="logits")(hidden))
    x = rng.integers(1, 30, (3, 7)).astype("int32")
    x[0, 4:] = 0  # padded: the mask (computed from the ids) is held constant
    attr = kc.conductance(model, x, ["lstm", "hidden"], start_layer="embedding", target=1,
                          verbose=0)
    assert np.all(np.abs(attr.output_diff) > 1e-4)
    assert attr.relative_delta(["lstm"]).max() <= 0.01
    assert attr.relative_delta(["hidden"]).max() <= 0.01
    units = {u.path: u for u in kc.list_units(model)}
    assert units["lstm"].shape == (None, 6)
    assert units["lstm/lstm_cell"].shape is None  # it returns (h, [h, c])


@pytest.mark.slow
def test_vit_tolerance_judges_units_inside_layers_by_their_estimate(rng):
    keras.utils.set_random_seed(6)
    vit = keras_hub.models.ViTBackbone(image_shape=(16, 16, 3), patch_size=8, num_layers=2,
                                       num_heads=2, hidden_dim=8, mlp_dim=16)
    pooled = keras.layers.Lambda(lambda t: t[:, 0], name="class_token")(vit.output)
    classifier = keras.Model(vit.input, keras.layers.Dense(3, name="head")(pooled))
    images = rng.uniform(-1, 1, (2, 16, 16, 3)).astype("float32")
    tapped = [f"vit_encoder/transformer_block_{i}" for i in (1, 2)]
    explainer = kc.Conductance(classifier, tapped + ["class_token"], verbose=0)
    attr = explainer(images, target=1, tolerance=0.01)
    # Completeness cannot be checked on units inside a layer; the per-filter
    # error estimate is, on every unit.
    assert attr.unjudged == tapped
    assert attr.relative_delta(["class_token"]).max() <= 0.01
    for unit in tapped + ["class_token"]:
        assert attr.error_estimate[unit].max() <= 0.01, unit
    # Units by meaning reach the blocks inside vit_encoder too.
    meant = kc.Conductance(classifier, ["*:ffn_neurons", "*:heads", "class_token"],
                           n_steps=16, verbose=0)
    assert meant.layers[:2] == ["vit_encoder/transformer_block_1:ffn_neurons",
                                "vit_encoder/transformer_block_2:ffn_neurons"]
    assert meant.adapter._internal[meant.layers[0]] == \
        "vit_encoder/transformer_block_1/mlp/dense_2:input"
    by_meaning = meant(images, target=1)
    by_path = kc.Conductance(classifier, [
        "vit_encoder/transformer_block_1/mlp/dense_2:input",
        "vit_encoder/transformer_block_2/mha/attention_output:input"], n_steps=16,
        verbose=0)(images, target=1)
    np.testing.assert_allclose(by_meaning[meant.layers[0]],
                               by_path["vit_encoder/transformer_block_1/mlp/dense_2:input"],
                               rtol=1e-6)
    assert by_meaning.per_filter("vit_encoder/transformer_block_2:heads").shape == (2, 2)
    # Without a cut among the units, tolerance still holds the estimate
    # (it once refused): the same units agree with the run beside the cut.
    alone = kc.Conductance(classifier, tapped, verbose=0)(images, target=1, tolerance=0.01)
    assert max(alone.error_estimate[u].max() for u in tapped) <= 0.01
    for unit in tapped:
        np.testing.assert_allclose(alone[unit], attr[unit],
                                   atol=0.03 * np.abs(attr[unit]).sum(axis=(1, 2)).max())


def test_ablating_top_neurons_together_with_a_token_target(rng):
    import decoders

    lm = decoders.causal_lm("qwen3")
    batch = _batch(rng)
    unit = "transformer_layer_1:ffn_neurons"
    target = kc.logit_difference(7, 3)
    drops = kc.ablation_scores(lm, batch, unit, target=target, start_layer="token_embedding",
                               filters=[4, 9])
    both = kc.ablation_scores(lm, batch, unit, target=target, start_layer="token_embedding",
                              filters=[4, 9], together=True)
    # By hand: zero those neurons by zeroing the down projection's rows for them.
    dense = lm.backbone.get_layer("transformer_layer_1")._feedforward_output_dense
    kernel = dense.get_weights()
    full = np.asarray(lm(batch))[:, -1]
    for rows, expected in (([4], drops[:, 0]), ([9], drops[:, 1]), ([4, 9], both)):
        edited = [w.copy() for w in kernel]
        edited[0][rows] = 0.0
        dense.set_weights(edited)
        out = np.asarray(lm(batch))[:, -1]
        dense.set_weights(kernel)
        np.testing.assert_allclose(expected, (full[:, 7] - full[:, 3]) - (out[:, 7] - out[:, 3]),
                                   rtol=1e-4, atol=1e-6)


def test_an_untrained_pad_row_gives_the_mean_embedding_baseline(rng):
    import decoders

    lm = decoders.causal_lm("mistral")
    emb = lm.backbone.get_layer("token_embedding")
    table = emb.embeddings.numpy()
    table[0] *= 0.01  # a pad id the model never saw: its row stayed near zero
    emb.embeddings.assign(table)
    batch = _batch(rng)
    explainer = kc.Conductance(lm, ["transformer_layer_1"], start_layer="token_embedding",
                               verbose=0)
    assert "mean token embedding" in explainer.adapter.default_baseline
    prep = explainer.adapter.prepare(batch)
    np.testing.assert_allclose(prep.baselines[0][1, 3], table.mean(0), rtol=1e-5, atol=1e-7)
    attr = explainer(batch, target=kc.next_token(7))
    assert attr.relative_delta(["transformer_layer_1"]).max() <= 0.01
    # The pad row itself as baseline is near the norm's singular point: warned.
    with pytest.warns(UserWarning, match="near\\) the zero embedding"):
        explainer(batch, target=kc.next_token(7), baselines=0)


def test_only_language_model_logits_refuse_int_targets_and_post_norm_keeps_zero(rng):
    keras.utils.set_random_seed(2)
    x = keras.Input((4,))
    tagger = keras.Model(x, keras.layers.Reshape((4, 3))(keras.layers.Dense(12)(x)))
    attr = kc.conductance(tagger, rng.normal(size=(2, 4)).astype("float32"),
                          [tagger.layers[1].name], target=1, verbose=0)
    assert attr.output_at_input.shape == (2,)  # a (B, 4, 3) output, not LM logits: fine
    ids = keras.Input((None,), dtype="int32")
    e = keras.layers.Embedding(30, 8, name="embedding")(ids)
    post = keras_hub.layers.TransformerEncoder(16, 2, normalize_first=False, name="enc")(e)
    model = keras.Model(ids, keras.layers.Dense(2)(post))
    explainer = kc.Conductance(model, ["enc"], start_layer="embedding", verbose=0)
    assert explainer.adapter.singular_norm is None
    assert explainer.adapter.default_baseline == "the zero embedding"
    import decoders

    lm = decoders.causal_lm("llama3")
    with pytest.raises(ValueError, match="flattened values"):
        kc.ablation_scores(lm, _batch(rng), "transformer_layer_1:ffn_neurons", target=5,
                           start_layer="token_embedding", filters=[0])
    heads = kc.ablation_scores(lm, _batch(rng), "transformer_layer_1:heads",
                               target=kc.next_token(7), start_layer="token_embedding")
    assert heads.shape == (2, decoders.HEADS)  # one drop per head by default
