"""CuPy's fused kernels (arraynn.ops.cupy_kernels), tested with and without a GPU.

(a) Each kernel's Array API twin gives the generic kernels' values, on every backend.
(b) The CUDA sources are well formed: their parameter lists parse as CuPy parses them
    and match the twins' arguments; the straight-line bodies read as the twins' bodies;
    and, where a host C++ compiler exists, every kernel compiles against a small mock of
    CuPy's elementwise conventions and computes the twin's values on the host.
(c) On a machine where CuPy runs, CupyOps equals the generic path on CuPy arrays
    (skipped elsewhere, after a real probe, with the reason).
"""

from __future__ import annotations

import ctypes
import inspect
import os
import re
import shutil
import subprocess
import textwrap
from pathlib import Path

import numpy as np
import pytest

import arraynn
from arraynn import ops as ops_module
from arraynn.nn import MLP, make_optimizer
from arraynn.ops import ACTIVATIONS, Ops
from arraynn.ops import cupy_kernels as ck


def _host(rng, *shape, scale=1.0, dtype=np.float32):
    return (scale * rng.normal(size=shape)).astype(dtype)


def _np(be, x):
    return be.to_numpy(x)


def _equal(be, got, want):
    np.testing.assert_array_equal(_np(be, got), _np(be, want))


def _close(be, got, want, rtol=None):
    got, want = _np(be, got), _np(be, want)
    rtol = rtol if rtol is not None else (2e-6 if got.dtype == np.float32 else 1e-13)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol)


def _twin(name):
    return ck.KERNELS[name].twin


# --------------------------------------------------------------------------------------
# (a) the twins equal the generic kernels, on every backend, float32 and float64
# --------------------------------------------------------------------------------------
def _check_twins_equal_generic(be):
    xp, K = be.xp, Ops(be.xp)
    dt = np.float32 if be.dtype_name == "float32" else np.float64
    rng = np.random.default_rng(0)
    z, g = _host(rng, 9, 7, scale=3.0, dtype=dt), _host(rng, 9, 7, dtype=dt)
    z[0, :3] = 0.0  # the relu's and sign's edge
    for act in sorted(ACTIVATIONS):
        (a,) = _twin(ck.ACTIVATE[act])(xp, be.asarray(z))
        _equal(be, a, K.activate(act, be.asarray(z)))
        (got,) = _twin(ck.ACTIVATE_GRAD[act])(xp, a, be.asarray(g))
        _equal(be, got, K.activate_grad(act, a, be.asarray(g)))
    b = be.asarray(_host(rng, 7, dtype=dt))
    _equal(be, _twin("arraynn_add_bias")(xp, b, be.asarray(z))[0], K.add_bias(be.asarray(z), b))
    w = be.asarray(z)
    _equal(be, _twin("arraynn_penalize_l2")(xp, w, 0.5, be.asarray(g))[0],
           K.penalize(w, be.asarray(g), 0.0, 0.5))
    _equal(be, _twin("arraynn_penalize_l1")(xp, w, 0.3, be.asarray(g))[0],
           K.penalize(w, be.asarray(g), 0.3, 0.0))
    _equal(be, _twin("arraynn_penalize_l1_l2")(xp, w, 0.3, 0.5, be.asarray(g))[0],
           K.penalize(w, be.asarray(g), 0.3, 0.5))

    # output layers
    labels = rng.integers(0, 7, size=9)
    Y = be.asarray(np.eye(7, dtype=dt)[labels])
    zd = be.asarray(z)
    loss, delta = K.loss_and_delta("sigmoid", zd, Y)
    l, d = _twin("arraynn_sigmoid_loss_delta")(xp, zd, Y, None, None)
    _equal(be, xp.sum(l), loss)
    _equal(be, d, delta)
    loss, delta = K.loss_and_delta("softmax", zd, Y)
    d, row_loss = _twin("arraynn_softmax_loss_delta")(xp, zd, Y, 7, None, None)
    _close(be, xp.sum(row_loss), loss, rtol=1e-5 if dt == np.float32 else 1e-12)
    _close(be, d, delta)
    idx = be.asarray(labels, dtype=be.index_dtype)
    (oh,) = _twin("arraynn_one_hot")(xp, idx, 7, xp.zeros((9, 7), dtype=be.dtype, device=be.device))
    _equal(be, oh, K.one_hot(idx, 7, be.dtype))

    # the windows of a convolution: im2col and its adjoint, with padding on two sides
    from arraynn.ops.windows import Window

    x = be.asarray(_host(rng, 2, 3, 7, 6, dtype=dt))
    win = Window(3, 2, 2, 1, (1, 1, 0, 1))
    args = (3, 7, 6, 3, 2, 2, 1, 1, 0, *win.output_hw(7, 6))
    cols = K.im2col(x, win)
    _equal(be, _twin("arraynn_im2col")(xp, x, *args, None)[0], cols)
    c = be.asarray(_host(rng, *cols.shape, dtype=dt))
    _equal(be, _twin("arraynn_col2im")(xp, c, *args, xp.zeros_like(x))[0], K.col2im(c, (2, 3, 7, 6), win))

    # parameter updates over a whole flat buffer: the generic updates against the twins
    host = {k: _host(rng, 41, dtype=dt) for k in "pgmv"}
    host["v"] = np.abs(host["v"])

    def fresh():
        return [be.asarray(host[k].copy()) for k in "pgmv"]

    P, G, M, V = fresh()
    want = K.adam(P, G, M, V, 0.01, 0.9, 0.999, 1e-8)
    p, g, m, v = fresh()
    got = _twin("arraynn_adam")(xp, g, 0.9, 1.0 - 0.9, 0.999, 1.0 - 0.999, 0.01, 1e-8, p, m, v)
    for a, b in zip(got, want):
        _equal(be, a, b)
    p, g, _, _ = fresh()
    (got,) = _twin("arraynn_sgd")(xp, g, 0.05, p)
    p, g, _, _ = fresh()
    _equal(be, got, K.sgd(p, g, 0.05))
    for name, nesterov in (("arraynn_momentum", False), ("arraynn_nesterov", True)):
        p, g, _, v = fresh()
        got = _twin(name)(xp, g, 0.05, 0.9, p, v)
        p, g, _, v = fresh()
        for a, b in zip(got, K.momentum(p, g, v, 0.05, 0.9, nesterov)):
            _equal(be, a, b)


