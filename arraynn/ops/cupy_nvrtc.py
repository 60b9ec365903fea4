"""Compile every fused CuPy kernel with NVRTC, on a machine without a GPU.

NVRTC, NVIDIA's runtime compiler, needs no GPU and no driver: with
``pip install cupy-cuda12x nvidia-cuda-nvrtc-cu12`` it compiles CUDA C++ to PTX
anywhere. This module builds, for every kernel of :data:`arraynn.ops.cupy_kernels.KERNELS`
and every dtype it is launched with, the source CuPy itself would generate for that
launch (CuPy's elementwise code generator, fed the argument layout of
:attr:`FusedKernel.launch <arraynn.ops.cupy_kernels.FusedKernel>`), with the options
CuPy would add (its include paths and language standard, ``-ftz=true``,
``--device-as-default-execution-space``, and the kernel's own ``--fmad=false``), and
compiles it to PTX for each target architecture. A kernel that does not compile
raises :class:`KernelCompileError` carrying the compiler's log.

The optimizer updates run over the whole flat parameter buffer, so the one-dimensional
launch of ``arraynn_adam`` (and of SGD and momentum) checked here is the only one a
step makes.

Run it as ``python -m arraynn.ops.cupy_nvrtc [--arch 80,90]``: a line per kernel, dtype
and architecture, the logs of failures, exit status 1 if any failed. It reads CuPy
internals (``cupy._core._kernel``), which is why it is a check and not part of a step.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .cupy_kernels import KERNELS, OPTIONS, FusedKernel, elementwise_kernel

__all__ = ["ARCHS", "Build", "KernelCompileError", "builds", "check", "compile_ptx", "main"]

#: The architectures compiled by default: Ampere (A100) and Hopper (H100, H200).
ARCHS: tuple[str, ...] = ("80", "90")
#: The floating dtypes every kernel is compiled for (``T``).
FLOAT_DTYPES: tuple[str, ...] = ("float32", "float64")
#: The label dtypes of ``arraynn_one_hot`` (``I``): the index dtype, and int32.
INDEX_DTYPES: tuple[str, ...] = ("int64", "int32")
#: Kernels whose arithmetic is only + - * / and sqrt: with ``--fmad=false`` their PTX
#: must hold no fused multiply-add (the bit-for-bit promise of ``cupy_kernels``).
NO_FMA: frozenset[str] = frozenset({
    "arraynn_add_bias", "arraynn_sigmoid_grad", "arraynn_tanh_grad", "arraynn_relu_grad",
    "arraynn_penalize_l2", "arraynn_penalize_l1", "arraynn_penalize_l1_l2", "arraynn_sgd",
    "arraynn_momentum", "arraynn_nesterov", "arraynn_adam"})

# CuPy's argument kinds (cupy/_core/_kernel.pxd, enum _ArgKind).
_ARG_NDARRAY, _ARG_INDEXER, _ARG_SCALAR = 1, 2, 3


class KernelCompileError(RuntimeError):
    """NVRTC rejected a kernel; ``log`` is the compiler's log, ``source`` what it compiled."""

    def __init__(self, build: Build, arch: str, log: str) -> None:
        super().__init__(f"{build.label} does not compile for compute_{arch}:\n{log.strip()}")
        self.build, self.arch, self.log = build, arch, log

    @property
    def source(self) -> str:
        return self.build.source


@dataclasses.dataclass(frozen=True)
class Build:
    """One kernel for one set of dtypes: the exact source and options CuPy compiles."""

    kernel: str
    dtypes: Mapping[str, str]
    source: str
    options: tuple[str, ...]

    @property
    def label(self) -> str:
        return f"{self.kernel}[{', '.join(f'{k}={v}' for k, v in sorted(self.dtypes.items()))}]"


def _cupy_modules() -> tuple[Any, Any, Any, Any, Any]:
    import cupy
    from cupy._core import _carray, _kernel, _scalar, core

    return cupy, _kernel, _carray, _scalar, core


