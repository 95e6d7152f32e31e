"""The command line, run as users run it, on real files."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_conductance as kc
from keras_conductance import cli
from models import small_convnet


def _main(capsys, *args):
    """The command in this process (no second TensorFlow import): its exit
    code, stdout and stderr, as a child process would give them."""
    code = cli.main([str(a) for a in args])
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, captured.out, captured.err)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    model = small_convnet(input_shape=(16, 16, 3))
    model.save(folder / "model.keras")
    x = np.random.default_rng(0).normal(size=(3, 16, 16, 3)).astype("float32")
    np.save(folder / "x.npy", x)
    return folder, model, x


@pytest.mark.slow
def test_report_on_npy_matches_the_library(saved, tmp_path, capsys):
    folder, model, x = saved
    proc = _main(capsys, "report", folder / "model.keras", "--layer", "conv1", "--layer", "conv2",
                "--inputs", folder / "x.npy", "--out", tmp_path / "r", "--json",
                "--tolerance", "0.01")
    assert proc.returncode == 0, proc.stderr[-2000:]
    info = json.loads(proc.stdout)
    # The same defaults as the library: the same answer for the same tolerance.
    expected = kc.conductance(model, x, ["conv1", "conv2"], tolerance=0.01)
    for i, ex in enumerate(info["examples"]):
        assert ex["name"] == f"x.npy[{i}]" and ex["target"] == expected.target[i]
        per_filter = expected.per_filter("conv2")[i]
        top = np.argsort(-per_filter)[:5]
        assert ex["layers"]["conv2"]["top_filters"] == top.tolist()
        np.testing.assert_allclose(ex["layers"]["conv2"]["top_conductance"], per_filter[top],
                                   rtol=1e-4, atol=1e-5)
        assert abs(ex["layers"]["conv2"]["delta"]) <= 0.01 * abs(expected.output_diff[i]) + 1e-6
    html = (tmp_path / "r" / "report.html").read_text()
    assert "x.npy[2]" in html and html.count("data:image/png;base64") == 2
    # The ablation check: each example's top-3 filters, their drop when ablated.
    drops = kc.ablation_scores(model, x, "conv2", target=expected.target,
                               filters=expected.top_filters("conv2", 3))
    for i, ex in enumerate(info["examples"]):
        check = ex["ablation_check"]
        assert [c["filter"] for c in check] == expected.top_filters("conv2", 3)[i].tolist()
        np.testing.assert_allclose([c["ablation_drop"] for c in check], drops[i], rtol=1e-4, atol=1e-6)
    assert "Ablation check at conv2" in html and "<th>Filter</th>" in html


@pytest.mark.slow
def test_report_on_real_photos(shared_data, saved, tmp_path, capsys):
    folder, _, _ = saved
    photos = shared_data / "imagenet" / "samples"
    proc = _main(capsys, "report", folder / "model.keras", "--layer", "conv2", "--inputs", photos,
                "--preprocess", "unit", "--out", tmp_path / "r")
    assert proc.returncode == 0, proc.stderr[-2000:]
    info = json.loads((tmp_path / "r" / "report.json").read_text())
    assert len(info["examples"]) == 100
    assert info["examples"][0]["name"] == "n01440764_tench.JPEG"
    assert (tmp_path / "r" / "conv2_top_filters.png").exists()
    assert (tmp_path / "r" / "conv2_pixel_maps.png").stat().st_size > 10000
    assert len(info["examples"][5]["ablation_check"]) == 3
    assert "report.html" in proc.stderr


def test_report_on_text_with_saved_vectorizer(tmp_path):
    keras.utils.set_random_seed(0)
    vectorize = keras.layers.TextVectorization(output_sequence_length=6, name="vectorize")
    vectorize.adapt(["this is not good", "this is not bad", "a good film", "a bad film"])
    text = keras.Input((1,), dtype="string")
    emb = keras.layers.Embedding(20, 4, name="embedding")(vectorize(text))
    conv = keras.layers.Conv1D(3, 2, activation="tanh", name="conv")(emb)
    out = keras.layers.Dense(2, name="logits")(keras.layers.GlobalMaxPooling1D(name="pool")(conv))
    model = keras.Model(text, out)
    model.save(tmp_path / "text.keras")
    (tmp_path / "s.txt").write_text("this is not good\n\nthis is not bad\n")
    args = ["report", str(tmp_path / "text.keras"), "--layer", "pool", "--inputs",
            str(tmp_path / "s.txt"), "--out", str(tmp_path / "r"), "--json"]
    assert cli.main(args) == 0
    info = json.loads((tmp_path / "r" / "report.json").read_text())
    assert [ex["name"] for ex in info["examples"]] == ["this is not good", "this is not bad"]
    expected = kc.conductance(model, np.array([["this is not good"], ["this is not bad"]], object),
                              "pool", start_layer="embedding", tolerance=0.02)
    np.testing.assert_allclose([ex["layers"]["pool"]["sum"] for ex in info["examples"]],
                               expected["pool"].sum(axis=1), rtol=1e-4, atol=1e-6)
    assert "ablation_check" in info["examples"][0]  # pool is a cut


def _error(capsys, *args):
    assert cli.main([str(a) for a in args]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in lines if line.startswith("keras-conductance: error: ")]
    # One error line, last, and no traceback (progress lines may precede it).
    assert len(errors) == 1 and lines[-1] == errors[0], lines
    assert not any("Traceback" in line for line in lines)
    return errors[0]


def test_bad_inputs_get_one_clear_line(saved, tmp_path, capsys):
    folder, _, x = saved
    model = folder / "model.keras"
    assert "no such model file" in _error(capsys, "report", tmp_path / "nope.keras", "--layer", "conv1",
                                          "--inputs", folder / "x.npy")
    (tmp_path / "fake.keras").write_text("not a model")
    said = _error(capsys, "report", tmp_path / "fake.keras", "--layer", "conv1", "--inputs",
                  folder / "x.npy")
    assert "is not a readable Keras model: it exists (11 bytes)" in said
    assert "File not found" not in said
    assert "is not a Keras model file" in _error(capsys, "report", folder / "x.npy", "--layer", "c",
                                                  "--inputs", folder / "x.npy")
    err = _error(capsys, "report", model, "--layer", "conv9", "--inputs", folder / "x.npy")
    assert "No such layer: 'conv9'" in err and "'conv1', 'conv2', 'flatten'" in err
    np.save(tmp_path / "bad.npy", x[:, :8])
    assert "have shape (3, 8, 16, 3); the model expects (batch, 16, 16, 3)" in _error(
        capsys, "report", model, "--layer", "conv1", "--inputs", tmp_path / "bad.npy")
    assert "no such input file" in _error(capsys, "report", model, "--layer", "conv1",
                                           "--inputs", tmp_path / "missing.npy")
    (tmp_path / "x.csv").write_text("1,2")
    assert "unknown input format .csv" in _error(capsys, "report", model, "--layer", "conv1",
                                                  "--inputs", tmp_path / "x.csv")


def test_unsafe_and_custom_models(tmp_path, capsys):
    inp = keras.Input((3,))
    out = keras.layers.Lambda(lambda t: t * 2.0, name="double")(keras.layers.Dense(2, name="d")(inp))
    keras.Model(inp, out).save(tmp_path / "lambda.keras")
    np.save(tmp_path / "x.npy", np.ones((2, 3), "float32"))
    err = _error(capsys, "report", tmp_path / "lambda.keras", "--layer", "d", "--inputs", tmp_path / "x.npy")
    assert "needs unsafe deserialization" in err and "--unsafe" in err
    assert cli.main(["report", str(tmp_path / "lambda.keras"), "--layer", "d", "--inputs",
                     str(tmp_path / "x.npy"), "--unsafe", "--out", str(tmp_path / "r"), "--json"]) == 0

    @keras.saving.register_keras_serializable(package="kc_test_only")
    class Scale(keras.layers.Layer):
        def call(self, t):
            return t * 3.0

    inp = keras.Input((3,))
    keras.Model(inp, Scale(name="scale")(keras.layers.Dense(2, name="d")(inp))).save(
        tmp_path / "custom.keras")
    keras.saving.get_custom_objects().pop("kc_test_only>Scale")
    err = _error(capsys, "report", tmp_path / "custom.keras", "--layer", "d", "--inputs", tmp_path / "x.npy")
    assert "needs custom objects" in err


def test_report_on_token_ids_draws_token_maps(tmp_path):
    from models import text_cnn

    model = text_cnn()
    model.save(tmp_path / "tokens.keras")
    tokens = np.random.default_rng(0).integers(1, 50, size=(2, 12)).astype("int32")
    np.save(tmp_path / "t.npy", tokens)
    args = ["report", str(tmp_path / "tokens.keras"), "--layer", "concat", "--inputs",
            str(tmp_path / "t.npy"), "--out", str(tmp_path / "r"), "--json", "--n-steps", "16"]
    assert cli.main(args) == 0  # the Embedding is found as the start layer
    assert (tmp_path / "r" / "concat_token_maps.png").stat().st_size > 5000
    info = json.loads((tmp_path / "r" / "report.json").read_text())
    expected = kc.conductance(model, tokens, "concat", start_layer="embedding", n_steps=16,
                              tolerance=0.02)
    np.testing.assert_allclose([ex["layers"]["concat"]["sum"] for ex in info["examples"]],
                               expected["concat"].sum(axis=1), rtol=1e-4, atol=1e-6)


def test_image_scaling_is_inferred_where_the_model_says():
    from keras_conductance.loading import infer_preprocessing

    inp = keras.Input((8, 8, 3))
    scaled = keras.Model(inp, keras.layers.Dense(2)(keras.layers.Rescaling(1 / 255, name="scale")(inp)))
    assert infer_preprocessing(scaled) == ("raw", "the model scales its input itself (scale)")
    plain = keras.Model(inp, keras.layers.Dense(2)(inp), name="mobilenet_1.00_224")
    assert infer_preprocessing(plain)[0] == "symmetric"
    assert infer_preprocessing(keras.Model(inp, keras.layers.Dense(2)(inp), name="resnet50"))[0] == "caffe"
    assert infer_preprocessing(keras.Model(inp, keras.layers.Dense(2)(inp), name="resnet50v2"))[0] == "symmetric"
    assert infer_preprocessing(keras.Model(inp, keras.layers.Dense(2)(inp), name="my_net")) == ("raw", "")


def test_baselines_in_pixel_terms():
    from keras_conductance.loading import PREPROCESSING, image_baselines

    pixels = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(image_baselines("black", pixels, "symmetric"), -1.0)
    np.testing.assert_allclose(image_baselines("zero", pixels, "symmetric"), 0.0)
    np.testing.assert_allclose(image_baselines("black", pixels, "caffe")[0, 0, 0],
                               [-103.939, -116.779, -123.68], rtol=1e-6)
    blur = image_baselines("blur", pixels, "unit")
    assert blur.shape == pixels.shape and blur.std() < PREPROCESSING["unit"](pixels).std() / 3
    # A blur keeps the mean colour of each photo (edges padded by repetition).
    np.testing.assert_allclose(blur.mean(axis=(1, 2)), (pixels / 255).mean(axis=(1, 2)), atol=0.02)


@pytest.mark.slow
def test_report_warns_about_degenerate_predictions_and_states_the_baseline(shared_data, tmp_path,
                                                                          capsys):
    keras.utils.set_random_seed(0)
    inp = keras.Input((16, 16, 3))
    h = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(inp)
    h = keras.layers.GlobalAveragePooling2D()(h)
    out = keras.layers.Dense(3, name="logits", bias_initializer=keras.initializers.Constant([0, 50, 0]))(h)
    keras.Model(inp, out).save(tmp_path / "stuck.keras")
    photos = tmp_path / "photos"
    photos.mkdir()
    for src in sorted((shared_data / "imagenet" / "samples").iterdir())[:4]:
        (photos / src.name).write_bytes(src.read_bytes())
    proc = _main(capsys, "report", tmp_path / "stuck.keras", "--layer", "conv", "--inputs", photos,
                "--n-steps", "8", "--out", tmp_path / "r")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Image scaling: raw (nothing in the model says how it scales pixels" in proc.stderr
    assert "Warning: all 4 inputs are predicted as class 1" in proc.stderr
    assert "--preprocess raw, unit, symmetric, caffe or torch" in proc.stderr
    html = (tmp_path / "r" / "report.html").read_text()
    assert "baseline: black image" in html


def test_an_out_folder_blocked_by_a_file_fails_before_the_work(saved, tmp_path, capsys):
    folder, _, _ = saved
    blocker = tmp_path / "report.txt"
    blocker.write_text("")
    code = cli.main(["report", str(folder / "model.keras"), "--layer", "conv1", "--inputs",
                     str(folder / "x.npy"), "--out", str(blocker / "r")])
    err = capsys.readouterr().err
    assert code == 2 and "--out cannot be written" in err and "Not a directory" in err
    assert "Loading" not in err  # it failed before loading or computing anything


@pytest.fixture(scope="module")
def imagenet_report(tmp_path_factory):
    """A CLI report of a 1000-class model on real photos with --labels."""
    from conftest import SHARED_DATA as shared_data

    if not shared_data.is_dir():
        pytest.skip(f"needs the staged real data at {shared_data}")
    folder = tmp_path_factory.mktemp("imagenet")
    keras.utils.set_random_seed(0)
    inp = keras.Input((32, 32, 3))
    h = keras.layers.Rescaling(1 / 255, name="scale")(inp)
    h = keras.layers.Conv2D(8, 3, activation="relu", name="conv1")(h)
    h = keras.layers.Conv2D(16, 3, activation="relu", name="conv2")(h)
    h = keras.layers.Conv2D(24, 3, activation="relu", name="conv3")(h)
    out = keras.layers.Dense(1000, name="logits")(keras.layers.GlobalAveragePooling2D()(h))
    keras.Model(inp, out, name="tiny_imagenet").save(folder / "tiny.keras")
    photos = folder / "photos"
    photos.mkdir()
    for src in sorted((shared_data / "imagenet" / "samples").iterdir())[:5]:
        (photos / src.name).write_bytes(src.read_bytes())
    index = shared_data / "imagenet" / "imagenet_class_index.json"
    # Three layers: the widest table; --n-steps 16 keeps the test short.
    code = cli.main(["report", str(folder / "tiny.keras"), "--layer", "conv1", "--layer", "conv2",
                     "--layer", "conv3", "--inputs", str(photos), "--labels", str(index),
                     "--n-steps", "16", "--out", str(folder / "r")])
    assert code == 0
    return folder / "r", json.loads(index.read_text())


@pytest.mark.slow
def test_report_names_classes_and_checks_ablation_to_the_baseline(imagenet_report):
    out, index = imagenet_report
    info = json.loads((out / "report.json").read_text())
    page = (out / "report.html").read_text(encoding="utf-8")
    for ex in info["examples"]:
        name = index[str(ex["target"])][1]
        assert ex["class_name"] == f"{name} ({ex['target']})" and ex["class_name"] in page
    assert info["examples"][0]["name"] == "n01440764_tench.JPEG"
    assert "Class names: from --labels." in page and "F(x) (score)" in page
    # conv3 -> average pooling -> dense is additive and the black image gives
    # conv3 zero activations here, so both ablations equal the conductance.
    for ex in info["examples"]:
        for check in ex["ablation_check"]:
            assert check["baseline_ablation_drop"] == pytest.approx(check["conductance"], rel=1e-3,
                                                                     abs=1e-6)
            assert not check["ablation_drop_disagrees"]
    assert "set to its baseline activation y(x\u2032) (score)" in page


@pytest.mark.slow
def test_cli_report_fits_1280_px(imagenet_report):
    from chromium import scroll_width

    out, _ = imagenet_report
    assert scroll_width(out / "report.html") <= 1280  # no sideways scrolling


def test_labels_errors_name_the_argument(saved, tmp_path, capsys):
    folder, _, _ = saved
    err = _error(capsys, "report", folder / "model.keras", "--layer", "conv1", "--inputs",
                 folder / "x.npy", "--labels", tmp_path / "nope.txt")
    assert "--labels: no such file:" in err and "nope.txt" in err
    (tmp_path / "two.txt").write_text("cat\ndog\n")
    err = _error(capsys, "report", folder / "model.keras", "--layer", "conv1", "--inputs",
                 folder / "x.npy", "--labels", tmp_path / "two.txt", "--n-steps", "8")
    assert "--labels has 2 class names; the explained output has 3 classes" in err


def test_report_help_shows_defaults(capsys):
    with pytest.raises(SystemExit) as done:
        cli.main(["report", "--help"])
    assert done.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for default in ("(default: 0.02)", "(default: 50)", "(default: 1024)", "(default: auto)",
                    "(default: conductance-report)", "(default: top)"):
        assert default in text, default


def test_tensorflow_logs_are_quiet_only_in_the_command():
    """The launcher silences TensorFlow's start-up lines before importing it;
    importing the library leaves a user's logging alone."""
    code = "import os, keras_conductance; print(os.environ.get('TF_CPP_MIN_LOG_LEVEL'))"
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env=env)
    assert proc.stdout.splitlines()[0] == "None"  # the library set nothing
    launcher = subprocess.run([sys.executable, "-c", "import sys, keras_conductance_cli as l; "
                               "l.main(['demo', '--epochs', '-1']); import os; "
                               "print(os.environ['TF_CPP_MIN_LOG_LEVEL'], 'tensorflow' in "
                               "sys.modules)"], capture_output=True, text=True, timeout=120,
                              env=env)
    assert launcher.stdout.split()[-2:] == ["3", "True"], launcher.stdout
    # (TensorFlow's absl lines from before its logging starts are printed at
    # any level; its C++ INFO lines, such as the CPU-feature notice, are not.)
    assert "cpu_feature_guard" not in launcher.stderr, launcher.stderr[-1000:]