def test_twins_equal_the_generic_kernels_float32(backend):
    _check_twins_equal_generic(backend)


def test_twins_equal_the_generic_kernels_float64(backend64):
    _check_twins_equal_generic(backend64)


def test_every_operation_cupyops_fuses_has_a_kernel():
    assert set(ck.ACTIVATE) == set(ck.ACTIVATE_GRAD) == set(ACTIVATIONS)
    for name in [*ck.ACTIVATE.values(), *ck.ACTIVATE_GRAD.values()]:
        assert name in ck.KERNELS
    source = (Path(ck.__file__).parent / "cupy.py").read_text()
    used = set(re.findall(r'"(arraynn_\w+)"', source)) | set(ck.ACTIVATE.values()) | set(
        ck.ACTIVATE_GRAD.values())
    assert used == set(ck.KERNELS), "every kernel is used, and every one used is defined"


@pytest.mark.parametrize("name", sorted(ck.KERNELS))
def test_every_kernel_describes_its_launch(name):
    """The argument layout NVRTC's check (arraynn.ops.cupy_nvrtc) compiles for: a word per
    parameter, raw parameters as raw arrays, scalars only where a parameter is no array."""
    spec = ck.KERNELS[name]
    kinds = spec.launch.split()
    params = [p for p in (spec.in_params + "," + spec.out_params).split(",") if p.strip()]
    assert len(kinds) == len(params), (spec.launch, params)
    for kind, param in zip(kinds, params):
        assert kind in ("s", "a", "m", "rowb", "raw1", "raw2"), kind
        assert kind.startswith("raw") == param.split()[0].startswith("raw"), (kind, param)
    outs = kinds[len(kinds) - len([p for p in spec.out_params.split(",") if p.strip()]):]
    assert "s" not in outs, "outputs are arrays"


# --------------------------------------------------------------------------------------
# (b) the CUDA sources
# --------------------------------------------------------------------------------------
def _params(text):
    """Parse an ElementwiseKernel parameter list the way CuPy does."""
    out = []
    for part in [p.strip() for p in text.split(",") if p.strip()]:
        tokens = part.split()
        assert len(tokens) >= 2, part
        *quals, typ, name = tokens
        assert all(q == "raw" for q in quals), part
        out.append(("raw" in quals, typ, name))
    return out


