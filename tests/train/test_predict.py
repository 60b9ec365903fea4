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
    assert list(rows[0]) == ["file", "index", "rank", "label", "class", "probability", "note", "error"]
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
    for name, fragments in [
        ("missing.npy", ("no file",)),
        ("bad.npy", ("shape (3, 10)", "(28, 28)", "(n, 784)")),
        ("junk.bin", ("not a picture", "IDX")),
    ]:
        code, out, err = _main(capsys, run_dir, tmp_path / name)
        assert code == 1
        assert out.startswith(f"{tmp_path / name}  error: ") and len(out.splitlines()) == 1
        assert all(f in out for f in fragments)
        assert_one_line_error(err, "1 of 1 file could not be read", *fragments)
    code, out, err = _main(capsys, tmp_path, tmp_path / "bad.npy")
    assert code == 1 and out == ""
    assert_one_line_error(err, "no model.npz in the directory")
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


def test_an_unreadable_file_gets_its_row_and_the_others_are_still_classified(run_dir, test_images,
                                                                             tmp_path, capsys):
    clf = NNClassifier.load(run_dir)
    want = [FASHION_MNIST_CLASSES[i] for i in clf.predict(test_images[:3])]
    np.save(tmp_path / "good.npy", test_images[:2])
    np.save(tmp_path / "one.npy", test_images[2])
    (tmp_path / "junk.bin").write_bytes(b"not an idx file at all")
    files = [tmp_path / "good.npy", tmp_path / "missing.npy", tmp_path / "junk.bin", tmp_path / "one.npy"]
    code, out, err = _main(capsys, run_dir, *files)
    assert code == 1
    lines = out.splitlines()
    assert len(lines) == 5
    assert lines[0].startswith(f"{files[0]}[0]") and want[0] in lines[0] and "%" in lines[0]
    assert lines[1].startswith(f"{files[0]}[1]") and want[1] in lines[1]
    assert lines[2].split()[:3] == [str(files[1]), "error:", "no"] and "%" not in lines[2]
    assert lines[3].split()[:2] == [str(files[2]), "error:"] and "not a picture" in lines[3]
    assert lines[4].startswith(str(files[3])) and want[2] in lines[4]
    assert_one_line_error(err, "2 of 4 files could not be read", "no file", "not a picture")

    code, out, _ = _main(capsys, run_dir, *files, "--json")
    assert code == 1
    records = json.loads(out)
    assert [(r["index"], r["error"] is None) for r in records] == [
        (0, True), (1, True), (None, False), (None, False), (0, True)]
    assert records[2]["predictions"] == [] and "no file" in records[2]["error"]
    assert records[4]["predictions"][0]["class"] == want[2]

    code, out, _ = _main(capsys, run_dir, *files, "--csv")
    assert code == 1
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["file"] for r in rows] == [str(f) for f in (files[0], files[0], files[1], files[2], files[3])]
    assert rows[2]["class"] == "" and "no file" in rows[2]["error"]
    assert rows[0]["error"] == "" and rows[0]["class"] == want[0]


def test_columns_are_aligned(run_dir, test_images, tmp_path, capsys):
    clf = NNClassifier.load(run_dir)
    predicted = clf.predict(test_images)
    # one image of each predicted class: class names of different lengths
    first = sorted({int(c): i for i, c in reversed(list(enumerate(predicted)))}.values())
    names = [FASHION_MNIST_CLASSES[predicted[i]] for i in first]
    assert len({len(n) for n in names}) > 1
    np.save(tmp_path / "x.npy", test_images[first])
    np.save(tmp_path / "a-longer-name.npy", test_images[first[0]])
    code, out, err = _main(capsys, run_dir, tmp_path / "x.npy", tmp_path / "a-longer-name.npy")
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == len(first) + 1
    prefixes = [f"{tmp_path / 'x.npy'}[{i}]" for i in range(len(first))]
    prefixes.append(str(tmp_path / "a-longer-name.npy"))
    starts = {ln.index(name, len(prefix)) for ln, name, prefix in zip(lines, [*names, names[0]], prefixes)}
    assert len(starts) == 1  # the class column starts at one place
    assert len({ln.index("%") for ln in lines}) == 1  # and the probability column ends at one
    code, out, _ = _main(capsys, run_dir, tmp_path / "x.npy", "--top-k", "3")
    percents = [[i for i, ch in enumerate(ln) if ch == "%"] for ln in out.splitlines()]
    assert len({tuple(p) for p in percents}) == 1 and len(percents[0]) == 3


def test_a_blank_image_is_flagged_and_still_predicted(run_dir, test_images, tmp_path, capsys):
    images = np.stack([np.zeros((28, 28), np.uint8), np.full((28, 28), 255, np.uint8), test_images[0]])
    np.save(tmp_path / "x.npy", images)
    code, out, err = _main(capsys, run_dir, tmp_path / "x.npy")
    assert code == 0, err
    lines = out.splitlines()
    assert "%" in lines[0] and "note: blank image: every pixel is 0" in lines[0]
    assert "%" in lines[1] and "note: constant image: every pixel is 255" in lines[1]
    assert "nothing to classify" in lines[1]
    assert "note" not in lines[2]
    code, out, _ = _main(capsys, run_dir, tmp_path / "x.npy", "--json")
    records = json.loads(out)
    assert "blank image" in records[0]["note"] and records[2]["note"] is None
    assert len(records[0]["predictions"]) == 1
    code, out, _ = _main(capsys, run_dir, tmp_path / "x.npy", "--csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert "constant image" in rows[1]["note"] and rows[2]["note"] == "" and rows[1]["class"]


def test_a_closed_pipe_ends_quietly(run_dir, test_images, tmp_path, capsys, monkeypatch):
    np.save(tmp_path / "x.npy", test_images[:5])

    class ClosedPipe:
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    assert main([str(run_dir), str(tmp_path / "x.npy")]) == 141
    assert capsys.readouterr().err == ""


def test_python_dash_m_arraynn_predict_into_a_closed_pipe(run_dir, test_images, tmp_path):
    np.save(tmp_path / "x.npy", test_images)
    proc = subprocess.Popen([sys.executable, "-m", "arraynn.predict", str(run_dir), str(tmp_path / "x.npy")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cli_env())
    proc.stdout.close()  # the reader is gone before the first row
    try:
        err = proc.stderr.read().decode()
        code = proc.wait(timeout=120)
    finally:
        proc.stderr.close()
    assert code == 141
    assert err == ""


def test_version(capsys):
    code, out, err = _main(capsys, "--version")
    assert code == 0 and err == ""
    assert out == f"arraynn {arraynn.__version__}\n"
    code, out, _ = _main(capsys, "--help")
    assert code == 0 and "--version" in out and "note" in out
