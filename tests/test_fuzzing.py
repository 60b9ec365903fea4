"""Property-based tests (hypothesis) of what reads untrusted input: the IDX reader, the
model loader and the command-line parser. Random bytes, truncations, damaged headers and
random argument lists give a result or the module's own error, never another exception
type, and never unbounded memory.

The number of examples per test is ``ARRAYNN_FUZZ_EXAMPLES`` (default 15, enough for the
regular suite); ``nox -s fuzz`` runs many more, derandomized, so CI is reproducible.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import struct
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import arraynn  # noqa: E402
from arraynn import NNClassifier  # noqa: E402
from arraynn.data.idx import IDXError, read_idx  # noqa: E402
from arraynn.model_io import ModelFileError  # noqa: E402
from arraynn.train.errors import UsageError  # noqa: E402
from arraynn.train.options import (  # noqa: E402
    build_parser,
    check_evaluate_args,
    check_resume_args,
    resolve_config,
)

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "model-0.1.0-adam.npz"
MEMORY_LIMIT = 64 << 20

FUZZ = settings(
    max_examples=int(os.environ.get("ARRAYNN_FUZZ_EXAMPLES", "15")),
    deadline=None,
    derandomize=bool(os.environ.get("ARRAYNN_FUZZ_DERANDOMIZE")),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                           HealthCheck.data_too_large],
)


class _Peak:
    """The peak of traced Python allocations inside the block."""

    def __enter__(self):
        tracemalloc.start()
        return self

    def __exit__(self, *exc):
        self.peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return False


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


# --------------------------------------------------------------------------------------
# the IDX reader
# --------------------------------------------------------------------------------------


def _read_idx_bytes(tmp_path: Path, data: bytes, allowed: int = MEMORY_LIMIT) -> None:
    path = _write(tmp_path, "f.idx", data)
    with _Peak() as m:
        try:
            a = read_idx(path)
        except IDXError as exc:
            assert str(path) in str(exc)
        else:
            assert isinstance(a, np.ndarray) and a.dtype.isnative
    assert m.peak < allowed, f"{m.peak / 2**20:.0f} MiB for a {len(data)}-byte file"


@FUZZ
@given(data=st.binary(max_size=512), compress=st.booleans())
def test_idx_random_bytes(tmp_path, data, compress):
    _read_idx_bytes(tmp_path, gzip.compress(data) if compress else data)


_headers = st.builds(
    lambda code, dims, extra: (code, dims, extra),
    st.sampled_from([0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E, 0x00, 0x0A, 0xFF]),
    st.lists(st.one_of(st.integers(0, 8), st.integers(0, 2**32 - 1)), min_size=0, max_size=70),
    st.integers(-64, 64),
)


@FUZZ
@given(header=_headers, compress=st.booleans(), bomb=st.integers(0, 1 << 26))
def test_idx_random_headers_truncations_and_bombs(tmp_path, header, compress, bomb):
    code, dims, extra = header
    head = struct.pack(f">HBB{len(dims)}I", 0, code, len(dims) % 256, *dims)
    size = 1
    for d in dims:
        size *= d
    itemsize = {0x0B: 2, 0x0C: 4, 0x0D: 4, 0x0E: 8}.get(code, 1)
    payload = max(0, min(size * itemsize, 4096) + extra)
    data = head + bytes(payload)
    if compress:
        # Zero bytes beyond the payload compress to almost nothing: a decompression bomb.
        body = gzip.compress(data + bytes(bomb), compresslevel=1)
    else:
        body = data
    # Memory is bounded by the array the header declares (the result itself), whatever
    # the file inflates to.
    _read_idx_bytes(tmp_path, body, MEMORY_LIMIT + 2 * min(size * itemsize, len(data) + bomb))


@FUZZ
@given(cut=st.integers(0, 400), flips=st.lists(st.tuples(st.integers(0, 400), st.integers(1, 255)),
                                                 max_size=4))
def test_idx_damaged_gzip_of_a_valid_file(tmp_path, cut, flips):
    good = tmp_path / "good.idx.gz"
    arraynn.write_idx(good, np.arange(300, dtype=np.int32).reshape(10, 30))
    data = bytearray(good.read_bytes())
    for pos, x in flips:
        if pos < len(data):
            data[pos] ^= x
    _read_idx_bytes(tmp_path, bytes(data[:len(data) - cut]) if cut else bytes(data))


# --------------------------------------------------------------------------------------
# the model loader
# --------------------------------------------------------------------------------------


def _load(tmp_path: Path, data: bytes) -> None:
    path = _write(tmp_path, "m.npz", data)
    with _Peak() as m:
        try:
            clf = NNClassifier.load(path)
        except ModelFileError as exc:
            assert str(path) in str(exc)
        else:
            clf.predict(np.zeros((2, clf.n_features_in_)))
    assert m.peak < MEMORY_LIMIT


@FUZZ
@given(data=st.binary(max_size=1024))
def test_model_random_bytes(tmp_path, data):
    _load(tmp_path, data)


@FUZZ
@given(cut=st.integers(0, 6000), flips=st.lists(st.tuples(st.integers(0, 6000), st.integers(1, 255)),
                                                  max_size=6))
def test_model_truncated_or_damaged(tmp_path, cut, flips):
    data = bytearray(FIXTURE.read_bytes())
    for pos, x in flips:
        if pos < len(data):
            data[pos] ^= x
    _load(tmp_path, bytes(data[:max(0, len(data) - cut)]))


_json = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-2**40, 2**40), st.floats(allow_nan=True),
              st.text(max_size=8)),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner,
                                                                         max_size=4)),
    max_leaves=8,
)


@FUZZ
@given(field=st.sampled_from(["params", "layer_sizes", "n_features_in", "n_iter", "loss_curve",
                              "random_seed", "optimizer_step", "optimizer_buffers", "n_params",
                              "format_version", "trained_on"]),
       param=st.sampled_from(["n_hidden_units", "optimizer", "epochs", "beta_1", "epsilon", "bias",
                              "random_seed", "dtype", "activation", "tf32"]),
       value=_json, in_params=st.booleans(),
       shape=st.lists(st.integers(0, 2**40), max_size=3))
def test_model_tampered_metadata(tmp_path, field, param, value, in_params, shape):
    with np.load(FIXTURE, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    meta = json.loads(arrays.pop("meta.json").tobytes())
    if in_params:
        meta["params"][param] = value
    else:
        meta[field] = value
    buf = io.BytesIO()
    np.savez(buf, **arrays, **{"meta.json": np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)})
    data = buf.getvalue()
    if shape:
        # A damaged .npy header in the archive that declares a huge array.
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            out = io.BytesIO()
            with zipfile.ZipFile(out, "w") as w:
                for info in z.infolist():
                    body = z.read(info)
                    if info.filename == "param_0.npy":
                        h = np.lib.format.header_data_from_array_1_0(np.zeros(1, np.float32))
                        h["shape"] = tuple(shape)
                        hb = io.BytesIO()
                        np.lib.format.write_array_header_1_0(hb, h)
                        body = hb.getvalue() + bytes(16)
                    w.writestr(info.filename, body)
            data = out.getvalue()
    _load(tmp_path, data)


# --------------------------------------------------------------------------------------
# the command-line parser
# --------------------------------------------------------------------------------------

_FLAGS = ["--backend", "--device", "--dtype", "--tf32", "--preset", "--hidden", "--activation",
          "--output", "--optimizer", "--lr", "--schedule", "--epochs", "--batch-size", "--n-batches",
          "--l1", "--l2", "--init", "--bias", "--no-bias", "--seed", "--data-dir", "--no-download",
          "--mirror", "--scale", "--no-scale", "--val-size", "--limit", "--out", "--resume", "--evaluate",
          "--no-progress", "--no-plots", "--debug", "--learning-rate"]
_VALUES = st.one_of(st.sampled_from(["0", "-1", "1", "nan", "inf", "1e999", "2.5", "", "none", "256,128",
                                     "0,3", "x", "numpy", "torch", "default", "article", "float16",
                                     "float64", "http://x/", "adam", "cosine", "unit", "--"]),
                    st.text(max_size=10))


@FUZZ
@given(argv=st.lists(st.one_of(st.sampled_from(_FLAGS), _VALUES), max_size=12))
def test_cli_parser_random_arguments(argv):
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError:
        return
    try:
        resolve_config(args)
        if args.resume:
            check_resume_args(args, resolve_config(build_parser().parse_args([])))
        if args.evaluate is not None:
            check_evaluate_args(args)
    except UsageError:
        return