def _placeholders(spec):
    return {t for _, t, _ in _params(spec.in_params) + _params(spec.out_params) if len(t) == 1}


@pytest.mark.parametrize("name", sorted(ck.KERNELS))
def test_kernel_parameters_parse_and_match_the_twin(name):
    spec = ck.KERNELS[name]
    assert spec.name == name and re.fullmatch(r"[A-Za-z_]\w*", name)
    ins, outs = _params(spec.in_params), _params(spec.out_params)
    names = [n for _, _, n in ins + outs]
    assert len(set(names)) == len(names) and "i" not in names
    for _, typ, _ in ins + outs:
        assert len(typ) == 1 or np.dtype(typ).name == typ, typ
    twin_args = list(inspect.signature(spec.twin).parameters)
    assert twin_args == ["xp", *names], "the twin takes xp and then the kernel's parameters"
    body = spec.body
    assert body.count("(") == body.count(")") and body.count("{") == body.count("}")
    assert body.strip().endswith((";", "}"))
    for raw, _, out in outs:  # every output is written ...
        pattern = rf"\b{out}\[[^\]]+\]\s*=[^=]" if raw else rf"\b{out}\s*=[^=]"
        assert re.search(pattern, body), f"{name}: the output {out!r} is never written"
    for _, _, inp in ins:  # ... and no input (CuPy makes them const)
        assert not re.search(rf"\b{inp}(\[[^\]]+\])?\s*=[^=]", body), f"{name}: writes input {inp!r}"
    for t in re.findall(r"(?<!\w)\((\w)\)", body):  # casts to placeholders that exist
        assert t in _placeholders(spec), f"{name}: cast to undeclared type {t}"
    declared = set(re.findall(r"(?:\bT|\bint|ptrdiff_t)\s+(\w+)\s*=", body))
    known = (set(names) | declared | set(ck.CUDA_TO_ARRAY_API) | _placeholders(spec)
             | {"i", "int", "ptrdiff_t", "const", "for", "if", "continue"})
    unknown = set(re.findall(r"\b[A-Za-z_]\w*\b", body)) - known
    assert not unknown, f"{name}: unknown identifiers {sorted(unknown)}"


def _cuda_as_array_api(body):
    lines = []
    for stmt in body.split(";"):
        stmt = " ".join(stmt.split())
        if not stmt:
            continue
        stmt = re.sub(r"\((?:T|I)\)", "", stmt)
        for cuda, py in ck.CUDA_TO_ARRAY_API.items():
            stmt = re.sub(rf"(?<![\w.]){cuda}\(", py + "(", stmt)
        lines.append(stmt)
    return lines


def _twin_body(fn):
    src = textwrap.dedent(inspect.getsource(fn)).splitlines()[1:]
    # flush_subnormal(x, xp) in a twin is nn_flush_subnormal(x) in CUDA: no namespace there
    return [" ".join(s.split()).replace(", xp)", ")") for s in src
            if s.strip() and not s.strip().startswith(("return", "#"))]


@pytest.mark.parametrize("name", sorted(n for n, k in ck.KERNELS.items() if k.straight))
def test_straight_line_kernels_read_as_their_twins(name):
    spec = ck.KERNELS[name]
    assert _cuda_as_array_api(spec.body) == _twin_body(spec.twin)


def test_preamble_defines_every_helper_the_sources_use():
    pre = ck.PREAMBLE
    assert pre.count("{") == pre.count("}")
    for helper in (n for n in ck.CUDA_TO_ARRAY_API if n.startswith("nn_")):
        assert re.search(rf"\b{helper}\(", pre), helper
    assert ck.OPTIONS == ("--fmad=false",)


# ---- the sources compiled and run on the host ------------------------------------------
_MOCK = r"""
#include <cmath>
#include <cstddef>
#define __device__
#define __forceinline__ inline
using std::exp; using std::log; using std::log1p; using std::sqrt; using std::tanh;
// The part of CuPy's CArray the kernels use: linear indexing of a C-order array.
template <typename U> struct CArray {
  U* p;
  U& operator[](ptrdiff_t j) { return p[j]; }
  const U& operator[](ptrdiff_t j) const { return p[j]; }
};
"""
_CTYPES = {"float32": "float", "float64": "double", "int32": "int", "int64": "long long"}