def _type_letters(spec: FusedKernel) -> list[str]:
    """The one-letter type names of ``spec`` (``T``, ``I``) in order of appearance."""
    seen: list[str] = []
    for part in (spec.in_params + "," + spec.out_params).split(","):
        words = part.split()
        if len(words) >= 2 and len(words[-2]) == 1 and words[-2] not in seen:
            seen.append(words[-2])
    return seen


def _dtype_choices(spec: FusedKernel) -> list[dict[str, str]]:
    choices: list[dict[str, str]] = [{}]
    for letter in _type_letters(spec):
        options = INDEX_DTYPES if letter == "I" else FLOAT_DTYPES
        choices = [{**c, letter: o} for c in choices for o in options]
    return choices


def _arginfos(spec: FusedKernel, kernel: Any, dtypes: Mapping[str, str]) -> tuple[tuple, Any]:
    """CuPy's argument descriptions of a launch of ``spec`` (as ``ElementwiseKernel.__call__``
    makes them) and its type map."""
    import numpy as np

    cupy, _kernel, _carray, _scalar, _ = _cupy_modules()
    kinds = spec.launch.split()
    params = kernel.params[:-1]  # the last one is CuPy's indexer, _ind
    if len(kinds) != len(params):
        raise ValueError(f"{spec.name}: launch names {len(kinds)} arguments, the kernel has {len(params)}")

    def dtype_of(p: Any) -> Any:
        return p.dtype if p.dtype is not None else np.dtype(dtypes[p.ctype]).type

    arrays = [dtype_of(p) if kind != "s" else None for p, kind in zip(params, kinds)]
    nin = kernel.nin
    in_types, out_types, type_map = kernel._decide_params_type(tuple(arrays[:nin]), tuple(arrays[nin:]))
    types = in_types + out_types
    # The loop's shape: a launch that broadcasts a row keeps two dimensions, one over only
    # C-contiguous arrays is viewed as one dimension; raw arrays do not count.
    loop_ndim = 2 if "rowb" in kinds else 1
    infos = []
    for kind, t in zip(kinds, types):
        if kind == "s":
            infos.append(_kernel._ArgInfo(_ARG_SCALAR, _scalar.CScalar, t, 0, True, True))
        elif kind in ("a", "m"):
            infos.append(_kernel._ArgInfo(_ARG_NDARRAY, cupy.ndarray, t, loop_ndim, True, True))
        elif kind == "rowb":
            infos.append(_kernel._ArgInfo(_ARG_NDARRAY, cupy.ndarray, t, 2, False, True))
        elif kind in ("raw1", "raw2"):
            infos.append(_kernel._ArgInfo(_ARG_NDARRAY, cupy.ndarray, t, int(kind[-1]), True, True))
        else:
            raise ValueError(f"{spec.name}: unknown launch kind {kind!r}")
    infos.append(_kernel._ArgInfo(_ARG_INDEXER, _carray.Indexer, None, loop_ndim, True, True))
    return tuple(infos), type_map


def builds(kernels: Mapping[str, FusedKernel] | None = None) -> list[Build]:
    """Every launch of ``kernels`` (default: all of :data:`KERNELS`) for every dtype,
    as the source and options CuPy would compile."""
    _, _kernel, _, _, core = _cupy_modules()
    out = []
    for spec in (KERNELS if kernels is None else kernels).values():
        kernel = elementwise_kernel(spec)
        options = tuple(kernel.kwargs.get("options", ()))
        if options != OPTIONS:  # pragma: no cover - a change in CuPy's keyword handling
            raise RuntimeError(f"{spec.name}: CuPy did not keep the options {OPTIONS}")
        for dtypes in _dtype_choices(spec):
            infos, type_map = _arginfos(spec, kernel, dtypes)
            code = _kernel._get_elementwise_kernel_code(
                infos, type_map, kernel.params, kernel.operation, kernel.name, kernel.preamble,
                "", "", options)
            # compile_with_cache prepends CuPy's header and assembles the options
            source = "#include <cupy/carray.cuh>\n" + code
            full = tuple(core.assemble_cupy_compiler_options(options)) + (
                "-ftz=true", "--device-as-default-execution-space")
            out.append(Build(spec.name, dtypes, source, full))
    return out


