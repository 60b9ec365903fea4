"""IDX reading and writing: round trips and every kind of bad file."""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np
import pytest

from arraynn.data.idx import IDX_TYPES, IDXError, read_idx, write_idx

DTYPES = ["uint8", "int8", "int16", "int32", "float32", "float64"]


def _sample(dtype: str) -> np.ndarray:
    a = np.arange(-7, 17).reshape(2, 3, 4)
    if dtype == "uint8":
        a = a + 7
    return a.astype(dtype)


def _raw(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _header(code: int, shape: tuple[int, ...]) -> bytes:
    return struct.pack(f">HBB{len(shape)}I", 0, code, len(shape), *shape)


def _bad(path: Path, *fragments: str) -> IDXError:
    with pytest.raises(IDXError) as info:
        read_idx(path)
    msg = str(info.value)
    assert str(path) in msg
    for frag in fragments:
        assert frag in msg, msg
    assert info.value.path == str(path)
    return info.value


# --------------------------------------------------------------------------
# round trips


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("suffix", [".idx", ".idx.gz"])
def test_round_trip(tmp_path: Path, dtype: str, suffix: str) -> None:
    a = _sample(dtype)
    path = tmp_path / f"a{suffix}"
    write_idx(path, a)
    b = read_idx(path)
    assert b.dtype == np.dtype(dtype)
    assert b.dtype.isnative
    assert b.shape == a.shape
    np.testing.assert_array_equal(a, b)
    assert b.flags.writeable and b.flags.c_contiguous


@pytest.mark.parametrize("dtype", DTYPES)
def test_on_disk_layout_is_big_endian(tmp_path: Path, dtype: str) -> None:
    a = _sample(dtype)
    path = tmp_path / "a.idx"
    write_idx(path, a)
    data = path.read_bytes()
    code = {np.dtype(v).newbyteorder("=").name: k for k, v in IDX_TYPES.items()}[dtype]
    assert data[:4] == bytes([0, 0, code, 3])
    assert struct.unpack(">3I", data[4:16]) == (2, 3, 4)
    assert data[16:] == a.astype(np.dtype(dtype).newbyteorder(">")).tobytes()


def test_gzip_detected_by_content_not_name(tmp_path: Path) -> None:
    a = np.arange(10, dtype=np.uint8)
    gz_named_raw = tmp_path / "raw.gz"
    raw_named_gz = tmp_path / "gz.idx"
    gz_named_raw.write_bytes(_header(0x08, (10,)) + a.tobytes())
    raw_named_gz.write_bytes(gzip.compress(_header(0x08, (10,)) + a.tobytes()))
    np.testing.assert_array_equal(read_idx(gz_named_raw), a)
    np.testing.assert_array_equal(read_idx(raw_named_gz), a)


def test_write_gz_is_gzip_and_deterministic(tmp_path: Path) -> None:
    a = np.arange(100, dtype=np.int32).reshape(10, 10)
    write_idx(tmp_path / "x.gz", a)
    write_idx(tmp_path / "y.gz", a)
    x = (tmp_path / "x.gz").read_bytes()
    assert x[:2] == b"\x1f\x8b"
    assert x == (tmp_path / "y.gz").read_bytes()
    write_idx(tmp_path / "z.idx", a)
    assert (tmp_path / "z.idx").read_bytes()[:2] == b"\x00\x00"


def test_empty_dimension(tmp_path: Path) -> None:
    write_idx(tmp_path / "e.idx.gz", np.zeros((0, 28, 28), dtype=np.uint8))
    assert read_idx(tmp_path / "e.idx.gz").shape == (0, 28, 28)


def test_multiple_gzip_members_and_zero_padding(tmp_path: Path) -> None:
    a = np.arange(12, dtype=np.uint8)
    data = _header(0x08, (12,)) + a.tobytes()
    path = tmp_path / "m.gz"
    path.write_bytes(gzip.compress(data[:9]) + gzip.compress(data[9:]) + b"\0" * 8)
    np.testing.assert_array_equal(read_idx(path), a)


def test_accepts_str_and_pathlike(tmp_path: Path) -> None:
    a = np.ones(3, dtype=np.float32)
    write_idx(str(tmp_path / "s.idx"), a)
    np.testing.assert_array_equal(read_idx(str(tmp_path / "s.idx")), a)


def test_write_accepts_other_byte_order(tmp_path: Path) -> None:
    a = np.arange(5, dtype=">i4")
    write_idx(tmp_path / "b.idx", a)
    np.testing.assert_array_equal(read_idx(tmp_path / "b.idx"), a)


# --------------------------------------------------------------------------
# write_idx: refusals and atomicity


@pytest.mark.parametrize("dtype", ["int64", "uint16", "float16", "bool", "complex64"])
def test_write_unsupported_dtype(tmp_path: Path, dtype: str) -> None:
    with pytest.raises(TypeError, match=f"cannot store dtype {dtype}"):
        write_idx(tmp_path / "a.idx", np.zeros(3, dtype=dtype))
    assert list(tmp_path.iterdir()) == []


def test_write_scalar_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least one dimension"):
        write_idx(tmp_path / "a.idx", np.uint8(3))


def test_write_failure_leaves_nothing(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "a.idx.gz"
    write_idx(target, np.arange(3, dtype=np.uint8))
    before = target.read_bytes()

    def boom(src, dst):
        raise OSError("disk on fire")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk on fire"):
        write_idx(target, np.arange(5, dtype=np.uint8))
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.idx.gz"]
    assert target.read_bytes() == before


# --------------------------------------------------------------------------
# bad files


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.idx"
    with pytest.raises(FileNotFoundError, match="nope.idx"):
        read_idx(path)


@pytest.mark.parametrize("compress", [False, True])
def test_empty_file(tmp_path: Path, compress: bool) -> None:
    path = _raw(tmp_path / "empty", gzip.compress(b"") if compress else b"")
    _bad(path, "empty")


def test_short_magic(tmp_path: Path) -> None:
    _bad(_raw(tmp_path / "short", b"\0\0\x08"), "truncated header", "3 bytes")


@pytest.mark.parametrize("compress", [False, True])
def test_bad_magic(tmp_path: Path, compress: bool) -> None:
    data = b"PK\x03\x04" + bytes(20)
    path = _raw(tmp_path / "zip.idx", gzip.compress(data) if compress else data)
    _bad(path, "bad magic number 0x504B0304", "first two bytes")


@pytest.mark.parametrize("code", [0x00, 0x0A, 0x0F, 0xFF])
def test_unsupported_type_code(tmp_path: Path, code: int) -> None:
    path = _raw(tmp_path / "t.idx", _header(code, (2,)) + bytes(16))
    _bad(path, f"unsupported IDX type code 0x{code:02X}", "0x08 (uint8)")


def test_zero_dimensions(tmp_path: Path) -> None:
    _bad(_raw(tmp_path / "z.idx", b"\0\0\x08\0" + b"\x05"), "0 dimensions")


def test_truncated_header(tmp_path: Path) -> None:
    path = _raw(tmp_path / "h.idx", b"\0\0\x08\x03" + struct.pack(">I", 60000) + b"\0\0")
    _bad(path, "truncated header", "3 dimensions need 16 header bytes", "found only 10")


@pytest.mark.parametrize("compress", [False, True])
def test_truncated_payload(tmp_path: Path, compress: bool) -> None:
    data = _header(0x0C, (4, 5)) + bytes(4 * 20 - 6)
    path = _raw(tmp_path / "p.idx", gzip.compress(data) if compress else data)
    _bad(path, "truncated payload", "needs 80 bytes", "only 74 bytes", "(4, 5)", "int32")


def test_truncated_payload_of_written_file(tmp_path: Path) -> None:
    path = tmp_path / "w.idx"
    write_idx(path, np.zeros((3, 28, 28), dtype=np.uint8))
    path.write_bytes(path.read_bytes()[:-100])
    _bad(path, "truncated payload", "needs 2352 bytes", "only 2252 bytes")


@pytest.mark.parametrize("compress", [False, True])
def test_trailing_garbage_in_payload(tmp_path: Path, compress: bool) -> None:
    data = _header(0x08, (10,)) + bytes(10) + b"junk"
    path = _raw(tmp_path / "g.idx", gzip.compress(data) if compress else data)
    _bad(path, "trailing garbage", "4 bytes too many")


def test_trailing_garbage_after_gzip_stream(tmp_path: Path) -> None:
    path = tmp_path / "g.gz"
    write_idx(path, np.arange(10, dtype=np.uint8))
    path.write_bytes(path.read_bytes() + b"garbage!")
    _bad(path, "trailing garbage", "8 bytes after the end of the gzip stream")


@pytest.mark.parametrize("cut", [3, 12, 30, -4])
def test_truncated_gzip(tmp_path: Path, cut: int) -> None:
    path = tmp_path / "cut.gz"
    write_idx(path, np.arange(2000, dtype=np.int32))
    data = path.read_bytes()
    path.write_bytes(data[:cut])
    err = _bad(path, "truncated gzip stream", "delete it and fetch it again")
    assert err.__cause__ is None or not isinstance(err.__cause__, EOFError)


def test_corrupt_gzip_data(tmp_path: Path) -> None:
    path = tmp_path / "bad.gz"
    write_idx(path, np.arange(2000, dtype=np.int32))
    data = bytearray(path.read_bytes())
    data[20:40] = b"\xff" * 20  # damage the deflate stream
    path.write_bytes(bytes(data))
    err = _bad(path, "corrupt gzip data")
    assert err.__cause__ is not None  # the zlib error is chained


def test_corrupt_gzip_crc(tmp_path: Path) -> None:
    path = tmp_path / "crc.gz"
    write_idx(path, np.arange(2000, dtype=np.int32))
    data = bytearray(path.read_bytes())
    data[-6] ^= 0xFF  # flip a byte of the CRC32 trailer
    path.write_bytes(bytes(data))
    _bad(path, "corrupt gzip data")


def test_corrupt_gzip_header(tmp_path: Path) -> None:
    path = _raw(tmp_path / "hdr.gz", b"\x1f\x8b\x63" + bytes(30))
    _bad(path, "corrupt gzip data")


def test_idx_error_is_value_error() -> None:
    assert issubclass(IDXError, ValueError)


# --------------------------------------------------------------------------
# hostile files: bounded memory, sizes checked before reading, clear messages


def _gzip_of_zeros(path: Path, head: bytes, n_zeros: int, members: int = 1) -> Path:
    """A small gzip file of ``head`` and ``n_zeros`` zero bytes (a decompression bomb),
    written without holding the inflated data in memory."""
    import zlib

    with open(path, "wb") as f:
        for m in range(members):
            c = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
            if m == 0:
                f.write(c.compress(head))
            chunk = bytes(1 << 20)
            left = n_zeros // members
            while left:
                k = min(left, len(chunk))
                f.write(c.compress(chunk[:k]))
                left -= k
            f.write(c.flush())
    return path


@pytest.mark.parametrize("members", [1, 3])
def test_decompression_bomb_is_refused_in_bounded_memory(tmp_path: Path, members: int) -> None:
    import tracemalloc

    path = _gzip_of_zeros(tmp_path / "bomb.gz", _header(0x08, (10,)), 300 << 20, members)
    assert path.stat().st_size < 1 << 20
    tracemalloc.start()
    try:
        err = _bad(path, "trailing garbage", "more than", "bytes too many")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20, f"reading a 10-byte IDX file took {peak / 2**20:.0f} MiB"
    assert err.path == str(path)


def test_a_huge_declared_size_of_a_short_gzip_file_is_truncated_not_allocated(tmp_path: Path) -> None:
    import tracemalloc

    path = _raw(tmp_path / "big.gz", gzip.compress(_header(0x0E, (60000, 60000)) + bytes(100)))
    tracemalloc.start()
    try:
        _bad(path, "truncated payload", "28800000000 bytes", "only 100 bytes")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20


def test_a_raw_file_is_checked_against_its_header_before_reading(tmp_path: Path, monkeypatch) -> None:
    path = _raw(tmp_path / "big.idx", _header(0x08, (2**32 - 1, 2**32 - 1)) + bytes(10))
    _bad(path, "truncated payload", "only 10 bytes")


def test_a_header_larger_than_any_array(tmp_path: Path) -> None:
    shape = (2**32 - 1,) * 4
    _bad(_raw(tmp_path / "h.gz", gzip.compress(_header(0x0E, shape))), "more than any array")


@pytest.mark.parametrize("ndim", [65, 255])
def test_more_dimensions_than_numpy_allows(tmp_path: Path, ndim: int) -> None:
    path = _raw(tmp_path / "d.idx", _header(0x08, (1,) * ndim) + b"\x07")
    _bad(path, f"declares {ndim} dimensions", "at most")


def test_out_of_memory_names_the_file(tmp_path: Path, monkeypatch) -> None:
    from arraynn.data import idx

    path = tmp_path / "m.idx.gz"
    write_idx(path, np.zeros((3, 4), dtype=np.uint8))

    def no_memory(self, n):
        raise MemoryError

    monkeypatch.setattr(idx._Stream, "read_payload", no_memory)
    with pytest.raises(MemoryError, match="m.idx.gz") as info:
        read_idx(path)
    assert "(3, 4)" in str(info.value)


@pytest.mark.parametrize("level", [99, -2, 1.5, True, "9"])
def test_write_bad_compresslevel(tmp_path: Path, level) -> None:
    with pytest.raises(ValueError, match="compresslevel must be an integer from 0"):
        write_idx(tmp_path / "a.idx.gz", np.zeros(3, dtype=np.uint8), compresslevel=level)
    assert list(tmp_path.iterdir()) == []


def test_an_empty_shape_whose_other_sizes_overflow(tmp_path: Path) -> None:
    # Found by the fuzzer: NumPy refuses such a shape even with 0 elements.
    path = _raw(tmp_path / "z.idx", _header(0x08, (0, 2, 375768, 2946992, 4164482)))
    _bad(path, "more than any array")
