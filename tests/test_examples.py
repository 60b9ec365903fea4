"""The scripts in examples/: they run, print what they promise and exit 0.

Fashion-MNIST is replaced by the tiny synthetic look-alike of tests/_synthetic.py, so
nothing touches the network.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _synthetic import write_synthetic_fashion_mnist

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    env.setdefault("OMP_NUM_THREADS", "1")
    env["MPLBACKEND"] = "Agg"
    env.pop("ARRAYNN_DATA", None)
    return env


def run_example(name: str, *args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(EXAMPLES / name), *args], capture_output=True, text=True,
                          env=_env(), cwd=cwd, timeout=timeout)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return write_synthetic_fashion_mnist(tmp_path_factory.mktemp("fashion"), n_train=300, n_test=100)


def test_xor_learns_xor_quickly(tmp_path):
    start = time.perf_counter()
    proc = run_example("xor.py", cwd=tmp_path)
    elapsed = time.perf_counter() - start
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = [ln for ln in proc.stdout.splitlines() if " XOR " in ln and "->" in ln]
    assert len(lines) == 4
    for ln, expected in zip(lines, ("0 XOR 0 -> 0", "0 XOR 1 -> 1", "1 XOR 0 -> 1", "1 XOR 1 -> 0")):
        assert ln.strip().startswith(expected), ln
    assert "XOR learned" in proc.stdout
    assert elapsed < 30  # < 5 s on an idle laptop; generous for busy CI machines


def test_xor_exits_non_zero_when_the_backend_is_missing(tmp_path):
    try:
        import cupy  # noqa: F401

        pytest.skip("CuPy is installed here")
    except ImportError:
        pass
    proc = run_example("xor.py", "--backend", "cupy", cwd=tmp_path)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr and "cupy" in proc.stderr


def test_article_script(data_dir, tmp_path):
    args = ["--data-dir", str(data_dir), "--epochs", "3", "--out", str(tmp_path / "figures")]
    have_mpl = __import__("importlib").util.find_spec("matplotlib") is not None
    proc = run_example("article.py", *args, *([] if have_mpl else ["--no-plots"]), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "XOR learned" in out
    assert "raw pixels" in out and "standardized" in out and "test accuracy" in out
    if have_mpl:
        for name in ("error.png", "predictions.png", "misclassified.png", "confusion_matrix.png"):
            assert (tmp_path / "figures" / name).read_bytes().startswith(b"\x89PNG"), name


def test_tsne_script(data_dir, tmp_path):
    pytest.importorskip("sklearn")
    pytest.importorskip("matplotlib")
    proc = run_example("tsne.py", "--data-dir", str(data_dir), "--n", "80", "--perplexity", "10",
                       "--out", str(tmp_path / "tsne.png"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "tsne.png").read_bytes().startswith(b"\x89PNG")


def test_article_script_without_the_data_says_to_pass_data_dir(tmp_path, monkeypatch, capsys):
    import importlib.util

    from arraynn.data.fashion_mnist import DatasetNotFoundError

    spec = importlib.util.spec_from_file_location("article_example", EXAMPLES / "article.py")
    article = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(article)

    def offline(*args, **kwargs):
        raise DatasetNotFoundError("could not download train-images-idx3-ubyte.gz into the cache; "
                                   "every mirror failed\nPut the files in a directory:\nhttps://example")

    monkeypatch.setattr(article, "load_fashion_mnist", offline)
    monkeypatch.chdir(tmp_path)
    assert article.main(["--no-plots"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: could not download") and "\n" not in err
    assert err.endswith("pass --data-dir DIR)") and "https://" not in err
    # given --data-dir, the hint does not ask for it again
    assert article.main(["--no-plots", "--data-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.endswith("copy the four Fashion-MNIST files into DIR)") and "pass --data-dir" not in err