def compile_ptx(build: Build, arch: str) -> str:
    """NVRTC's PTX of ``build`` for ``compute_<arch>``; :class:`KernelCompileError` with
    the compiler's log if it does not compile."""
    from cupy_backends.cuda.libs import nvrtc

    prog = nvrtc.createProgram(build.source, f"{build.kernel}.cu", (), ())
    try:
        try:
            nvrtc.compileProgram(prog, build.options + (f"-arch=compute_{arch}",))
        except nvrtc.NVRTCError as exc:
            raise KernelCompileError(build, arch, nvrtc.getProgramLog(prog) or str(exc)) from None
        ptx = nvrtc.getPTX(prog)
    finally:
        nvrtc.destroyProgram(prog)
    return ptx.decode() if isinstance(ptx, bytes) else ptx


def _check_ptx(build: Build, arch: str, ptx: str) -> None:
    if not re.search(rf"\.entry\s+{re.escape(build.kernel)}\b", ptx):
        raise KernelCompileError(build, arch, f"the PTX has no entry point {build.kernel}")
    if build.kernel in NO_FMA and re.search(r"\bfma\.", ptx):
        raise KernelCompileError(build, arch, "the PTX contracts a * b + c into fma although "
                                              "the kernel is compiled with --fmad=false")


@dataclasses.dataclass(frozen=True)
class Result:
    build: Build
    arch: str
    seconds: float
    ptx_bytes: int = 0
    error: KernelCompileError | None = None


def check(archs: Sequence[str] = ARCHS, kernels: Mapping[str, FusedKernel] | None = None,
          report: Any = None) -> list[Result]:
    """Compile every build for every architecture; a :class:`Result` each (failures hold
    their error). ``report(result)`` is called as each finishes."""
    results = []
    for build in builds(kernels):
        for arch in archs:
            t0 = time.perf_counter()
            try:
                ptx = compile_ptx(build, arch)
                _check_ptx(build, arch, ptx)
                result = Result(build, arch, time.perf_counter() - t0, len(ptx))
            except KernelCompileError as exc:
                result = Result(build, arch, time.perf_counter() - t0, error=exc)
            results.append(result)
            if report is not None:
                report(result)
    return results


def _archs(text: str) -> tuple[str, ...]:
    archs = tuple(a.strip().removeprefix("compute_").removeprefix("sm_")
                  for a in text.split(",") if a.strip())
    if not archs or not all(a.isdigit() for a in archs):
        raise argparse.ArgumentTypeError(f"architectures are numbers such as 80,90, not {text!r}")
    return archs


def main(argv: Iterable[str] | None = None, kernels: Mapping[str, FusedKernel] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m arraynn.ops.cupy_nvrtc",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", type=_archs, default=ARCHS, help="compute capabilities (default 80,90)")
    args = parser.parse_args(None if argv is None else list(argv))
    from cupy_backends.cuda.libs import nvrtc

    major, minor = nvrtc.getVersion()
    print(f"NVRTC {major}.{minor}: compiling every arraynn kernel for "
          + ", ".join(f"compute_{a}" for a in args.arch))
    start = time.perf_counter()

    def report(r: Result) -> None:
        state = "ok" if r.error is None else "FAILED"
        size = f"{r.ptx_bytes:7d} B PTX" if r.error is None else ""
        print(f"  {r.build.label:<58} compute_{r.arch}  {state:<6} {r.seconds:5.2f} s  {size}", flush=True)

    results = check(args.arch, kernels, report)
    failed = [r for r in results if r.error is not None]
    for r in failed:
        print(f"\n--- {r.error}\n--- source:\n{r.build.source}", file=sys.stderr)
    kernel_count = len({r.build.kernel for r in results})
    print(f"{len(results) - len(failed)}/{len(results)} compiled ({kernel_count} kernels, "
          f"{len({r.build.label for r in results})} dtype variants, {len(args.arch)} architectures) "
          f"in {time.perf_counter() - start:.1f} s")
    return 1 if failed or not results else 0


if __name__ == "__main__":
    sys.exit(main())
