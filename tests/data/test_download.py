"""Downloads from mirrors: retries, backoff, size and MD5 checks, atomic writes.

Against a scripted HTTP server bound to 127.0.0.1: nothing touches the network.
"""

from __future__ import annotations

import hashlib
import os
import socket
import sys
from pathlib import Path

import pytest

from arraynn.data import download as dl
from arraynn.data.download import DownloadError, download, download_options, verify_file

try:
    from _httpserver import Reply, bypass_proxies, scripted_server
except ImportError:  # run with --import-mode=importlib
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _httpserver import Reply, bypass_proxies, scripted_server

NAME = "payload.bin"
BODY = bytes(range(256)) * 40 + b"the end"
EXPECTED = (len(BODY), hashlib.md5(BODY).hexdigest())
TIMEOUT = 5.0


@pytest.fixture(autouse=True)
def sleeps(monkeypatch) -> list[float]:
    """No proxy between us and 127.0.0.1; the backoff pauses recorded, not slept."""
    bypass_proxies(monkeypatch)
    recorded: list[float] = []
    monkeypatch.setattr(dl, "_sleep", recorded.append)
    return recorded


@pytest.fixture
def server():
    with scripted_server() as s:
        yield s


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    d = tmp_path / "target"
    d.mkdir()
    return d / NAME


def fetch(dest: Path, mirrors, expected=EXPECTED, **kw) -> str:
    kw.setdefault("retries", 1)
    kw.setdefault("backoff", 0.0)
    kw.setdefault("timeout", TIMEOUT)
    return download(dest, mirrors, expected, **kw)


def leftovers(directory: Path) -> list[str]:
    """Temporary or partial files left in ``directory``."""
    return sorted(p.name for p in directory.iterdir() if p.name != NAME)


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/fm/"


# --------------------------------------------------------------------------
# success


def test_download_with_user_agent(server, dest: Path) -> None:
    server.add(f"/fm/{NAME}", Reply(200, BODY))
    url = fetch(dest, [server.url("fm")])
    assert url == server.url("fm") + NAME
    assert dest.read_bytes() == BODY
    assert leftovers(dest.parent) == []
    assert len(server.requests) == 1
    assert server.requests[0].headers["User-Agent"].startswith("arraynn/")


def test_mirror_fallback(server, dest: Path, sleeps) -> None:
    server.add(f"/one/{NAME}", Reply(500, b"oops"))
    server.add(f"/two/{NAME}", Reply(200, BODY))
    url = fetch(dest, [server.url("one"), server.url("two")], retries=2)
    assert url == server.url("two") + NAME
    assert server.hits(f"/one/{NAME}") == 3  # 1 attempt + 2 retries
    assert server.hits(f"/two/{NAME}") == 1
    assert sleeps == [0.0, 0.0]
    assert dest.read_bytes() == BODY
    assert leftovers(dest.parent) == []


def test_not_found_moves_on_without_retry(server, dest: Path) -> None:
    server.add(f"/two/{NAME}", Reply(200, BODY))  # /one/ is unknown: 404
    fetch(dest, [server.url("one"), server.url("two")], retries=3)
    assert server.hits(f"/one/{NAME}") == 1
    assert server.hits(f"/two/{NAME}") == 1


def test_retry_with_exponential_backoff(server, dest: Path, sleeps) -> None:
    path = f"/fm/{NAME}"
    server.add(path, Reply(503), Reply(500), Reply(200, BODY))
    fetch(dest, [server.url("fm")], retries=2, backoff=0.25)
    assert server.hits(path) == 3
    assert sleeps == [0.25, 0.5]
    assert dest.read_bytes() == BODY


