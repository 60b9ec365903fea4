"""ONNX export (arraynn.export): the graph passes onnx's full check and, run by
onnxruntime on raw inputs, gives predict_proba's probabilities and predict's labels, for
models trained on every backend; the command line's files and errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import arraynn
import arraynn.train
from arraynn import NNClassifier

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from arraynn.export import OPSET, ExportError, main, to_onnx  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

# The presets' shapes of network, small: the default's (ReLU, softmax, biases, standardized),
# the article's (sigmoid hidden and output, no biases, per-set statistics), and the others.
CONFIGS = {
    "default": dict(n_hidden_units=(12, 8), activation="relu", output="softmax", bias=True, init="he",
                    optimizer="adam", learning_rate=1e-2, batch_size=32, preprocessing="standardize"),
    "article": dict(n_hidden_units=10, l2=0.5, learning_rate=1e-3, n_batches=4, preprocessing="per-set"),
    "best-like": dict(n_hidden_units=(16, 16), activation="relu", output="softmax", bias=True, init="he",
                      optimizer="adam", batch_size=32, dropout=0.1, input_dropout=0.2,
                      preprocessing="standardize"),
    # raw pixels into sigmoids: saturated units, where a sigmoid computed another way than
    # arraynn's would differ in the normalised probabilities
    "article-raw": dict(n_hidden_units=50, l2=0.5, learning_rate=1e-3, n_batches=4),
    "tanh-unit": dict(n_hidden_units=6, activation="tanh", output="softmax", bias=True, preprocessing="unit"),
    "none": dict(n_hidden_units=5, activation="relu", output="sigmoid", bias=True, preprocessing="none"),
}


# Rows of 784 raw pixels for the article's raw-pixel network (its units saturate).
FEATURES = {"article-raw": 784}


def _pixels(n=240, features=36, classes=4, seed=0):
    """uint8 'images': a prototype per class plus noise, so a small network learns them."""
    rng = np.random.default_rng(seed)
    proto = rng.integers(0, 256, size=(classes, features))
    y = rng.integers(0, classes, size=n)
    X = np.clip(proto[y] + rng.normal(0, 40, size=(n, features)), 0, 255).astype(np.uint8)
    return X, y


def _session(model):
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_onnxruntime_gives_predict_proba_and_predict(backend, name):
    X, y = _pixels(400 if name in FEATURES else 240, FEATURES.get(name, 36))
    clf = NNClassifier(epochs=5, random_seed=1, backend=backend, **CONFIGS[name]).fit(X, y)
    model = to_onnx(clf)
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version == OPSET
    proba, label = _session(model).run(None, {"input": X.astype(np.float32)})
    want = backend.to_numpy(clf.predict_proba(backend.asarray(X)))
    assert proba.dtype == np.float32 and proba.shape == (len(X), 4)
    assert label.dtype == np.int64 and label.shape == (len(X),)
    if name in FEATURES:
        # Raw pixels make logits in the thousands, whose float32 sums round differently in
        # any two matrix-product implementations (arraynn's own NumPy and torch backends
        # differ by 3e-4 on the article's raw-pixel model): the graph must be as close to
        # the exact (float64) probabilities as arraynn's float32 ones are, within the factor
        # that two float32 summation orders give (on the whole test set: 1.2e-4 for the
        # graph, 4.3e-4 for NumPy).
        exact = _sigmoid_net_proba(X, [backend.to_numpy(W) for W in clf.coefs_])
        assert np.abs(proba - exact).max() <= 4 * max(np.abs(want - exact).max(), 1e-5)
    else:
        np.testing.assert_allclose(proba, want, atol=1e-5, rtol=0)
    np.testing.assert_array_equal(clf.classes_[label], clf.predict(X))


def _sigmoid_net_proba(X, weights):
    """The article's network (sigmoid units, no biases, normalised sigmoid outputs) in float64."""
    a = X.astype(np.float64)
    for W in weights:
        a = 1.0 / (1.0 + np.exp(-(a @ W.astype(np.float64))))
    return a / a.sum(axis=1, keepdims=True)