def _host_function(spec, suffix):
    """C++ for one kernel as CuPy generates it: non-raw arrays become references to
    element i, raw arrays CArrays, scalars values; inputs are const."""
    lines = [f'extern "C" void {spec.name}_{suffix}(void** A, const double* S, ptrdiff_t n) {{']
    per_element = []
    a = s = 0
    for is_out, (raw, typ, name) in [(False, p) for p in _params(spec.in_params)] + [
            (True, p) for p in _params(spec.out_params)]:
        ctype = typ if len(typ) == 1 else _CTYPES[typ]
        const = "" if is_out else "const "
        if not is_out and not raw and (len(typ) > 1 or name in _SCALARS.get(spec.name, ())):
            lines.append(f"  const {ctype} {name} = ({ctype})S[{s}];")
            s += 1
        elif raw:
            lines.append(f"  {const}CArray<{ctype}> {name} = {{({ctype}*)A[{a}]}};")
            a += 1
        else:
            lines.append(f"  {ctype}* _raw_{name} = ({ctype}*)A[{a}];")
            per_element.append(f"    {const}{ctype} &{name} = _raw_{name}[i];")
            a += 1
    lines.append("  for (ptrdiff_t i = 0; i < n; ++i) {")
    lines += per_element
    lines += ["    " + ln for ln in spec.body.strip().splitlines()]
    lines += ["  }", "}"]
    return "\n".join(lines)


# Which T inputs of each kernel are scalars (the rest are arrays).
_SCALARS = {"arraynn_penalize_l2": {"l2"}, "arraynn_penalize_l1": {"l1"},
            "arraynn_penalize_l1_l2": {"l1", "l2"}, "arraynn_sgd": {"lr"},
            "arraynn_momentum": {"lr", "mu"}, "arraynn_nesterov": {"lr", "mu"},
            "arraynn_adam": {"b1", "c1", "b2", "c2", "lr", "eps"}}