def test_truncated_transfer_is_retried(server, dest: Path) -> None:
    path = f"/fm/{NAME}"
    server.add(path, Reply(200, BODY, truncate_at=len(BODY) // 3), Reply(200, BODY))
    fetch(dest, [server.url("fm")], retries=1)
    assert server.hits(path) == 2
    assert dest.read_bytes() == BODY
    assert leftovers(dest.parent) == []


def test_defaults_are_read_when_called(server, dest: Path, sleeps, monkeypatch) -> None:
    monkeypatch.setattr(dl, "DOWNLOAD_RETRIES", 0)
    monkeypatch.setattr(dl, "DOWNLOAD_BACKOFF", 3.0)
    assert download_options() == (0, 3.0, dl.DOWNLOAD_TIMEOUT)
    server.add(f"/fm/{NAME}", Reply(503))
    with pytest.raises(DownloadError, match=r"\(1 attempt\)"):
        download(dest, [server.url("fm")], EXPECTED, timeout=TIMEOUT)
    assert server.hits(f"/fm/{NAME}") == 1
    assert sleeps == []


# --------------------------------------------------------------------------
# failures


def test_truncated_everywhere_leaves_nothing(server, dest: Path) -> None:
    server.add(f"/fm/{NAME}", Reply(200, BODY, truncate_at=100))
    with pytest.raises(DownloadError) as info:
        fetch(dest, [server.url("fm")], retries=2)
    msg = str(info.value)
    assert NAME in msg and "broke off" in msg and "3 attempts" in msg
    assert server.hits(f"/fm/{NAME}") == 3
    assert leftovers(dest.parent) == []
    assert not dest.exists()


def test_checksum_mismatch_on_all_mirrors(server, dest: Path) -> None:
    corrupt = bytearray(BODY)
    corrupt[-10] ^= 0x55  # same size, different MD5
    for prefix in ("one", "two"):
        server.add(f"/{prefix}/{NAME}", Reply(200, bytes(corrupt)))
    mirrors = [server.url("one"), server.url("two")]
    with pytest.raises(DownloadError) as info:
        fetch(dest, mirrors, retries=2)
    msg = str(info.value)
    assert f"could not download {NAME} into {dest.parent}" in msg
    assert "checksum mismatch" in msg and EXPECTED[1] in msg
    assert hashlib.md5(bytes(corrupt)).hexdigest() in msg
    for base in mirrors:
        assert base + NAME in msg
        # A bad checksum is not cured by retrying the same mirror.
        assert server.hits(f"/{base.split('/')[-2]}/{NAME}") == 1
    assert leftovers(dest.parent) == []
    assert not dest.exists()


def test_oversized_download_rejected(server, dest: Path) -> None:
    server.add(f"/fm/{NAME}", Reply(200, BODY + b"extra"))
    with pytest.raises(DownloadError, match="announces .* bytes, the published size is"):
        fetch(dest, [server.url("fm")])
    assert leftovers(dest.parent) == []
    assert not dest.exists()


def test_size_checked_without_content_length(server, dest: Path) -> None:
    server.add(f"/fm/{NAME}", Reply(200, BODY + b"extra", send_length=False))
    with pytest.raises(DownloadError, match="sent more than the published"):
        fetch(dest, [server.url("fm")])
    server.add(f"/fm/{NAME}", Reply(200, BODY[:-5], send_length=False))
    with pytest.raises(DownloadError, match=r"got \d+ of the published \d+ bytes"):
        fetch(dest, [server.url("fm")], retries=0)
    assert leftovers(dest.parent) == []
    assert not dest.exists()


def test_offline(dest: Path) -> None:
    mirror = closed_port_url()
    with pytest.raises(DownloadError) as info:
        fetch(dest, [mirror], retries=1)
    assert isinstance(info.value, FileNotFoundError)
    msg = str(info.value)
    assert str(dest.parent) in msg
    assert mirror + NAME in msg
    assert "cannot connect" in msg
    assert "2 attempts" in msg
    assert leftovers(dest.parent) == []


def test_interrupted_download_leaves_nothing(server, dest: Path, monkeypatch) -> None:
    server.add(f"/fm/{NAME}", Reply(200, BODY))

    def interrupt(*args):
        raise KeyboardInterrupt

    # Interrupt after the body is in the temporary file, before the rename.
    monkeypatch.setattr(dl, "_mismatch", interrupt)
    with pytest.raises(KeyboardInterrupt):
        fetch(dest, [server.url("fm")])
    assert dest.parent.is_dir() and list(dest.parent.iterdir()) == []


def test_local_write_error_is_not_retried(server, dest: Path, monkeypatch) -> None:
    """An OSError writing the file is the caller's problem: no retry, no DownloadError."""
    server.add(f"/fm/{NAME}", Reply(200, BODY))

    def refuse(path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(dl, "_atomic_open", refuse)
    with pytest.raises(PermissionError) as info:
        fetch(dest, [server.url("fm")], retries=2)
    assert not isinstance(info.value, DownloadError)
    assert server.hits(f"/fm/{NAME}") == 1


def test_bad_options(dest: Path) -> None:
    for kw in ({"retries": -1}, {"backoff": -0.5}, {"timeout": 0}):
        with pytest.raises(ValueError, match="need retries >= 0, backoff >= 0 and timeout > 0"):
            download_options(**kw)
        with pytest.raises(ValueError, match="retries >= 0"):
            download(dest, ["http://127.0.0.1:9/"], EXPECTED, **kw)
    assert list(dest.parent.iterdir()) == []


# --------------------------------------------------------------------------
# checksums of files on disk


def test_verify_file(tmp_path: Path) -> None:
    path = tmp_path / NAME
    path.write_bytes(BODY)
    assert verify_file(path, EXPECTED) is None
    assert verify_file(str(path), (EXPECTED[0], EXPECTED[1].upper())) is None
    assert verify_file(path, (EXPECTED[0] + 1, EXPECTED[1])) == (
        f"size is {len(BODY)} bytes, the published size is {len(BODY) + 1} bytes"
    )
    other = "0" * 32
    assert verify_file(path, (EXPECTED[0], other)) == f"MD5 is {EXPECTED[1]}, the published MD5 is {other}"


def test_md5_helper_matches_hashlib(tmp_path: Path) -> None:
    data = os.urandom(3 * (1 << 20) + 17)
    (tmp_path / "f").write_bytes(data)
    assert dl._file_digest(tmp_path / "f") == (len(data), hashlib.md5(data).hexdigest())


@pytest.mark.parametrize("kw", [{"retries": 1.5}, {"retries": True}, {"retries": "2"},
                                {"backoff": float("nan")}, {"timeout": float("nan")},
                                {"timeout": float("inf")}, {"timeout": "60"},
                                {"backoff": None, "timeout": -1}])
def test_bad_option_types_and_non_finite_values(dest: Path, kw) -> None:
    bad = next(k for k, v in kw.items() if v is not None)
    with pytest.raises(ValueError, match=f"need retries >= 0.*fix {bad}"):
        download_options(**kw)
    with pytest.raises(ValueError, match=f"fix {bad}"):
        download(dest, ["http://127.0.0.1:9/"], EXPECTED, **kw)
    assert list(dest.parent.iterdir()) == []


@pytest.mark.parametrize(("mirrors", "fragment"), [
    ("http://127.0.0.1:9/", "single string"), ([], "empty"), (["not a url"], "is not a URL"),
    ([b"http://x/"], "is not a URL"), (None, "list of base URLs"), ([7], "is not a URL")])
def test_bad_mirrors(dest: Path, mirrors, fragment) -> None:
    with pytest.raises(ValueError, match=fragment):
        download(dest, mirrors, EXPECTED)
    assert list(dest.parent.iterdir()) == []


def test_a_mirror_without_a_trailing_slash_gets_one() -> None:
    from arraynn.data.download import check_mirrors

    assert check_mirrors(["http://a/x", "https://b/y/"]) == ("http://a/x/", "https://b/y/")
