"""Fashion-MNIST: data-home resolution, validation, download, verification.

Downloads are tested against a scripted HTTP server bound to 127.0.0.1, with
small synthetic files and a substitute checksum table: nothing touches the
network. The download mechanics themselves (retries, truncation, checksums) are
tested in test_download.py; here, how the data set uses them.
"""

from __future__ import annotations

import gzip
import hashlib
import socket
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from arraynn.data import download as dl
from arraynn.data.download import DownloadError
from arraynn.data.fashion_mnist import (
    FASHION_MNIST_CHECKSUMS,
    FASHION_MNIST_CLASSES,
    FASHION_MNIST_FILES,
    FASHION_MNIST_MIRRORS,
    DatasetError,
    DatasetNotFoundError,
    FashionMNISTDownloadError,
    fashion_mnist_source,
    get_data_home,
    load_fashion_mnist,
)
from arraynn.data.idx import IDXError, write_idx

try:
    from _httpserver import Reply, ScriptedServer, bypass_proxies, scripted_server
except ImportError:  # run with --import-mode=importlib
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _httpserver import Reply, ScriptedServer, bypass_proxies, scripted_server

NAMES = list(FASHION_MNIST_FILES.values())
TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS = NAMES
TIMEOUT = 5.0


# --------------------------------------------------------------------------
# helpers and fixtures


def make_arrays(n_train: int = 20, n_test: int = 10, seed: int = 0):
    rng = np.random.default_rng(seed)
    return {
        TRAIN_IMAGES: rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        TRAIN_LABELS: (np.arange(n_train) % 10).astype(np.uint8),
        TEST_IMAGES: rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        TEST_LABELS: (np.arange(n_test)[::-1] % 10).astype(np.uint8),
    }


def write_dataset(directory: Path, arrays=None) -> dict[str, np.ndarray]:
    arrays = make_arrays() if arrays is None else arrays
    directory.mkdir(parents=True, exist_ok=True)
    for name, a in arrays.items():
        write_idx(directory / name, a)
    return arrays


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> dict[str, bytes]:
    """The bytes of a synthetic 'published' data set, served by the mirrors."""
    d = tmp_path_factory.mktemp("published")
    write_dataset(d)
    return {n: (d / n).read_bytes() for n in NAMES}