@pytest.fixture(scope="module")
def host_kernels(tmp_path_factory):
    cxx = os.environ.get("CXX") or shutil.which("g++") or shutil.which("clang++") or shutil.which("c++")
    if not cxx:
        pytest.skip("no host C++ compiler to emulate the CUDA kernels with")
    parts = [_MOCK]
    for suffix, T in (("f", "float"), ("d", "double")):
        parts.append(f"namespace nn_{suffix} {{\ntypedef {T} T;\ntypedef long long I;\n{ck.PREAMBLE}")
        parts += [_host_function(spec, suffix) for spec in ck.KERNELS.values()]
        parts.append("}")
    d = tmp_path_factory.mktemp("host_kernels")
    src, lib = d / "kernels.cpp", d / "kernels.so"
    src.write_text("\n".join(parts))
    # -ffp-contract=off: like --fmad=false, no a*b+c contraction
    cmd = [cxx, "-std=c++14", "-O1", "-shared", "-fPIC", "-ffp-contract=off", "-Wall", "-Werror",
           "-Wno-unused-variable", "-o", str(lib), str(src)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, f"the kernels do not compile:\n{res.stderr[-4000:]}"
    return ctypes.CDLL(str(lib))


def _run_host(lib, name, dtype, arrays, scalars, n):
    """Run kernel ``name`` on NumPy arrays (modified in place), as CuPy would launch it."""
    fn = getattr(lib, f"{name}_{'f' if dtype == np.float32 else 'd'}")
    ptrs = (ctypes.c_void_p * max(1, len(arrays)))(*[a.ctypes.data for a in arrays])
    vals = (ctypes.c_double * max(1, len(scalars)))(*scalars)
    fn(ptrs, vals, ctypes.c_ssize_t(n))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cuda_sources_compile_and_compute_the_twins_values_on_the_host(host_kernels, dtype):
    lib, xp = host_kernels, arraynn.get_backend("numpy").xp
    rng = np.random.default_rng(1)
    # transcendental functions: the host's libm against NumPy's, a few ulp apart
    tol = dict(rtol=4e-7 if dtype == np.float32 else 1e-15, atol=1e-7 if dtype == np.float32 else 1e-15)
    z, g = _host(rng, 33, 10, scale=3.0, dtype=dtype), _host(rng, 33, 10, dtype=dtype)
    z[0, :3] = 0.0
    tiny = np.finfo(dtype).smallest_normal
    gap = -np.log(tiny)  # softmax probabilities below the smallest normal number, and zero
    z[1, :5] = [5.0, 5.0 - gap - 1.0, 5.0 - gap - 3.0, 5.0 - gap + 0.5, 5.0 - gap - 60.0]
    for act in sorted(ACTIVATIONS):
        name = ck.ACTIVATE[act]
        got = z.copy()
        _run_host(lib, name, dtype, [got], [], got.size)
        (want,) = _twin(name)(xp, z.copy())
        np.testing.assert_allclose(got, want, **tol)
        name = ck.ACTIVATE_GRAD[act]
        got_g = g.copy()
        _run_host(lib, name, dtype, [want, got_g], [], got_g.size)
        (want_g,) = _twin(name)(xp, want, g.copy())
        np.testing.assert_array_equal(got_g, want_g)  # arithmetic only: exact
    b = _host(rng, 10, dtype=dtype)
    got = z.copy()
    _run_host(lib, "arraynn_add_bias", dtype, [np.ascontiguousarray(np.broadcast_to(b, z.shape)), got],
              [], got.size)
    np.testing.assert_array_equal(got, _twin("arraynn_add_bias")(xp, b, z)[0])
    for name, scal in (("arraynn_penalize_l2", [0.5]), ("arraynn_penalize_l1", [0.3]),
                       ("arraynn_penalize_l1_l2", [0.3, 0.5])):
        got = g.copy()
        _run_host(lib, name, dtype, [z, got], scal, got.size)
        np.testing.assert_array_equal(got, _twin(name)(xp, z, *scal, g)[0])
    p, m, v, gg = (_host(rng, 7, 5, dtype=dtype) for _ in range(4))
    v = np.abs(v)
    scal = [0.9, 1.0 - 0.9, 0.999, 1.0 - 0.999, 0.0123, 1e-8]
    gp, gm, gv = p.copy(), m.copy(), v.copy()
    # the host passes scalars as double, CuPy casts them to T: do the same
    _run_host(lib, "arraynn_adam", dtype, [gg, gp, gm, gv], scal, gp.size)
    wp, wm, wv = _twin("arraynn_adam")(xp, gg, *[dtype(s) for s in scal], p, m, v)
    for a_, b_ in ((gp, wp), (gm, wm), (gv, wv)):
        np.testing.assert_array_equal(a_, b_)
    gp = p.copy()
    _run_host(lib, "arraynn_sgd", dtype, [gg, gp], [0.05], gp.size)
    np.testing.assert_array_equal(gp, _twin("arraynn_sgd")(xp, gg, dtype(0.05), p)[0])
    for name in ("arraynn_momentum", "arraynn_nesterov"):
        gp, gv = p.copy(), m.copy()
        _run_host(lib, name, dtype, [gg, gp, gv], [0.05, 0.9], gp.size)
        wp, wv = _twin(name)(xp, gg, dtype(0.05), dtype(0.9), p, m)
        np.testing.assert_array_equal(gp, wp)
        np.testing.assert_array_equal(gv, wv)

    labels = rng.integers(0, 10, size=33)
    Y = np.eye(10, dtype=dtype)[labels]
    ll, dd = np.empty_like(z), np.empty_like(z)
    _run_host(lib, "arraynn_sigmoid_loss_delta", dtype, [z, Y, ll, dd], [], z.size)
    wl, wd = _twin("arraynn_sigmoid_loss_delta")(xp, z, Y, None, None)
    np.testing.assert_allclose(ll, wl, **tol)
    np.testing.assert_allclose(dd, wd, **tol)
    # the row kernels: one "thread" per row
    d, row = np.empty_like(z), np.empty(33, dtype=dtype)
    _run_host(lib, "arraynn_softmax_loss_delta", dtype, [z, Y, d, row], [10], 33)
    wd, wrow = _twin("arraynn_softmax_loss_delta")(xp, z, Y, 10, None, None)
    assert not ((d != 0) & (np.abs(d) < tiny)).any()  # the error term flushes subnormals
    np.testing.assert_array_equal(d[1, 1:3] == 0, wd[1, 1:3] == 0)
    np.testing.assert_allclose(d, wd, **tol)
    np.testing.assert_allclose(row, wrow, rtol=10 * tol["rtol"], atol=10 * tol["atol"])
    # and against the generic path's values
    loss, delta = Ops(xp).loss_and_delta("softmax", z, Y)
    np.testing.assert_allclose(d, delta, **tol)
    np.testing.assert_allclose(row.sum(), loss, rtol=1e-5 if dtype == np.float32 else 1e-12)
    oh = np.full((33, 10), -1.0, dtype=dtype)
    _run_host(lib, "arraynn_one_hot", dtype, [labels.astype(np.int64), oh], [10], oh.size)
    np.testing.assert_array_equal(oh, Ops(xp).one_hot(labels, 10, dtype))


# --------------------------------------------------------------------------------------
# (c) on a GPU: CupyOps against the generic ops on CuPy arrays
# --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cupy_backend():
    try:
        return arraynn.get_backend("cupy")
    except arraynn.BackendError as exc:
        if "cupy" in os.environ.get("ARRAYNN_TEST_BACKENDS", ""):
            pytest.fail(f"backend cupy was requested but cannot run: {exc}", pytrace=False)
        pytest.skip(f"CuPy cannot run here: {exc}")


@pytest.fixture(autouse=True)
def _fast_paths_on():
    ops_module.set_fast_paths(True)
    yield
    ops_module.set_fast_paths(True)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_cupy_kernels_equal_the_generic_path_on_the_gpu(cupy_backend, dtype):
    be = cupy_backend.with_dtype(dtype)
    xp, cp = be.xp, __import__("cupy")
    from arraynn.ops.cupy import CupyOps

    K, F = Ops(xp), ops_module.ops_for(xp)
    assert type(F) is CupyOps and type(ops_module.ops_of(be.asarray(np.zeros(2)))) is CupyOps
    dt = np.float32 if dtype == "float32" else np.float64
    rng = np.random.default_rng(2)
    z, g = _host(rng, 65, 10, scale=3.0, dtype=dt), _host(rng, 65, 10, dtype=dt)
    z[0, :3] = 0.0
    for act in sorted(ACTIVATIONS):
        a = F.activate(act, be.asarray(z))
        _close(be, a, K.activate(act, be.asarray(z)))
        a_before = a.copy()
        _equal(be, F.activate_grad(act, a, be.asarray(g)), K.activate_grad(act, a, be.asarray(g)))
        _equal(be, a, a_before)  # only g is consumed
    w, b = be.asarray(z), be.asarray(g[0])
    _equal(be, F.add_bias(be.asarray(g), b), K.add_bias(be.asarray(g), b))
    for l1, l2 in [(0.0, 0.5), (0.3, 0.0), (0.2, 0.4), (0.0, 0.0)]:
        _equal(be, F.penalize(w, be.asarray(g), l1, l2), K.penalize(w, be.asarray(g), l1, l2))
    Y = be.asarray(np.eye(10, dtype=dt)[rng.integers(0, 10, size=65)])
    zd = be.asarray(z)
    for output in ("softmax", "sigmoid"):
        loss, delta = F.loss_and_delta(output, zd, Y)
        ref_loss, ref_delta = K.loss_and_delta(output, zd, Y)
        assert loss.shape == () and loss.dtype == zd.dtype and delta.dtype == zd.dtype
        _close(be, loss, ref_loss, rtol=1e-5 if dt == np.float32 else 1e-12)
        _close(be, delta, ref_delta)
    _equal(be, zd, z)  # the logits are left alone
    labels = be.asarray(rng.integers(0, 10, size=65), dtype=be.index_dtype)
    _equal(be, F.one_hot(labels, 10, be.dtype), K.one_hot(labels, 10, be.dtype))
    a, d = be.asarray(_host(rng, 65, 7, dtype=dt)), be.asarray(g)
    out = xp.empty((7, 10), dtype=be.dtype)
    assert F.weight_grad(a, d, out) is out
    _close(be, out, K.weight_grad(a, d))
    out = xp.empty((10,), dtype=be.dtype)
    assert F.bias_grad(d, out) is out
    _close(be, out, K.bias_grad(d))
    host = {k: _host(rng, 77, dtype=dt) for k in "pgmv"}
    host["v"] = np.abs(host["v"])
    fused = [be.asarray(host[k].copy()) for k in "pgmv"]
    generic = [be.asarray(host[k].copy()) for k in "pgmv"]
    p_fused = fused[0]
    for step in range(3):
        fused[0], fused[2], fused[3] = F.adam(*fused, 0.01 / (step + 1), 0.9, 0.999, 1e-8)
        generic[0], generic[2], generic[3] = K.adam(*generic, 0.01 / (step + 1), 0.9, 0.999, 1e-8)
    fused[0] = F.sgd(fused[0], fused[1], 0.1)
    generic[0] = K.sgd(generic[0], generic[1], 0.1)
    for nesterov in (False, True):
        fused[0], fused[3] = F.momentum(fused[0], fused[1], fused[3], 0.1, 0.9, nesterov)
        generic[0], generic[3] = K.momentum(generic[0], generic[1], generic[3], 0.1, 0.9, nesterov)
    assert fused[0] is p_fused  # updated in place
    for got, want in zip(fused, generic):
        _close(be, got, want)
    _equal(be, fused[1], be.asarray(host["g"]))  # gradients are only read
    cp.cuda.Device().synchronize()


@pytest.mark.parametrize("config", [
    dict(sizes=(12, 5, 3), activation="sigmoid", output="sigmoid", bias=False, optimizer="sgd",
         init="uniform", l1=0.0, l2=0.5),
    dict(sizes=(12, 8, 6, 3), activation="relu", output="softmax", bias=True, optimizer="adam",
         init="he", l1=0.0, l2=0.0),
    dict(sizes=(12, 6, 3), activation="tanh", output="softmax", bias=True, optimizer="momentum",
         init="glorot", l1=0.1, l2=0.2),
], ids=["seed", "modern", "tanh-l1"])
def test_training_steps_with_fused_kernels_equal_the_generic_path(cupy_backend, config):
    be = cupy_backend

    def train(fast):
        ops_module.set_fast_paths(fast)
        rng = np.random.default_rng(8)
        mlp = MLP(config["sizes"], activation=config["activation"], output=config["output"],
                  bias=config["bias"])
        params = mlp.init_params(be, rng, config["init"])
        opt = make_optimizer(config["optimizer"])
        state = opt.init(params)
        grad_buffer = be.xp.empty_like(params)
        losses = []
        for _ in range(5):
            X = be.asarray(_host(rng, 16, config["sizes"][0]))
            Y = mlp.one_hot(be.asarray(rng.integers(0, config["sizes"][-1], size=16),
                                       dtype=be.index_dtype), be.dtype)
            params, state, loss = mlp.train_step(params, opt, state, X, Y, 0.01, config["l1"],
                                                 config["l2"], grad_buffer=grad_buffer)
            losses.append(be.to_float(loss))
        return params, losses

    fast_params, fast_losses = train(True)
    params, losses = train(False)
    np.testing.assert_allclose(fast_losses, losses, rtol=1e-5)
    _close(be, fast_params, params, rtol=1e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,win", [((2, 3, 7, 6), (3, 2, 2, 1, (1, 1, 0, 1))),
                                       ((1, 2, 5, 5), (3, 3, 1, 1, (1, 1, 1, 1))),
                                       ((2, 1, 6, 6), (2, 2, 2, 2, (0, 0, 0, 0)))])
def test_the_window_kernels_compute_the_generic_windows_on_the_host(host_kernels, dtype, shape, win):
    # the CUDA im2col and col2im, compiled for the host, against the generic Array API code:
    # im2col moves values (equal), col2im adds them in the generic order (equal too)
    from arraynn.ops.windows import Window, col2im, im2col

    xp = arraynn.get_backend("numpy").xp
    rng = np.random.default_rng(3)
    w = Window(*win)
    x = _host(rng, *shape, dtype=dtype)
    oh, ow = w.output_hw(*shape[2:])
    args = [shape[1], *shape[2:], w.kh, w.kw, w.sh, w.sw, w.pad[0], w.pad[2], oh, ow]
    cols = np.zeros((shape[0], shape[1] * w.kh * w.kw, oh * ow), dtype=dtype)
    _run_host(host_kernels, "arraynn_im2col", dtype, [x, cols], args, cols.size)
    np.testing.assert_array_equal(cols, im2col(x, w, xp))
    c = _host(rng, *cols.shape, dtype=dtype)
    dx = np.zeros(shape, dtype=dtype)
    _run_host(host_kernels, "arraynn_col2im", dtype, [c, dx], args, dx.size)
    np.testing.assert_array_equal(dx, col2im(c, shape, w, xp))
