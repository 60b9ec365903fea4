"""Read and write IDX files, the format of MNIST and Fashion-MNIST.

An IDX file is a 4-byte magic number followed by the size of each dimension
and the array's elements, all big-endian::

    byte 0-1   two zero bytes
    byte 2     type code (see ``IDX_TYPES``)
    byte 3     number of dimensions ``d``
    then       ``d`` unsigned 32-bit big-endian sizes
    then       the elements in C (row-major) order, big-endian

Files may be gzip-compressed. :func:`read_idx` tells a gzip file from a raw
one by its content (the gzip magic bytes ``1f 8b``), not by its name, and
checks the header and the payload size before it builds the array. Every
problem with a file is reported as an :class:`IDXError` that names the file
and says what is wrong with it.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from typing import Any

import numpy as np

from .._fileio import atomic_open as _atomic_open

__all__ = ["IDX_TYPES", "IDXError", "read_idx", "write_idx"]

#: IDX type code -> NumPy dtype of the elements as stored on disk (big-endian).
IDX_TYPES: dict[int, np.dtype[Any]] = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_TYPE_NAMES = {
    0x08: "uint8",
    0x09: "int8",
    0x0B: "int16",
    0x0C: "int32",
    0x0D: "float32",
    0x0E: "float64",
}

# (kind, itemsize) of a NumPy dtype -> IDX type code, whatever the byte order.
_CODE_OF: dict[tuple[str, int], int] = {(dt.kind, dt.itemsize): code for code, dt in IDX_TYPES.items()}

_GZIP_MAGIC = b"\x1f\x8b"
_MAX_DIM = 2**32 - 1


class IDXError(ValueError):
    """An IDX file is malformed: bad magic, type code, header, payload or gzip.

    The message names the file and the problem. ``path`` holds the file's path.
    """

    def __init__(self, message: str, path: str | os.PathLike[str] | None = None):
        super().__init__(message)
        self.path = None if path is None else os.fspath(path)


def _supported() -> str:
    return ", ".join(f"0x{c:02X} ({n})" for c, n in _TYPE_NAMES.items())


def _fail(path: str | os.PathLike[str], problem: str) -> IDXError:
    return IDXError(f"IDX file '{os.fspath(path)}': {problem}", path)


def _gunzip(data: bytes, path: str | os.PathLike[str]) -> bytes:
    """Decompress all gzip members of ``data``, with errors that name ``path``."""
    parts: list[bytes] = []
    rest = data
    while True:
        decomp = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        try:
            parts.append(decomp.decompress(rest))
            parts.append(decomp.flush())
        except zlib.error as exc:
            raise _fail(
                path,
                f"corrupt gzip data ({exc}); the file is damaged: delete it and fetch or write it again",
            ) from exc
        if not decomp.eof:
            raise _fail(
                path,
                f"truncated gzip stream: the {len(data)} bytes of compressed data "
                "end before the gzip end-of-stream marker (was the file cut short, "
                "e.g. by an interrupted download?); delete it and fetch it again",
            )
        rest = decomp.unused_data
        if not rest or not rest.strip(b"\x00"):
            # Nothing left, or only zero padding (which gzip itself tolerates).
            return b"".join(parts)
        if not rest.startswith(_GZIP_MAGIC):
            raise _fail(
                path,
                f"trailing garbage: {len(rest)} bytes after the end of the gzip stream",
            )


def _read_bytes(path: str | os.PathLike[str]) -> bytes:
    with open(path, "rb") as f:
        data = f.read()
    if data.startswith(_GZIP_MAGIC):
        return _gunzip(data, path)
    return data


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file, raw or gzip-compressed, into a NumPy array.

    Parameters
    ----------
    path : str or path-like
        The file. Whether it is gzip-compressed is decided from its first
        bytes (the gzip magic ``1f 8b``), not from its name.

    Returns
    -------
    numpy.ndarray
        A new C-contiguous, writable array in native byte order, with the
        shape stored in the header and the dtype of the type code (uint8,
        int8, int16, int32, float32 or float64).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    IDXError
        If the file is not a valid IDX file: bad magic number, unsupported
        type code, truncated header, payload shorter or longer (trailing
        garbage) than the header's sizes, or a truncated or corrupt gzip
        stream. The message names the file and the problem.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> write_idx(os.path.join(d, "a.idx.gz"), np.arange(6, dtype=np.uint8).reshape(2, 3))
    >>> read_idx(os.path.join(d, "a.idx.gz"))
    array([[0, 1, 2],
           [3, 4, 5]], dtype=uint8)
    """
    data = _read_bytes(path)
    n = len(data)
    if n == 0:
        raise _fail(path, "the file is empty (no IDX header)")
    if n < 4:
        raise _fail(
            path,
            f"truncated header: an IDX file starts with a 4-byte magic number, found only {n} bytes",
        )
    zero, code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0:
        raise _fail(
            path,
            f"bad magic number 0x{data[:4].hex().upper()}: the first two bytes of "
            "an IDX file must be zero (is this an IDX file?)",
        )
    if code not in IDX_TYPES:
        raise _fail(
            path,
            f"unsupported IDX type code 0x{code:02X}; supported codes are {_supported()}",
        )
    if ndim == 0:
        raise _fail(path, "the header declares 0 dimensions; at least 1 is needed")
    header = 4 + 4 * ndim
    if n < header:
        raise _fail(
            path,
            f"truncated header: {ndim} dimensions need {header} header bytes, found only {n}",
        )
    shape = struct.unpack(f">{ndim}I", data[4:header])
    disk_dtype = IDX_TYPES[code]
    expected = disk_dtype.itemsize
    for s in shape:
        expected *= s
    found = n - header
    what = f"shape {shape} of {_TYPE_NAMES[code]}"
    if found < expected:
        raise _fail(
            path,
            f"truncated payload: the header declares {what}, which needs "
            f"{expected} bytes of data, but only {found} bytes follow the header",
        )
    if found > expected:
        raise _fail(
            path,
            f"trailing garbage: the header declares {what} ({expected} bytes of "
            f"data), but {found} bytes follow the header ({found - expected} "
            "bytes too many)",
        )
    flat = np.frombuffer(data, dtype=disk_dtype, count=expected // disk_dtype.itemsize, offset=header)
    # Copy into native byte order: the result owns its memory and is writable.
    return flat.astype(disk_dtype.newbyteorder("="), copy=True).reshape(shape)


def write_idx(path: str | os.PathLike[str], array: Any, *, compresslevel: int = 6) -> None:
    """Write an array to an IDX file, gzip-compressed if the name ends in ``.gz``.

    The file is written to a temporary file in the same directory and then
    renamed onto ``path`` (:func:`os.replace`), so readers never see a
    half-written file and a failed write leaves nothing behind.

    Parameters
    ----------
    path : str or path-like
        Destination. A name ending in ``.gz`` gives a gzip file (with a zero
        timestamp, so equal arrays give byte-identical files); any other name
        gives a raw IDX file.
    array : array_like
        Anything :func:`numpy.asarray` accepts, with at least one dimension,
        each of size < 2**32, and dtype uint8, int8, int16, int32, float32 or
        float64.
    compresslevel : int, default 6
        gzip compression level (0-9) for ``.gz`` files.

    Raises
    ------
    TypeError
        If the dtype has no IDX type code (e.g. int64, bool, float16).
    ValueError
        If the array is 0-dimensional or a dimension is too large.
    """
    arr = np.asarray(array)
    code = _CODE_OF.get((arr.dtype.kind, arr.dtype.itemsize))
    if code is None or arr.dtype.kind not in "uif":
        raise TypeError(
            f"write_idx cannot store dtype {arr.dtype}: IDX supports "
            f"{', '.join(_TYPE_NAMES.values())}; convert the array first, "
            "e.g. array.astype(numpy.int32)"
        )
    if arr.ndim == 0:
        raise ValueError("write_idx needs an array with at least one dimension")
    if any(s > _MAX_DIM for s in arr.shape):
        raise ValueError(
            f"write_idx: shape {arr.shape} has a dimension larger than {_MAX_DIM}, which IDX cannot store"
        )
    header = struct.pack(f">HBB{arr.ndim}I", 0, code, arr.ndim, *arr.shape)
    payload = np.ascontiguousarray(arr, dtype=IDX_TYPES[code])
    with _atomic_open(path) as f:
        if os.fspath(path).endswith(".gz"):
            # filename="" and mtime=0: no name or timestamp in the gzip header.
            with gzip.GzipFile(
                filename="",
                mode="wb",
                fileobj=f,
                compresslevel=compresslevel,
                mtime=0,
            ) as gz:
                gz.write(header)
                gz.write(payload.reshape(-1).view(np.uint8))
        else:
            f.write(header)
            f.write(payload.reshape(-1).view(np.uint8))