def test_a_convolutional_network_exports_to_the_same_probabilities(backend):
    # every window layer, asymmetric "same" padding (stride 2 on an even size), raw uint8
    # images in: the graph reshapes the preprocessed rows to images as the network does
    from arraynn import layers

    X, y = _pixels(160, 64)
    body = [layers.Conv2D(4, 3, stride=2, padding="same"), layers.ReLU(),
            layers.Conv2D(3, (2, 3), padding=1), layers.Tanh(), layers.MaxPool2D(2, stride=1),
            layers.AvgPool2D(2), layers.Conv2D(5, 1, bias=False), layers.GlobalAvgPool2D(),
            layers.Dropout(0.1), layers.Dense(6), layers.ReLU()]
    clf = NNClassifier(layers=body, input_shape=(1, 8, 8), epochs=3, random_seed=0, optimizer="adam",
                       learning_rate=1e-2, batch_size=32, preprocessing="standardize", backend=backend)
    clf.fit(X, y)
    model = to_onnx(clf)
    assert [n.op_type for n in model.graph.node][:4] == ["Sub", "Div", "Reshape", "Conv"]
    proba, label = _session(model).run(None, {"input": X.astype(np.float32)})
    want = backend.to_numpy(clf.predict_proba(backend.asarray(X)))
    np.testing.assert_allclose(proba, want, atol=1e-5, rtol=0)
    np.testing.assert_array_equal(clf.classes_[label], clf.predict(X))
    flat = NNClassifier(layers=[layers.Conv2D(2, 3), layers.MaxPool2D(2), layers.Flatten()], epochs=3,
                        random_seed=0, optimizer="adam", learning_rate=1e-2, batch_size=32,
                        preprocessing="unit").fit(X.reshape(-1, 1, 8, 8), y)
    proba, _ = _session(to_onnx(flat)).run(None, {"input": X.astype(np.float32)})
    np.testing.assert_allclose(proba, flat.predict_proba(X.reshape(-1, 1, 8, 8)), atol=1e-5, rtol=0)


def test_batch_sizes_1_and_1000_give_the_same_rows():
    X, y = _pixels(1000)
    clf = NNClassifier(epochs=3, random_seed=0, **CONFIGS["default"]).fit(X, y)
    sess = _session(to_onnx(clf))
    whole, labels = sess.run(None, {"input": X.astype(np.float32)})
    for i in (0, 1, 517, 999):
        one, lab = sess.run(None, {"input": X[i:i + 1].astype(np.float32)})
        np.testing.assert_allclose(one[0], whole[i], atol=1e-6, rtol=0)
        assert lab[0] == labels[i]


def test_metadata_names_the_classes_and_the_version():
    X, y = _pixels()
    names = ["a", "b", "c", "d"]
    clf = NNClassifier(epochs=2, random_seed=0, class_names=names, **CONFIGS["default"]).fit(X, y)
    meta = {p.key: p.value for p in to_onnx(clf).metadata_props}
    assert json.loads(meta["class_names"]) == names
    assert json.loads(meta["classes"]) == [0, 1, 2, 3]
    assert meta["arraynn_version"] == arraynn.__version__ and meta["preprocessing"] == "standardize"
    graph = to_onnx(clf).graph
    assert [i.name for i in graph.input] == ["input"]
    assert [o.name for o in graph.output] == ["probabilities", "label"]
    dim = graph.input[0].type.tensor_type.shape.dim
    assert dim[0].dim_param == "N" and dim[1].dim_value == X.shape[1]  # a dynamic batch dimension


def test_a_float64_model_and_string_labels_export():
    X, y = _pixels()
    labels = np.array(["cat", "dog", "emu", "fox"])[y]
    clf = NNClassifier(epochs=3, random_seed=0, dtype="float64", **CONFIGS["default"]).fit(X, labels)
    model = to_onnx(clf)
    proba, label = _session(model).run(None, {"input": X.astype(np.float32)})
    np.testing.assert_allclose(proba, clf.predict_proba(X), atol=1e-5)
    np.testing.assert_array_equal(clf.classes_[label], clf.predict(X))
    meta = {p.key: p.value for p in model.metadata_props}
    assert json.loads(meta["classes"]) == ["cat", "dog", "emu", "fox"]


def _unmappable(clf):
    """Put a layer the exporter has no mapping for into a fitted estimator's network."""
    from arraynn import layers

    class Swish(layers.Layer):
        kind = "swish"

    clf._state.net.layers[1] = Swish()