@pytest.fixture(scope="module")
def table(published) -> dict[str, tuple[int, str]]:
    """The substitute (size, MD5) table of the synthetic published files."""
    return {n: (len(b), hashlib.md5(b).hexdigest()) for n, b in published.items()}


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path: Path) -> None:
    """No real cache, no data env var, no proxy between us and 127.0.0.1."""
    monkeypatch.delenv("ARRAYNN_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("USERPROFILE", str(tmp_path / "home"))
    bypass_proxies(monkeypatch)
    sleeps: list[float] = []
    monkeypatch.setattr(dl, "_sleep", sleeps.append)


@pytest.fixture
def server():
    with scripted_server() as s:
        yield s


def serve(server: ScriptedServer, prefix: str, files: dict[str, bytes]) -> str:
    for name, body in files.items():
        server.add(f"/{prefix}/{name}", Reply(200, body))
    return server.url(prefix)


def load(home, table, mirrors, **kw):
    kw.setdefault("retries", 1)
    kw.setdefault("backoff", 0.0)
    kw.setdefault("timeout", TIMEOUT)
    return load_fashion_mnist(home, checksums=table, mirrors=mirrors, return_info=True, **kw)


def leftovers(directory: Path) -> list[str]:
    """Temporary or partial files left in ``directory``."""
    if not directory.exists():
        return []
    return sorted(p.name for p in directory.iterdir() if p.name not in NAMES)


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/fm/"


# --------------------------------------------------------------------------
# constants


def test_constants() -> None:
    assert FASHION_MNIST_CLASSES == (
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    )
    assert NAMES == [
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ]
    assert FASHION_MNIST_MIRRORS[0].startswith("http://fashion-mnist.s3-website")
    assert "storage.googleapis.com/tensorflow/tf-keras-datasets/" in FASHION_MNIST_MIRRORS[1]
    assert FASHION_MNIST_CHECKSUMS["train-labels-idx1-ubyte.gz"] == (
        29515,
        "25c81989df183df01b3e8a0aad5dffbe",
    )
    assert FASHION_MNIST_CHECKSUMS["t10k-labels-idx1-ubyte.gz"] == (5148, "bb300cfdad3c16e7a12a480ee83cd310")


# --------------------------------------------------------------------------
# where the data lives


def test_data_home_order(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert get_data_home() == tmp_path / "home" / ".cache" / "arraynn"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    assert get_data_home() == tmp_path / "home" / ".cache" / "arraynn"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert get_data_home() == tmp_path / "xdg" / "arraynn"
    monkeypatch.setenv("ARRAYNN_DATA", str(tmp_path / "env"))
    assert get_data_home() == tmp_path / "env"
    assert get_data_home(tmp_path / "arg") == tmp_path / "arg"
    assert get_data_home(str(tmp_path / "arg")) == tmp_path / "arg"
    monkeypatch.setenv("ARRAYNN_DATA", "")
    assert get_data_home() == tmp_path / "xdg" / "arraynn"


def test_data_home_expands_user(tmp_path: Path) -> None:
    assert get_data_home("~/data") == tmp_path / "home" / "data"


def test_source_reports_user_and_cache(monkeypatch, tmp_path: Path) -> None:
    info = fashion_mnist_source()
    cache_dir = tmp_path / "xdg-cache" / "arraynn" / "fashion-mnist"
    assert info["source"] == "cache"
    assert info["directory"] == str(cache_dir)
    assert info["missing"] == NAMES
    assert info["files"]["train_images"] == str(cache_dir / TRAIN_IMAGES)

    write_dataset(tmp_path / "mine")
    info = fashion_mnist_source(tmp_path / "mine")
    assert info == {
        "directory": str(tmp_path / "mine"),
        "source": "user",
        "files": {k: str(tmp_path / "mine" / n) for k, n in FASHION_MNIST_FILES.items()},
        "missing": [],
    }
    monkeypatch.setenv("ARRAYNN_DATA", str(tmp_path / "mine"))
    assert fashion_mnist_source()["source"] == "user"


# --------------------------------------------------------------------------
# user-supplied directories


def check_arrays(result, arrays) -> None:
    X_train, y_train, X_test, y_test = result[:4]
    assert X_train.dtype == np.uint8 and X_train.shape == (20, 784)
    assert X_test.dtype == np.uint8 and X_test.shape == (10, 784)
    assert y_train.dtype == np.int64 and y_test.dtype == np.int64
    np.testing.assert_array_equal(X_train, arrays[TRAIN_IMAGES].reshape(20, 784))
    np.testing.assert_array_equal(y_train, arrays[TRAIN_LABELS])
    np.testing.assert_array_equal(X_test, arrays[TEST_IMAGES].reshape(10, 784))
    np.testing.assert_array_equal(y_test, arrays[TEST_LABELS])


def test_user_directory(tmp_path: Path) -> None:
    arrays = write_dataset(tmp_path / "mine")
    result = load_fashion_mnist(tmp_path / "mine", download=False)
    assert len(result) == 4
    check_arrays(result, arrays)
    *_, info = load_fashion_mnist(tmp_path / "mine", download=False, return_info=True)
    assert info["source"] == "user"
    assert info["directory"] == str(tmp_path / "mine")
    assert info["downloaded"] == {}


def test_user_directory_subfolder_and_env(monkeypatch, tmp_path: Path) -> None:
    arrays = write_dataset(tmp_path / "data" / "fashion-mnist")
    monkeypatch.setenv("ARRAYNN_DATA", str(tmp_path / "data"))
    *result, info = load_fashion_mnist(download=False, return_info=True)
    check_arrays(result, arrays)
    assert info["source"] == "user"
    assert info["directory"] == str(tmp_path / "data" / "fashion-mnist")


def test_user_directory_not_checked_against_published_checksums(tmp_path: Path) -> None:
    # Synthetic files never match the published MD5s; a user directory is
    # validated structurally only, so they load.
    arrays = write_dataset(tmp_path / "mine")
    check_arrays(load_fashion_mnist(tmp_path / "mine", download=False), arrays)


def test_user_directory_uncompressed_files(tmp_path: Path) -> None:
    arrays = make_arrays()
    d = tmp_path / "raw"
    d.mkdir()
    for name, a in arrays.items():
        write_idx(d / name.removesuffix(".gz"), a)
    *result, info = load_fashion_mnist(d, download=False, return_info=True)
    check_arrays(result, arrays)
    assert info["files"]["train_labels"] == str(d / "train-labels-idx1-ubyte")


def test_argument_beats_env(monkeypatch, tmp_path: Path) -> None:
    arrays = write_dataset(tmp_path / "arg")
    write_dataset(tmp_path / "env", make_arrays(seed=1))
    monkeypatch.setenv("ARRAYNN_DATA", str(tmp_path / "env"))
    check_arrays(load_fashion_mnist(tmp_path / "arg", download=False), arrays)


def test_user_directory_missing_files_download_false(tmp_path: Path) -> None:
    d = tmp_path / "mine"
    write_dataset(d)
    (d / TEST_LABELS).unlink()
    (d / TRAIN_IMAGES).unlink()
    with pytest.raises(DatasetNotFoundError) as info:
        load_fashion_mnist(d, download=False)
    msg = str(info.value)
    assert str(d) in msg
    assert "user-supplied" in msg
    for name in (TEST_LABELS, TRAIN_IMAGES):
        assert name in msg
        for base in FASHION_MNIST_MIRRORS:
            assert base + name in msg
    assert TRAIN_LABELS not in msg
    assert isinstance(info.value, FileNotFoundError)


def test_empty_cache_download_false_lists_everything(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError) as info:
        load_fashion_mnist(download=False)
    msg = str(info.value)
    assert str(tmp_path / "xdg-cache" / "arraynn" / "fashion-mnist") in msg
    assert "download=True" in msg
    assert "ARRAYNN_DATA" in msg
    for name in NAMES:
        for base in FASHION_MNIST_MIRRORS:
            assert base + name in msg
    assert not (tmp_path / "xdg-cache").exists()  # nothing created


# --------------------------------------------------------------------------
# structural validation


def bad_dataset(tmp_path: Path, name: str, array: np.ndarray) -> Path:
    arrays = make_arrays()
    arrays[name] = array
    d = tmp_path / "bad"
    write_dataset(d, arrays)
    return d / name


def expect_dataset_error(path: Path, *fragments: str) -> None:
    with pytest.raises(DatasetError) as info:
        load_fashion_mnist(path.parent, download=False)
    msg = str(info.value)
    assert str(path) in msg, msg
    for frag in fragments:
        assert frag in msg, msg


def test_label_out_of_range(tmp_path: Path) -> None:
    labels = (np.arange(10) % 10).astype(np.uint8)
    labels[[3, 7]] = [10, 255]
    path = bad_dataset(tmp_path, TEST_LABELS, labels)
    expect_dataset_error(path, "2 labels outside 0-9", "255")


def test_count_mismatch(tmp_path: Path) -> None:
    path = bad_dataset(tmp_path, TRAIN_LABELS, np.zeros(19, dtype=np.uint8))
    expect_dataset_error(path, "20 images", "19 labels", str(path.parent / TRAIN_IMAGES))


def test_images_not_28x28(tmp_path: Path) -> None:
    path = bad_dataset(tmp_path, TRAIN_IMAGES, np.zeros((20, 28, 27), dtype=np.uint8))
    expect_dataset_error(path, "(20, 28, 27)", "(n, 28, 28)")


def test_images_flat(tmp_path: Path) -> None:
    path = bad_dataset(tmp_path, TEST_IMAGES, np.zeros((10, 784), dtype=np.uint8))
    expect_dataset_error(path, "(10, 784)", "(n, 28, 28)")


def test_images_wrong_dtype(tmp_path: Path) -> None:
    path = bad_dataset(tmp_path, TRAIN_IMAGES, np.zeros((20, 28, 28), dtype=np.float32))
    expect_dataset_error(path, "float32", "must be uint8")


def test_labels_wrong_dtype_or_shape(tmp_path: Path) -> None:
    path = bad_dataset(tmp_path, TRAIN_LABELS, np.zeros(20, dtype=np.int32))
    expect_dataset_error(path, "int32", "1-D uint8")
    path = bad_dataset(tmp_path, TRAIN_LABELS, np.zeros((20, 1), dtype=np.uint8))
    expect_dataset_error(path, "2-D", "1-D uint8")


def test_corrupt_idx_in_user_directory(tmp_path: Path) -> None:
    d = tmp_path / "mine"
    write_dataset(d)
    data = (d / TEST_IMAGES).read_bytes()
    (d / TEST_IMAGES).write_bytes(data[: len(data) // 2])
    with pytest.raises(IDXError) as info:
        load_fashion_mnist(d, download=False)
    assert str(d / TEST_IMAGES) in str(info.value)
    assert "truncated gzip stream" in str(info.value)


# --------------------------------------------------------------------------
# downloads


def test_download_into_cache_with_user_agent(server, published, table, tmp_path) -> None:
    mirror = serve(server, "fm", published)
    *result, info = load(None, table, [mirror])
    cache_dir = tmp_path / "xdg-cache" / "arraynn" / "fashion-mnist"
    assert info["source"] == "download"
    assert info["directory"] == str(cache_dir)
    assert info["downloaded"] == {n: mirror + n for n in NAMES}
    for name in NAMES:
        assert (cache_dir / name).read_bytes() == published[name]
    assert leftovers(cache_dir) == []
    assert len(server.requests) == 4
    for req in server.requests:
        assert req.headers["User-Agent"].startswith("arraynn/")
    assert result[0].shape == (20, 784) and result[1].dtype == np.int64

    # The second call uses the verified cache: no request at all.
    *_, info = load(None, table, [mirror])
    assert info["source"] == "cache"
    assert len(server.requests) == 4


def test_mirror_fallback(server, published, table, tmp_path) -> None:
    for name in NAMES:
        server.add(f"/one/{name}", Reply(500, b"oops"))
    second = serve(server, "two", published)
    home = tmp_path / "home-dir"
    home.mkdir()
    *_, info = load(home, table, [server.url("one"), second], retries=2)
    assert info["downloaded"] == {n: second + n for n in NAMES}
    for name in NAMES:
        assert server.hits(f"/one/{name}") == 3  # 1 attempt + 2 retries
        assert server.hits(f"/two/{name}") == 1
    assert leftovers(home / "fashion-mnist") == []


def test_offline_error_lists_names_directory_urls(table, tmp_path) -> None:
    mirror = closed_port_url()
    with pytest.raises(DownloadError) as info:
        load(None, table, [mirror], retries=1)
    assert isinstance(info.value, DatasetNotFoundError)
    assert isinstance(info.value, FashionMNISTDownloadError)
    msg = str(info.value)
    d = tmp_path / "xdg-cache" / "arraynn" / "fashion-mnist"
    assert str(d) in msg
    assert "cannot connect" in msg
    assert "2 attempts" in msg
    # The instructions list every file still missing, with its URLs.
    for name in NAMES:
        assert mirror + name in msg
    assert "ARRAYNN_DATA" in msg
    assert leftovers(d) == []


def test_checksum_mismatch_names_the_file_and_the_files_left(server, published, table, tmp_path) -> None:
    corrupt = bytearray(published[TRAIN_LABELS])
    corrupt[-10] ^= 0x55  # same size, different MD5
    mirror = serve(server, "fm", {**published, TRAIN_LABELS: bytes(corrupt)})
    (tmp_path / "h").mkdir()
    with pytest.raises(FashionMNISTDownloadError) as info:
        load(tmp_path / "h", table, [mirror], retries=2)
    msg = str(info.value)
    d = tmp_path / "h" / "fashion-mnist"
    assert msg.startswith(f"could not download {TRAIN_LABELS} into {d}; every mirror failed:\n")
    assert "checksum mismatch" in msg and table[TRAIN_LABELS][1] in msg
    # The instructions list the files still missing, not the one already there.
    assert f"Put the files {TRAIN_LABELS}, {TEST_IMAGES}, {TEST_LABELS} into {d}" in msg
    assert mirror + TRAIN_IMAGES not in msg
    assert server.hits(f"/fm/{TRAIN_LABELS}") == 1
    # The file downloaded (and verified) before the failure stays, with its directory.
    assert sorted(p.name for p in d.iterdir()) == [TRAIN_IMAGES]


def test_download_directory_cannot_be_created(table, tmp_path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "fashion-mnist").write_bytes(b"a file where the download directory would go")
    with pytest.raises(DatasetNotFoundError) as info:
        load(home, table, ["http://127.0.0.1:9/"])
    assert not isinstance(info.value, DownloadError)
    msg = str(info.value)
    assert f"cannot create the directory {home / 'fashion-mnist'} to download {TRAIN_IMAGES}" in msg
    assert "data_home=" in msg


def test_user_data_home_that_does_not_exist_is_refused_before_any_request(
        server, published, table, monkeypatch, tmp_path) -> None:
    mirror = serve(server, "fm", published)
    typo = tmp_path / "no" / "such" / "dir"
    for download in (True, False):
        with pytest.raises(DatasetNotFoundError) as info:
            load(typo, table, [mirror], download=download)
        assert not isinstance(info.value, DownloadError)
        msg = str(info.value)
        assert msg.startswith(f"data_home {typo} does not exist; create it to download Fashion-MNIST")
        assert "the directory that holds the four files" in msg
    monkeypatch.setenv("ARRAYNN_DATA", str(typo))
    with pytest.raises(DatasetNotFoundError, match="ARRAYNN_DATA is .*, which does not exist") as info:
        load(None, table, [mirror])
    assert str(typo) in str(info.value) and "set ARRAYNN_DATA to the directory" in str(info.value)
    assert server.requests == []
    assert not (tmp_path / "no").exists()
    assert not (tmp_path / "xdg-cache").exists()


def test_user_data_home_that_is_a_file_is_refused(table, monkeypatch, tmp_path) -> None:
    home = tmp_path / "a-file"
    home.write_bytes(b"not a directory")
    with pytest.raises(DatasetNotFoundError, match="is a file, not a directory") as info:
        load(home, table, ["http://127.0.0.1:9/"])
    assert str(home) in str(info.value) and "data_home" in str(info.value)
    monkeypatch.setenv("ARRAYNN_DATA", str(home))
    with pytest.raises(DatasetNotFoundError, match="ARRAYNN_DATA is .*, which is a file"):
        load(None, table, ["http://127.0.0.1:9/"])


def test_a_failed_download_leaves_no_empty_directories(server, table, tmp_path) -> None:
    mirror = server.url("gone")  # every file: 404
    home = tmp_path / "home-dir"
    home.mkdir()
    with pytest.raises(FashionMNISTDownloadError):
        load(home, table, [mirror])
    assert list(home.iterdir()) == []  # no empty fashion-mnist/
    # Into the cache: every directory created for it goes again, $XDG_CACHE_HOME included.
    with pytest.raises(FashionMNISTDownloadError):
        load(None, table, [mirror])
    assert not (tmp_path / "xdg-cache").exists()
    assert server.hits(f"/gone/{TRAIN_IMAGES}") == 2


def test_unwritable_directory(server, published, table, monkeypatch, tmp_path) -> None:
    mirror = serve(server, "fm", published)

    def refuse(path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(dl, "_atomic_open", refuse)
    (tmp_path / "h").mkdir()
    with pytest.raises(DatasetNotFoundError) as info:
        load(tmp_path / "h", table, [mirror])
    assert not isinstance(info.value, DownloadError)
    msg = str(info.value)
    assert "cannot write" in msg and str(tmp_path / "h" / "fashion-mnist") in msg
    assert "Permission denied" in msg and "data_home=" in msg
    assert list((tmp_path / "h").iterdir()) == []


def test_cached_corrupt_file_is_fetched_again(server, published, table, tmp_path) -> None:
    mirror = serve(server, "fm", published)
    load(None, table, [mirror])
    cache_dir = tmp_path / "xdg-cache" / "arraynn" / "fashion-mnist"
    damaged = bytearray(published[TRAIN_IMAGES])
    damaged[-20] ^= 1
    (cache_dir / TRAIN_IMAGES).write_bytes(bytes(damaged))
    (cache_dir / TEST_LABELS).write_bytes(published[TEST_LABELS][:-7])  # truncated
    n_before = len(server.requests)
    with pytest.warns(UserWarning) as record:
        *_, info = load(None, table, [mirror])
    messages = " ".join(str(w.message) for w in record)
    assert str(cache_dir / TRAIN_IMAGES) in messages and "MD5" in messages
    assert str(cache_dir / TEST_LABELS) in messages and "size" in messages
    assert "downloading it again" in messages
    assert info["source"] == "download"
    assert sorted(info["downloaded"]) == sorted([TRAIN_IMAGES, TEST_LABELS])
    assert len(server.requests) == n_before + 2
    for name in NAMES:
        assert (cache_dir / name).read_bytes() == published[name]
    assert leftovers(cache_dir) == []


def test_cached_corrupt_file_download_false(server, published, table, tmp_path) -> None:
    mirror = serve(server, "fm", published)
    load(None, table, [mirror])
    path = tmp_path / "xdg-cache" / "arraynn" / "fashion-mnist" / TRAIN_LABELS
    path.write_bytes(b"\0" * table[TRAIN_LABELS][0])
    with pytest.raises(DatasetError) as info:
        load(None, table, [mirror], download=False)
    msg = str(info.value)
    assert str(path) in msg and "damaged" in msg and "download=True" in msg


def test_download_missing_file_into_user_directory(server, published, table, tmp_path):
    d = tmp_path / "mine"
    write_dataset(d, make_arrays(seed=5))
    (d / TEST_LABELS).unlink()
    mirror = serve(server, "fm", published)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        *_, info = load(d, table, [mirror])
    assert info["downloaded"] == {TEST_LABELS: mirror + TEST_LABELS}
    assert info["directory"] == str(d)
    assert (d / TEST_LABELS).read_bytes() == published[TEST_LABELS]
    assert len(server.requests) == 1


def test_bad_arguments(table) -> None:
    with pytest.raises(ValueError, match="retries >= 0"):
        load_fashion_mnist(retries=-1)
    with pytest.raises(ValueError, match="no \\(size, MD5\\) entry"):
        load_fashion_mnist(checksums={TRAIN_IMAGES: table[TRAIN_IMAGES]})


def test_gzip_of_synthetic_files_is_valid(published) -> None:
    for body in published.values():
        gzip.decompress(body)


# --------------------------------------------------------------------------
# the real files, when this checkout has them


@pytest.mark.realdata
def test_real_fashion_mnist(shared_fashion_mnist: Path) -> None:
    """The real files (``shared_fashion_mnist`` skips where they are absent)."""
    d = shared_fashion_mnist
    X_train, y_train, X_test, y_test, info = load_fashion_mnist(d, download=False, return_info=True)
    assert info["source"] == "user"
    assert X_train.shape == (60000, 784) and X_test.shape == (10000, 784)
    assert X_train.dtype == np.uint8 and X_test.dtype == np.uint8
    assert y_train.dtype == np.int64 and y_test.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(y_train, minlength=10), [6000] * 10)
    np.testing.assert_array_equal(np.bincount(y_test, minlength=10), [1000] * 10)
    assert 0 < X_train.mean() < 255
    # The label files are the published ones.
    for name in (TRAIN_LABELS, TEST_LABELS):
        size, md5 = FASHION_MNIST_CHECKSUMS[name]
        data = (d / name).read_bytes()
        assert len(data) == size
        assert hashlib.md5(data).hexdigest() == md5


def test_bad_mirrors_and_timeout_are_refused_before_any_work(tmp_path) -> None:
    with pytest.raises(ValueError, match="single string"):
        load_fashion_mnist(tmp_path, mirrors="http://127.0.0.1:9/")
    with pytest.raises(ValueError, match="fix timeout"):
        load_fashion_mnist(tmp_path, timeout=float("nan"))
    assert list(tmp_path.iterdir()) == []
