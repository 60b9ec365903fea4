"""Every fused CuPy kernel compiles with NVRTC (arraynn.ops.cupy_nvrtc), with no GPU.

Runs where CuPy and NVRTC are installed (``nox -s nvrtc``: cupy-cuda12x and
nvidia-cuda-nvrtc-cu12); skipped elsewhere. A kernel broken on purpose must fail, with
the compiler's log.
"""

from __future__ import annotations

import dataclasses

import pytest

from arraynn.ops import cupy_kernels as ck


def _nvrtc():
    pytest.importorskip("cupy", reason="CuPy is not installed (nox -s nvrtc installs it)")
    try:
        from cupy_backends.cuda.libs import nvrtc

        nvrtc.getVersion()
    except Exception as exc:  # the NVRTC library is missing
        pytest.skip(f"NVRTC cannot run here ({type(exc).__name__}: {exc})")
    from arraynn.ops import cupy_nvrtc

    return cupy_nvrtc


def test_every_kernel_compiles_for_every_dtype_and_architecture():
    nv = _nvrtc()
    results = nv.check(("80", "90"))
    failed = [str(r.error) for r in results if r.error is not None]
    assert not failed, "\n\n".join(failed)
    assert {r.build.kernel for r in results} == set(ck.KERNELS)
    for name in ck.KERNELS:
        for arch in ("80", "90"):
            for dt in ("float32", "float64"):
                assert any(r.build.kernel == name and r.arch == arch and r.build.dtypes["T"] == dt
                           for r in results), (name, arch, dt)


def test_the_optimizer_update_is_one_launch_over_the_flat_buffer():
    nv = _nvrtc()
    (adam,) = [b for b in nv.builds({"arraynn_adam": ck.KERNELS["arraynn_adam"]})
               if b.dtypes["T"] == "float32"]
    # p, m, v and g as the contiguous 1-D buffers, the hyperparameters as scalars
    for name in ("g",):
        assert f"const CArray<float, 1, 1, 1> _raw_{name}" in adam.source
    for name in ("p", "m", "v"):
        assert f"CArray<float, 1, 1, 1> _raw_{name}" in adam.source
    assert "const float lr" in adam.source and "CIndexer<1, 1> _ind" in adam.source
    assert "--fmad=false" in adam.options and "-ftz=true" in adam.options


def test_the_source_is_cupys_own_for_the_launch():
    nv = _nvrtc()
    (bias,) = [b for b in nv.builds({"arraynn_add_bias": ck.KERNELS["arraynn_add_bias"]})
               if b.dtypes["T"] == "float64"]
    assert "const CArray<double, 2, 0, 1> _raw_b" in bias.source  # the broadcast row
    assert "CArray<double, 2, 1, 1> _raw_z" in bias.source
    assert ck.PREAMBLE.strip().splitlines()[0] in bias.source
    assert bias.source.startswith("#include <cupy/carray.cuh>")


BROKEN = ck.FusedKernel("arraynn_broken", "T g, T lr", "T p", "p = p - lr * undefined_name;",
                        ck.KERNELS["arraynn_sgd"].twin, launch="a s a")


def test_a_broken_kernel_fails_with_the_compilers_log():
    nv = _nvrtc()
    results = nv.check(("80",), {"arraynn_broken": BROKEN})
    assert len(results) == 2 and all(r.error is not None for r in results)
    err = results[0].error
    assert "undefined_name" in err.log and "error" in err.log
    assert "arraynn_broken" in str(err) and "compute_80" in str(err)
    with pytest.raises(nv.KernelCompileError, match="undefined_name"):
        nv.compile_ptx(results[0].build, "90")


def test_the_command_fails_on_a_broken_kernel_and_prints_the_log(capsys):
    nv = _nvrtc()
    assert nv.main(["--arch", "80"], kernels={"arraynn_broken": BROKEN}) == 1
    out, err = capsys.readouterr()
    assert "FAILED" in out and "undefined_name" in err
    assert nv.main(["--arch", "compute_90"], kernels={"arraynn_sgd": ck.KERNELS["arraynn_sgd"]}) == 0


def test_fma_contraction_is_caught():
    """Without --fmad=false NVRTC contracts Adam's b1 * m + c1 * g into an fma: the check
    that the PTX holds none is not vacuous."""
    nv = _nvrtc()
    build = nv.builds({"arraynn_adam": ck.KERNELS["arraynn_adam"]})[0]
    contracted = dataclasses.replace(build, options=tuple(o for o in build.options if o != "--fmad=false"))
    assert "fma." in nv.compile_ptx(contracted, "80")
    assert "fma." not in nv.compile_ptx(build, "80")
    with pytest.raises(nv.KernelCompileError, match="fma"):
        nv._check_ptx(contracted, "80", nv.compile_ptx(contracted, "80"))
