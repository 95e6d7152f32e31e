"""Units inside layers: tapped sublayer outputs and inputs (FFN neurons, heads)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_conductance as kc
from models import small_convnet, tiny_bert


class Block(keras.layers.Layer):
    """A tiny transformer encoder block: attention, FFN, two residuals."""

    def __init__(self, dim=6, heads=2, hidden=10, shared_twice=False, unused=False, **kwargs):
        super().__init__(**kwargs)
        self.attention = keras.layers.MultiHeadAttention(heads, dim // heads, name="attention")
        self.ffn_in = keras.layers.Dense(hidden, activation="gelu", name="ffn_in")
        self.ffn_out = keras.layers.Dense(dim, name="ffn_out")
        self.norm = keras.layers.LayerNormalization(name="norm")
        self.shared_twice = shared_twice
        self.spare = keras.layers.Dense(3, name="spare") if unused else None

    def call(self, x):
        x = x + self.attention(x, x)
        h = self.ffn_in(self.norm(x))
        if self.shared_twice:
            h = self.ffn_in(self.ffn_out(h))
        return x + self.ffn_out(h)


def encoder(seed=0, **block_kwargs):
    keras.utils.set_random_seed(seed)
    inp = keras.Input((5, 6), name="x")
    y = Block(name="block", **block_kwargs)(inp)
    pooled = keras.layers.GlobalAveragePooling1D(name="pool")(y)
    out = keras.layers.Dense(3, name="logits")(pooled)
    model = keras.Model(inp, out, name="encoder")
    # Nonzero biases: no unit sits exactly at zero along the path.
    for layer in [model.get_layer("block").ffn_in, model.get_layer("block").ffn_out]:
        w = layer.get_weights()
        layer.set_weights([w[0], np.full_like(w[1], 0.1)])
    return model


def literal_eq3(model, x, xb, sublayer, target, n_steps, where="output"):
    """Eq. 3, literally: y and dF/dy at every path point from an explicit
    tape, then the trapezoid over the path, for one tapped sublayer."""
    seen = []
    original = sublayer.call

    def record(*args, **kwargs):
        if where == "input":
            first = tf.identity(args[0])
            seen.append(first)
            return original(first, *args[1:], **kwargs)
        out = original(*args, **kwargs)
        seen.append(out)
        return out

    ys, gs = [], []
    object.__setattr__(sublayer, "call", record)
    try:
        for alpha in np.linspace(0.0, 1.0, n_steps + 1):
            point = tf.constant(xb + alpha * (x - xb))
            seen.clear()
            with tf.GradientTape() as tape:
                tape.watch(point)
                score = model(point, training=False)[:, target]
            ys.append(seen[0].numpy())
            gs.append(tape.gradient(score, seen[0]).numpy())
    finally:
        object.__delattr__(sublayer, "call")
    total = 0.0
    for p in range(1, n_steps + 1):
        total = total + 0.5 * (gs[p - 1] + gs[p]) * (ys[p] - ys[p - 1])
    return total


@pytest.mark.parametrize("unit,where", [
    ("block/ffn_in", "output"),
    ("block/attention/attention_output:input", "input"),
    ("block/attention", "output"),
])
def test_tapped_units_match_a_literal_eq3_reference(unit, where, rng):
    model = encoder()
    x = rng.normal(size=(1, 5, 6)).astype("float32")
    xb = np.zeros_like(x)
    attr = kc.conductance(model, x, unit, target=1, n_steps=16, baselines=xb)
    path = unit.split(":")[0].split("/")[1:]
    layer = model.get_layer("block")
    for name in path:
        layer = {l.name: l for l in layer._flatten_layers(include_self=False, recursive=False)}[name]
    expected = literal_eq3(model, x, xb, layer, 1, 16, where)
    np.testing.assert_allclose(attr[unit], expected, rtol=2e-4, atol=1e-6)
    assert attr.is_cut[unit] is None  # inside a layer: unknown


def test_heads_add_up_to_the_attention_output():
    model = encoder(seed=1)
    x = np.random.default_rng(1).normal(size=(3, 5, 6)).astype("float32")
    heads, out = "block/attention/attention_output:input", "block/attention/attention_output"
    attr = kc.conductance(model, x, [heads, out], n_steps=8)
    assert attr[heads].shape == (3, 5, 2, 3)  # (B, T, heads, head_dim)
    per_head = attr.per_filter(heads, channel_axis=-2)  # (B, heads)
    assert per_head.shape == (3, 2)
    # The output projection is linear: the flow through the heads equals the
    # flow through its output at every path interval (float32 rounding only).
    np.testing.assert_allclose(per_head.sum(axis=1), attr[out].reshape(3, -1).sum(axis=1),
                               rtol=1e-5, atol=1e-7)
    per_position_head = attr[heads].sum(axis=-1)  # (B, T, heads)
    np.testing.assert_allclose(per_position_head.sum(axis=(1, 2)), per_head.sum(axis=1),
                               rtol=1e-5)


def test_ffn_neurons_add_up_to_the_ffn_output_and_measures_take_taps():
    model = encoder(seed=7)
    x = np.random.default_rng(7).normal(size=(3, 5, 6)).astype("float32")
    neurons, ffn_out = "block/ffn_in", "block/ffn_out"
    measures = kc.measures(model, x, [neurons, ffn_out], target=1, n_steps=8)
    cond = measures.conductance
    # ffn_out is linear in the neurons: their flow is its flow at every path
    # interval. (Neurons + the block's residual input would count the
    # residual twice: in a pre-norm block it also feeds the FFN.)
    np.testing.assert_allclose(cond[neurons].reshape(3, -1).sum(1),
                               cond[ffn_out].reshape(3, -1).sum(1), rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(
        cond[neurons], kc.conductance(model, x, [neurons, ffn_out], target=1, n_steps=8)[neurons])
    # Activation and gradient x activation of a tapped unit: its value at x
    # (the endpoint of the path) and that value times dF/d(unit) there.
    seen = []
    dense = model.get_layer("block").ffn_in
    original = dense.call
    object.__setattr__(dense, "call", lambda *a, **k: seen.append(original(*a, **k)) or seen[-1])
    try:
        with tf.GradientTape() as tape:
            score = model(tf.constant(x), training=False)[:, 1]
        grad = tape.gradient(score, seen[0]).numpy()
    finally:
        object.__delattr__(dense, "call")
    np.testing.assert_allclose(measures.activation[neurons], seen[0].numpy(), rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_allclose(measures.gradient_x_activation[neurons],
                               grad * seen[0].numpy(), rtol=1e-4, atol=1e-6)


def test_callback_follows_ffn_neurons_and_heads_with_one_axis_each(tmp_path):
    model = encoder(seed=8)
    model.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(True))
    rng = np.random.default_rng(8)
    x, y = rng.normal(size=(8, 5, 6)).astype("float32"), rng.integers(0, 3, 8)
    neurons, heads = "block/ffn_in", "block/attention/attention_output:input"
    cb = kc.ConductanceCallback(x[:3], [neurons, heads], target=0, n_steps=8,
                                channel_axis={heads: -2}, on="epoch_end",
                                filename=str(tmp_path / "history.npz"))
    model.fit(x, y, epochs=1, verbose=0, callbacks=[cb])
    record = cb.history[-1]["conductance"]
    attr = kc.conductance(model, x[:3], [neurons, heads], target=0, n_steps=8)
    assert record[heads].shape == (2,) and record[neurons].shape == (10,)
    np.testing.assert_allclose(record[heads], attr.per_filter(heads, -2).mean(0), rtol=1e-5,
                               atol=1e-7)
    np.testing.assert_allclose(record[neurons], attr.per_filter(neurons).mean(0), rtol=1e-5,
                               atol=1e-7)
    assert np.load(tmp_path / "history.npz")[f"conductance/{heads}"].shape == (1, 2)
    # Appending per head_dim (3 values) to a file of per-head records (2) is
    # refused before the epoch, not by a failed write after it.
    more = kc.ConductanceCallback(x[:3], [neurons, heads], target=0, n_steps=8,
                                  on="epoch_end", filename=str(tmp_path / "history.npz"),
                                  append=True)
    with pytest.raises(ValueError, match=r"`append=True`, but .*history.npz holds 2 filters "
                                         r"per record for 'block/attention/attention_output:"
                                         r"input' and this run gives 3"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[more])
    bad = kc.ConductanceCallback(x[:3], [neurons], channel_axis={"block/ffn": -2})
    with pytest.raises(ValueError, match=r"`channel_axis` names units that are not requested: "
                                         r"\['block/ffn'\]. Requested units: \['block/ffn_in'\]"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[bad])
    bad = kc.ConductanceCallback(x[:3], [neurons, heads], channel_axis={heads: 4})
    with pytest.raises(ValueError, match=r"'block/attention/attention_output:input', whose output has "
                                         r"rank 4 \(batch, 5, 2, 3\): -3\.\.-1 or 1\.\.3\. "
                                         r"Received: channel_axis=4"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[bad])
    with pytest.raises(TypeError, match=r"must be an int or a dict \{unit: int\}"):
        kc.conductance_over_dataset(model, tf.data.Dataset.from_tensor_slices(x).batch(4),
                                    neurons, channel_axis="last", verbose=0)


def test_tapping_a_graph_layer_equals_splitting_there(rng):
    model = small_convnet()
    x = rng.normal(size=(2, 8, 8, 2)).astype("float32")
    split = kc.conductance(model, x, ["conv2", "dense"], n_steps=12)
    tapped = kc.conductance(model, x, ["conv2:output", "dense"], n_steps=12)
    np.testing.assert_array_equal(tapped["conv2:output"], split["conv2"])
    assert split.is_cut["conv2"] is True and tapped.is_cut["conv2:output"] is None


def test_model_unchanged_no_retracing_and_clear_errors(rng):
    model = encoder()
    x = rng.normal(size=(2, 5, 6)).astype("float32")
    before = np.asarray(model(x))
    explainer = kc.Conductance(model, ["block/ffn_in", "block"], n_steps=4)
    explainer(x)
    traced = explainer.tracing_count
    explainer(x * 2, target=0)
    assert explainer.tracing_count == traced
    np.testing.assert_array_equal(np.asarray(model(x)), before)
    assert "call" not in vars(model.get_layer("block").ffn_in)
    with pytest.raises(ValueError, match=r"No such sublayer: 'block/ffn'.*Did you mean \['block/ffn_in', 'block/ffn_out'"):
        kc.conductance(model, x, "block/ffn")
    with pytest.raises(ValueError, match=r"No such layer: 'blok/ffn_in'.*did you mean \['block'\]"):
        kc.conductance(model, x, "blok/ffn_in")
    twice = encoder(shared_twice=True)
    with pytest.raises(ValueError, match=r"'block/ffn_in' is called 2 times in one forward pass"):
        kc.conductance(twice, x, "block/ffn_in")
    assert "call" not in vars(twice.get_layer("block").ffn_in)  # restored after the error
    spare = encoder(unused=True)
    with pytest.raises(ValueError, match=r"'block/spare' is never called in the forward pass"):
        kc.conductance(spare, x, "block/spare")


def test_list_units_shows_the_sublayers():
    units = {u.path: u for u in kc.list_units(encoder())}
    assert units["block"].in_graph and units["block"].shape == (None, 5, 6)
    assert units["block/ffn_in"].shape == (None, 5, 10) and not units["block/ffn_in"].in_graph
    assert units["block/attention/attention_output"].shape == (None, 5, 6)
    assert "block/ffn_in  Dense  (None, 5, 10)  (inside a layer)" in [str(u) for u in units.values()]


@pytest.mark.slow
def test_bert_ffn_neurons_and_heads_of_every_block_in_one_call():
    model = tiny_bert(seed=4, length=8, num_classes=2)
    rng = np.random.default_rng(0)
    ids = rng.integers(4, 60, size=(2, 8)).astype("int32")
    inputs = {"token_ids": ids, "segment_ids": np.zeros_like(ids),
              "padding_mask": np.ones_like(ids)}
    before = np.asarray(model(inputs))
    units = []
    for i in range(2):
        units += [f"transformer_layer_{i}/feedforward_intermediate_dense",
                  f"transformer_layer_{i}/self_attention_layer/attention_output:input",
                  f"transformer_layer_{i}/self_attention_layer/attention_output"]
    explainer = kc.Conductance(model, units + ["transformer_layer_1"],
                               start_layer="token_embedding", n_steps=32)
    attr = explainer(inputs)
    assert attr[units[0]].shape == (2, 8, 32) and attr[units[1]].shape == (2, 8, 2, 8)
    for i in range(2):
        heads, out = units[3 * i + 1], units[3 * i + 2]
        np.testing.assert_allclose(attr[heads].reshape(2, -1).sum(1),
                                   attr[out].reshape(2, -1).sum(1), rtol=1e-4, atol=1e-9)
    assert np.abs(attr.relative_delta(["transformer_layer_1"])).max() < 0.01
    traced = explainer.tracing_count
    explainer(inputs, target=0)
    assert explainer.tracing_count == traced
    np.testing.assert_array_equal(np.asarray(model(inputs)), before)


def test_taps_under_xla_and_in_the_dataset_path(rng):
    model = encoder(seed=2)
    x = rng.normal(size=(6, 5, 6)).astype("float32")
    units = ["block/ffn_in", "block/attention/attention_output:input"]
    plain = kc.conductance(model, x, units, n_steps=8, target=0, jit_compile=False)
    xla = kc.conductance(model, x, units, n_steps=8, target=0, jit_compile=True)
    for unit in units:
        np.testing.assert_allclose(xla[unit], plain[unit], rtol=1e-4, atol=1e-6)
    ds = tf.data.Dataset.from_tensor_slices(x).batch(4)
    result = kc.conductance_over_dataset(model, ds, units, target=0, n_steps=8, verbose=0)
    np.testing.assert_allclose(result.mean["block/ffn_in"],
                               plain.per_filter("block/ffn_in").mean(axis=0), rtol=1e-5,
                               atol=1e-7)
    assert result.is_cut == {unit: None for unit in units}


@pytest.mark.slow
def test_gpt2_next_token_logit_and_vit_blocks():
    keras_hub = pytest.importorskip("keras_hub", reason="keras-hub is not installed")
    keras.utils.set_random_seed(5)
    gpt2 = keras_hub.models.GPT2Backbone(vocabulary_size=40, num_layers=2, num_heads=2,
                                         hidden_dim=16, intermediate_dim=32,
                                         max_sequence_length=8)
    ids = np.random.default_rng(5).integers(1, 40, size=(2, 8)).astype("int32")
    inputs = {"token_ids": ids, "padding_mask": np.ones_like(ids)}
    # GPT-2's language-model head is the tied token embedding: the logit of
    # token 7 at the last position is <h_T, E[7]>.
    row = tf.constant(gpt2.get_layer("token_embedding").embeddings.numpy()[7])
    next_logit = lambda seq: tf.reduce_sum(seq[:, -1, :] * row, axis=-1)  # noqa: E731
    units = [f"transformer_layer_{i}/feedforward_intermediate_dense" for i in range(2)]
    units += [f"transformer_layer_{i}/self_attention/attention_output:input" for i in range(2)]
    before = np.asarray(gpt2(inputs))
    explainer = kc.Conductance(gpt2, units + ["transformer_layer_1"],
                               start_layer="token_embedding", n_steps=32)
    attr = explainer(inputs, target=next_logit)
    assert attr[units[0]].shape == (2, 8, 32) and attr[units[2]].shape == (2, 8, 2, 8)
    expected = np.asarray(next_logit(gpt2(inputs)))
    np.testing.assert_allclose(attr.output_at_input, expected, rtol=1e-5, atol=1e-6)
    assert np.abs(attr.relative_delta(["transformer_layer_1"])).max() < 0.01
    traced = explainer.tracing_count
    explainer({k: v[::-1] for k, v in inputs.items()}, target=next_logit)
    assert explainer.tracing_count == traced
    np.testing.assert_array_equal(np.asarray(gpt2(inputs)), before)

    vit = keras_hub.models.ViTBackbone(image_shape=(16, 16, 3), patch_size=8, num_layers=2,
                                       num_heads=2, hidden_dim=8, mlp_dim=16)
    pooled = keras.layers.Lambda(lambda t: t[:, 0], name="class_token")(vit.output)
    classifier = keras.Model(vit.input, keras.layers.Dense(3, name="head")(pooled))
    images = np.random.default_rng(6).uniform(-1, 1, (2, 16, 16, 3)).astype("float32")
    blocks = [f"vit_encoder/transformer_block_{i}" for i in (1, 2)]
    units = [f"{b}/mlp/dense_1" for b in blocks] + [f"{b}/mha/attention_output:input"
                                                    for b in blocks]
    before = np.asarray(classifier(images))
    explainer = kc.Conductance(classifier, units + [f"{blocks[1]}:output"], n_steps=16)
    attr = explainer(images)
    assert attr[units[0]].shape == (2, 5, 16) and attr[units[2]].shape == (2, 5, 2, 4)
    traced = explainer.tracing_count
    explainer(images[::-1], target=1)
    assert explainer.tracing_count == traced
    np.testing.assert_array_equal(np.asarray(classifier(images)), before)


def test_ablating_a_unit_inside_a_layer_equals_zeroing_its_weights(rng):
    model = encoder(seed=3)
    x = rng.normal(size=(2, 5, 6)).astype("float32")
    scores = kc.ablation_scores(model, x, "block/ffn_in", target=2, filters=[1, 4])
    dense = model.get_layer("block").ffn_in
    kernel, bias = dense.get_weights()
    full = np.asarray(model(x))[:, 2]
    for j, f in enumerate([1, 4]):
        k, b = kernel.copy(), bias.copy()
        k[:, f], b[f] = 0.0, 0.0  # pre-activation 0, and gelu(0) = 0
        dense.set_weights([k, b])
        edited = np.asarray(model(x))[:, 2]
        np.testing.assert_allclose(scores[:, j], full - edited, rtol=1e-4, atol=1e-6)
    dense.set_weights([kernel, bias])
    # Heads: ablating head h's values in front of the output projection is
    # zeroing h's slice of the value projection (softmax-weighted zeros).
    heads = kc.ablation_scores(model, x, "block/attention/attention_output:input", target=2,
                               channel_axis=-2)
    value = model.get_layer("block").attention._value_dense
    kernel, bias = value.get_weights()  # (dim, heads, head_dim), (heads, head_dim)
    for h in range(2):
        k, b = kernel.copy(), bias.copy()
        k[:, h], b[h] = 0.0, 0.0
        value.set_weights([k, b])
        np.testing.assert_allclose(heads[:, h], full - np.asarray(model(x))[:, 2],
                                   rtol=1e-4, atol=1e-6)
    value.set_weights([kernel, bias])
    # Ablating FFN neurons 0, 1, 2, ... until the class changes: the count
    # agrees with zeroing that many neurons' weights by hand.
    flip = kc.ablate_until_flip(model, x, "block/ffn_in", np.arange(10))
    assert flip.flipped.any()

    def predicted(i, n):
        k, b = kernel.copy(), bias.copy()
        k[:, :n], b[:n] = 0.0, 0.0
        dense.set_weights([k, b])
        label = int(np.asarray(model(x[i:i + 1])).argmax())
        dense.set_weights([kernel, bias])
        return label

    kernel, bias = dense.get_weights()
    for i in np.flatnonzero(flip.flipped):
        n = int(flip.n_ablated[i])
        assert predicted(i, n) == flip.new_class[i] != flip.original_class[i]
        assert predicted(i, n - 1) == flip.original_class[i]


def test_eq2_maps_of_a_unit_inside_a_layer(rng):
    model = encoder(seed=6)
    x = rng.normal(size=(2, 5, 6)).astype("float32")
    unit = "block/ffn_in"
    attr = kc.conductance(model, x, unit, target=0, n_steps=64, method="gauss_legendre")
    reverse = kc.neuron_conductance(model, x, unit, [0, 3, 7], target=0, n_steps=64,
                                    method="gauss_legendre", mode="reverse")
    forward = kc.neuron_conductance(model, x, unit, [0, 3, 7], target=0, n_steps=64,
                                    method="gauss_legendre", mode="forward")
    assert reverse.shape == (2, 3, 5, 6)
    np.testing.assert_allclose(forward, reverse, rtol=1e-4, atol=1e-6)
    # Summed over the input features, a filter's map is its conductance.
    np.testing.assert_allclose(reverse.sum(axis=(2, 3)), attr.per_filter(unit)[:, [0, 3, 7]],
                               rtol=1e-3, atol=1e-5)


def test_taps_refuse_nested_models_and_list_inputs(rng):
    inner_in = keras.Input((3,), name="i")
    inner = keras.Model(inner_in, keras.layers.Dense(5, name="d1")(inner_in), name="enc")
    outer_in = keras.Input((3,), name="x")
    outer = keras.Model(outer_in, keras.layers.Dense(2, name="o")(inner(outer_in)))
    x = rng.normal(size=(2, 3)).astype("float32")
    with pytest.raises(ValueError, match=r"Cannot tap 'enc:input': 'enc' is a model nested"):
        kc.conductance(outer, x, "enc:input")
    assert kc.conductance(outer, x, "enc", n_steps=2)["enc"].shape == (2, 5)
    paths = [u.path for u in kc.list_units(outer)]
    assert paths == ["x", "enc/d1", "enc", "o"]  # the nested model is not walked twice

    class Merge(keras.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.a = keras.layers.Dense(4, name="a")
            self.cat = keras.layers.Concatenate(name="cat")

        def call(self, t):
            return self.cat([self.a(t), t])

    inp = keras.Input((4,), name="x")
    merged = keras.Model(inp, keras.layers.Dense(2, name="o")(Merge(name="blk")(inp)))
    with pytest.raises(ValueError, match=r"Cannot tap 'blk/cat:input': the first input of "
                                         r"that sublayer is a list of 2 values"):
        kc.conductance(merged, rng.normal(size=(1, 4)).astype("float32"), "blk/cat:input")
    assert "call" not in vars(merged.get_layer("blk").cat)

    class Scores(keras.layers.Layer):
        """Attention that also returns its scores: a tuple, not one tensor."""

        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.mha = keras.layers.MultiHeadAttention(2, 2, name="mha")

        def call(self, t):
            out, _ = self.mha(t, t, return_attention_scores=True)
            return out

    inp = keras.Input((3, 4), name="x")
    pooled = keras.layers.Flatten()(Scores(name="att")(inp))
    scored = keras.Model(inp, keras.layers.Dense(2)(pooled))
    with pytest.raises(ValueError, match=r"Cannot tap 'att/mha': the output of that "
                                         r"sublayer is a tuple of 2 values.*':input'"):
        kc.conductance(scored, rng.normal(size=(1, 3, 4)).astype("float32"), "att/mha")
    assert "call" not in vars(scored.get_layer("att").mha)