def test_report_on_a_unit_inside_a_layer(tmp_path, capsys):
    keras.utils.set_random_seed(2)
    inp = keras.Input((5, 6), name="x")
    attended = keras.layers.MultiHeadAttention(2, 3, name="mha")(inp, inp)
    out = keras.layers.Dense(3, name="logits")(keras.layers.GlobalAveragePooling1D()(attended))
    model = keras.Model(inp, out)
    model.save(tmp_path / "attention.keras")
    x = np.random.default_rng(2).normal(size=(2, 5, 6)).astype("float32")
    np.save(tmp_path / "x.npy", x)
    unit = "mha/attention_output"  # the output projection, inside the MHA layer
    heads = "mha/attention_output:input"  # (B, T, heads, head_dim)
    # The heads come last: the ablation check runs on them, along axis -2. A
    # bare AXIS is the default for the units no UNIT=AXIS names, in any order.
    assert cli.main(["report", str(tmp_path / "attention.keras"), "--layer", unit, "--layer",
                     heads, "--channel-axis", f"{heads}=-2", "--channel-axis", "-1",
                     "--inputs", str(tmp_path / "x.npy"), "--out", str(tmp_path / "r"),
                     "--json", "--n-steps", "8"]) == 0
    info = json.loads((tmp_path / "r" / "report.json").read_text())
    expected = kc.conductance(model, x, [heads, unit], n_steps=8, tolerance=0.02)
    for i, ex in enumerate(info["examples"]):
        entry = ex["layers"][unit]
        assert entry["is_cut"] is None  # unknown, not "not a cut"
        np.testing.assert_allclose(entry["sum"], expected[unit][i].sum(), rtol=1e-4, atol=1e-6)
        per_head = expected.per_filter(heads, -2)[i]  # one score per head
        assert ex["layers"][heads]["top_filters"] == np.argsort(-per_head).tolist()
        np.testing.assert_allclose(ex["layers"][heads]["top_conductance"],
                                   np.sort(per_head)[::-1], rtol=1e-4, atol=1e-6)
        top = np.argsort(-per_head)  # both heads (a unit with two "filters")
        drops = kc.ablation_scores(model, x[i:i + 1], heads, target=int(expected.target[i]),
                                   filters=top, channel_axis=-2)[0]
        assert [c["filter"] for c in ex["ablation_check"]] == top.tolist()
        np.testing.assert_allclose([c["ablation_drop"] for c in ex["ablation_check"]], drops,
                                   rtol=1e-4, atol=1e-6)
    # "/" and ":" in a unit's name do not make folders.
    assert (tmp_path / "r" / "mha_attention_output_heatmap.png").stat().st_size > 5000
    assert (tmp_path / "r" / "mha_attention_output_input_heatmap.png").stat().st_size > 5000
    html = (tmp_path / "r" / "report.html").read_text()
    assert "completeness cannot be checked on them; --tolerance 0.02 holds them" in html
    assert "unknown (unit inside a layer)" in html
    for spec, message in [("x=-2", "--channel-axis names units that are not explained: ['x']"),
                          ("heads=two", "integer AXIS"),
                          (f"{heads}=5", "whose output has rank 4 (batch, 5, 2, 3): -3..-1 or "
                                         "1..3. Received: --channel-axis=5")]:
        assert message in _error(capsys, "report", tmp_path / "attention.keras", "--layer",
                                 heads, "--channel-axis", spec, "--inputs", tmp_path / "x.npy",
                                 "--out", tmp_path / "bad", "--json")


