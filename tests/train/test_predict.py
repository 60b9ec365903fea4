"""``python -m arraynn.predict``: a trained run classifies pictures, .npy arrays and IDX
files, with class names and probabilities, as text, CSV or JSON, on any backend."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _synthetic import write_synthetic_fashion_mnist
from _train_cli import FAST, assert_one_line_error, cli_env

import arraynn
from arraynn import NNClassifier
from arraynn.data.fashion_mnist import FASHION_MNIST_CLASSES
from arraynn.predict import main


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return write_synthetic_fashion_mnist(tmp_path_factory.mktemp("data"), n_train=600, n_test=60)


@pytest.fixture(scope="module")
def run_dir(data_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "run"
    assert arraynn.train.main(["--data-dir", str(data_dir), "--out", str(out), "--epochs", "4",
                               "--no-plots", *FAST]) == 0
    return out


@pytest.fixture(scope="module")
def test_images(data_dir) -> np.ndarray:
    return arraynn.read_idx(data_dir / "t10k-images-idx3-ubyte.gz")


def _main(capsys, *args: str) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_npy_and_idx_files_print_class_names_and_probabilities(run_dir, data_dir, test_images, tmp_path,
                                                               capsys):
    clf = NNClassifier.load(run_dir)
    want = [FASHION_MNIST_CLASSES[i] for i in clf.predict(test_images)]
    proba = clf.predict_proba(test_images)
    np.save(tmp_path / "one.npy", test_images[0])                 # (28, 28)
    np.save(tmp_path / "flat.npy", test_images[:3].reshape(3, 784))
    code, out, err = _main(capsys, run_dir, tmp_path / "one.npy", tmp_path / "flat.npy",
                           data_dir / "t10k-images-idx3-ubyte.gz")
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 1 + 3 + len(test_images)
    assert lines[0].split()[0] == str(tmp_path / "one.npy") and want[0] in lines[0]
    assert f"{100 * proba[0].max():.2f}%" in lines[0]
    flat = tmp_path / "flat.npy"
    assert lines[1].startswith(f"{flat}[0]") and lines[3].startswith(f"{flat}[2]")
    assert all(want[i] in lines[4 + i] for i in range(len(test_images)))


def test_top_k_csv_and_json(run_dir, test_images, tmp_path, capsys):
    np.save(tmp_path / "x.npy", test_images[:5])
    clf = NNClassifier.load(run_dir)
    proba = clf.predict_proba(test_images[:5])
    code, out, _ = _main(capsys, run_dir, tmp_path / "x.npy", "--top-k", "3", "--json")
    assert code == 0
    records = json.loads(out)
    assert [r["index"] for r in records] == [0, 1, 2, 3, 4]
    for r, p in zip(records, proba):
        order = np.argsort(-p)[:3]
        assert [q["label"] for q in r["predictions"]] == order.tolist()
        assert [q["class"] for q in r["predictions"]] == [FASHION_MNIST_CLASSES[j] for j in order]
        np.testing.assert_allclose([q["probability"] for q in r["predictions"]], p[order], rtol=1e-6)
    code, out, _ = _main(capsys, run_dir, tmp_path / "x.npy", "--top-k", "2", "--csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert list(rows[0]) == ["file", "index", "rank", "label", "class", "probability"]
    assert len(rows) == 10 and [r["rank"] for r in rows[:2]] == ["1", "2"]
    assert rows[0]["class"] == FASHION_MNIST_CLASSES[int(np.argmax(proba[0]))]
    code, out, _ = _main(capsys, run_dir, tmp_path / "x.npy", "--top-k", "3")
    assert out.splitlines()[0].count("%") == 3


def test_any_backend_gives_the_same_classes(run_dir, test_images, tmp_path, capsys, backend):
    np.save(tmp_path / "x.npy", test_images[:8])
    _, ref, _ = _main(capsys, run_dir, tmp_path / "x.npy", "--csv")
    code, out, err = _main(capsys, run_dir, tmp_path / "x.npy", "--csv", "--backend", backend.name,
                           "--device", backend.device_name)
    assert code == 0, err
    strip = [[r["class"] for r in csv.DictReader(io.StringIO(t))] for t in (ref, out)]
    assert strip[0] == strip[1]


def test_pictures_are_read_with_pillow(run_dir, test_images, tmp_path, capsys):
    Image = pytest.importorskip("PIL.Image")
    clf = NNClassifier.load(run_dir)
    want = FASHION_MNIST_CLASSES[int(clf.predict(test_images[:1])[0])]
    Image.fromarray(test_images[0]).save(tmp_path / "item.png")
    big = Image.fromarray(255 - test_images[0]).resize((56, 56), Image.Resampling.NEAREST)
    big.convert("RGB").save(tmp_path / "photo.png")
    code, out, err = _main(capsys, run_dir, tmp_path / "item.png")
    assert code == 0 and out.split()[1:-1] == want.split() and err == ""
    code, out, err = _main(capsys, run_dir, tmp_path / "photo.png", "--invert")
    assert code == 0 and "resized from 56x56 to 28x28" in err and want in out
    code, out, err = _main(capsys, run_dir, tmp_path / "photo.png")
    assert code == 0 and "pass --invert" in err


def test_pictures_without_pillow_say_how_to_get_it(run_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "PIL", None)
    (tmp_path / "x.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    code, out, err = _main(capsys, run_dir, tmp_path / "x.png")
    assert code == 1
    assert_one_line_error(err, "needs Pillow", "pip install pillow", ".npy")


def test_errors_are_one_line(run_dir, tmp_path, capsys):
    np.save(tmp_path / "bad.npy", np.zeros((3, 10), np.uint8))
    (tmp_path / "junk.bin").write_bytes(b"not an idx file at all")
    for args, fragments in [
        ((run_dir, tmp_path / "missing.npy"), ("no file",)),
        ((run_dir, tmp_path / "bad.npy"), ("shape (3, 10)", "(28, 28)", "(n, 784)")),
        ((run_dir, tmp_path / "junk.bin"), ("not a picture", "IDX")),
        ((tmp_path, tmp_path / "bad.npy"), ("no model.npz in the directory",)),
    ]:
        code, out, err = _main(capsys, *args)
        assert code == 1 and out == ""
        assert_one_line_error(err, *fragments)
    code, out, err = _main(capsys, run_dir, tmp_path / "bad.npy", "--top-k", "0")
    assert code == 2
    assert_one_line_error(err, "--top-k", "positive integer")


def test_python_dash_m_arraynn_predict(run_dir, test_images, tmp_path):
    np.save(tmp_path / "x.npy", test_images[:2])
    proc = subprocess.run([sys.executable, "-m", "arraynn.predict", str(run_dir), str(tmp_path / "x.npy")],
                          capture_output=True, text=True, env=cli_env(), timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.splitlines()) == 2
    proc = subprocess.run([sys.executable, "-m", "arraynn.predict", "--help"], capture_output=True,
                          text=True, env=cli_env(), timeout=120)
    assert proc.returncode == 0 and "--top-k" in proc.stdout and "--invert" in proc.stdout