def test_an_unfitted_estimator_and_a_layer_without_a_mapping_are_errors(tmp_path):
    with pytest.raises(ExportError, match="not fitted"):
        to_onnx(NNClassifier())
    with pytest.raises(ExportError, match="fitted arraynn NNClassifier"):
        to_onnx(object())
    X, y = _pixels()
    clf = NNClassifier(epochs=1, random_seed=0, **CONFIGS["default"]).fit(X, y)
    _unmappable(clf)
    out = tmp_path / "m.onnx"
    with pytest.raises(ExportError, match=r"Swish\(\) \(layer 1\) has no ONNX mapping"):
        to_onnx(clf, out)
    assert not out.exists() and list(tmp_path.iterdir()) == []  # nothing half-written


def test_the_file_is_written_atomically_and_a_failed_write_keeps_the_old_one(tmp_path):
    X, y = _pixels()
    clf = NNClassifier(epochs=1, random_seed=0, **CONFIGS["default"]).fit(X, y)
    out = tmp_path / "m.onnx"
    to_onnx(clf, out)
    before = out.read_bytes()
    assert onnx.load(str(out)).graph.name == "arraynn_classifier"
    _unmappable(clf)
    with pytest.raises(ExportError):
        to_onnx(clf, out)
    assert out.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]
    with pytest.raises(ExportError, match="does not exist"):
        to_onnx(NNClassifier(epochs=1, **CONFIGS["default"]).fit(X, y), tmp_path / "no" / "m.onnx")
    with pytest.raises(ExportError, match="is a directory"):
        to_onnx(NNClassifier(epochs=1, **CONFIGS["default"]).fit(X, y), tmp_path)


def test_command_line_exports_a_run_and_a_model_file(tmp_path, capsys):
    from _synthetic import write_synthetic_fashion_mnist

    fast = ["--hidden", "32", "--val-size", "100", "--no-progress"]

    data = write_synthetic_fashion_mnist(tmp_path / "data", n_train=400, n_test=50)
    run = tmp_path / "run"
    assert arraynn.train.main(["--data-dir", str(data), "--out", str(run), "--epochs", "2", "--no-plots",
                               *fast]) == 0
    capsys.readouterr()
    assert main([str(run)]) == 0
    out = capsys.readouterr().out
    assert f"wrote {run / 'model.onnx'}" in out and "probabilities (N, 10)" in out
    test_images = arraynn.read_idx(data / "t10k-images-idx3-ubyte.gz").reshape(50, -1)
    clf = NNClassifier.load(run)
    proba, label = ort.InferenceSession(str(run / "model.onnx")).run(
        None, {"input": test_images.astype(np.float32)})  # raw pixels, as predict takes them
    np.testing.assert_allclose(proba, clf.predict_proba(test_images), atol=1e-5)
    np.testing.assert_array_equal(label, clf.predict(test_images))
    meta = {p.key: p.value for p in onnx.load(str(run / "model.onnx")).metadata_props}
    assert json.loads(meta["class_names"])[0] == "T-shirt/top"
    # a model file, to a chosen output
    clf.save(tmp_path / "mine.npz")
    assert main([str(tmp_path / "mine.npz"), "-o", str(tmp_path / "exported.onnx")]) == 0
    assert (tmp_path / "exported.onnx").is_file()
    assert main([str(tmp_path / "mine.npz")]) == 0 and (tmp_path / "mine.onnx").is_file()


@pytest.mark.parametrize("case", ["missing", "foreign-dir", "foreign-file", "unwritable"])
def test_command_line_errors_are_one_line(tmp_path, capsys, case):
    X, y = _pixels()
    NNClassifier(epochs=1, random_seed=0, **CONFIGS["default"]).fit(X, y).save(tmp_path / "m.npz")
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.npz").write_bytes(b"not a model")
    args = {"missing": [str(tmp_path / "nope")], "foreign-dir": [str(tmp_path / "empty")],
            "foreign-file": [str(tmp_path / "notes.npz")],
            "unwritable": [str(tmp_path / "m.npz"), "-o", str(tmp_path / "no" / "such" / "m.onnx")]}[case]
    assert main(args) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    assert {"missing": "no model at", "foreign-dir": "holds no model.npz", "foreign-file": "notes.npz",
            "unwritable": "does not exist"}[case] in err
    assert not list(tmp_path.rglob("*.onnx"))


def test_importing_arraynn_imports_no_onnx():
    code = "import sys, arraynn, arraynn.export; print(sorted(m for m in sys.modules if 'onnx' in m))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