def test_every_bad_flag_gets_its_line_before_any_work(saved, tmp_path, capsys):
    folder, _, _ = saved
    code = cli.main(["report", str(folder / "model.keras"), "--layer", "conv1", "--inputs",
                     str(folder / "x.npy"), "--out", str(tmp_path / "r"), "--max-steps", "0",
                     "--n-steps", "2.5", "--tolerance", "-1"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert lines == [
        "keras-conductance: error: --n-steps must be an int in 1..100000. Received: "
        "--n-steps '2.5'.",
        "keras-conductance: error: --tolerance must be a number > 0. Received: --tolerance=-1.0.",
        "keras-conductance: error: --max-steps must be an int in 1..100000. Received: "
        "--max-steps=0.",
    ]
    assert not (tmp_path / "r").exists()  # nothing was loaded or written


def test_demo_flags_are_checked(tmp_path, capsys):
    assert cli.main(["demo", "--epochs", "-1", "--out", str(tmp_path / "d")]) == 2
    assert capsys.readouterr().err.strip() == (
        "keras-conductance: error: --epochs must be an int >= 1. Received: --epochs=-1.")
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert cli.main(["demo", "--out", str(blocker / "d")]) == 2
    err = capsys.readouterr().err
    assert "--out cannot be written: " in err and "Not a directory" in err
    assert "Traceback" not in err


def test_help_shows_the_vocabulary(capsys):
    with pytest.raises(SystemExit):
        cli.main(["report", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(an int in 1..100000; as `max_steps=` in Python) (default: 1024)" in text
    assert "(a number > 0; as `tolerance=` in Python) (default: 0.02)" in text


def test_a_failed_optional_step_is_said_on_the_console(tmp_path, capsys, monkeypatch):
    """ImageNet's class names cannot be fetched: the console says so, not only the HTML."""
    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 3))
    h = keras.layers.Conv2D(4, 3, activation="relu", name="conv1")(inp)
    out = keras.layers.Dense(1000, name="logits")(keras.layers.GlobalAveragePooling2D()(h))
    keras.Model(inp, out).save(tmp_path / "m.keras")
    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(1, 8, 8, 3)).astype("f"))

    def offline(*args, **kwargs):
        raise OSError("URL fetch failure: no network")

    monkeypatch.setattr(keras.utils, "get_file", offline)
    code = cli.main(["report", str(tmp_path / "m.keras"), "--layer", "conv1", "--inputs",
                     str(tmp_path / "x.npy"), "--out", str(tmp_path / "r"), "--n-steps", "8"])
    err = capsys.readouterr().err
    assert code == 0, err[-2000:]
    assert ("keras-conductance: warning: Class names: ImageNet's could not be loaded (URL fetch "
            "failure: no network); classes are shown by index. Pass --labels FILE") in err
