"""nox sessions: the test suite once per backend, lint, and the benchmark.

    nox                      # the default set: numpy, array-api-strict, torch (CPU), jax (CPU),
                             # lint, typecheck, the package installed as users install it, nvrtc,
                             # mpi, dask, docs
    nox -s typecheck         # mypy on the package ([tool.mypy] in pyproject.toml)
    nox -s nvrtc             # every CUDA kernel compiled with NVRTC (no GPU needed)
    nox -s dask              # sweeps on a Dask LocalCluster (GridSearchCV through joblib)
    nox -s "tests(cupy)"     # on an NVIDIA GPU
    nox -s bench
    nox -s fuzz              # the property-based tests with many examples
    nox -s mpi               # data-parallel training on 2 and 3 ranks (mpi4py + the mpich wheel)
    nox -s docs              # the Sphinx site (warnings are errors) and the examples in its pages

Each tests session installs arraynn with its test extra plus one array library and
sets ARRAYNN_TEST_BACKENDS, which tests/conftest.py reads. A GPU session first probes
its device with a tiny computation and is skipped, with the reason, when none works.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nox

nox.options.sessions = ["tests(numpy)", "tests(array_api_strict)", "tests(torch)", "tests(jax)", "lint",
                        "typecheck", "package", "nvrtc", "mpi", "dask", "docs"]
nox.options.reuse_existing_virtualenvs = True

# The torch wheel the CPU sessions install; override with ARRAYNN_NOX_TORCH (e.g. "torch"
# for the newest release, which on Linux is a CUDA build of several GB).
TORCH = os.environ.get("ARRAYNN_NOX_TORCH", "torch==2.13.0")
CUPY = os.environ.get("ARRAYNN_NOX_CUPY", "cupy-cuda12x")
# mypy, pinned: a new release can find new errors (override with ARRAYNN_NOX_MYPY, e.g. "mypy").
# .pre-commit-config.yaml names the same version.
MYPY = os.environ.get("ARRAYNN_NOX_MYPY", "mypy==2.4.1")

BACKEND_PACKAGES = {
    # Numba: NumPy's compiled optimizer updates (optional for users) are tested here
    "numpy": ["numba"],
    "array_api_strict": [],
    "torch": [TORCH],
    "cupy": [CUPY],
    "jax": ["jax"],
}
BACKEND_ENV = {
    "numpy": {},
    "array_api_strict": {},
    "torch": {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")},
    "cupy": {},
    "jax": {"JAX_ENABLE_X64": "1", "JAX_PLATFORMS": os.environ.get("JAX_PLATFORMS", "")},
}


def _install(session: nox.Session, *args: str) -> None:
    """``pip install`` into the session without compiling every module to bytecode: the
    test extra's libraries (SciPy, scikit-learn, pandas, torch, JAX) have thousands of
    modules the tests never import, and compiling them took time and disk in every session
    (Python still writes the bytecode of what a test imports). Downloads are shared between
    the sessions through pip's cache, and a reused session skips what it has."""
    session.install("--no-compile", *args)


@nox.session
@nox.parametrize("backend", list(BACKEND_PACKAGES), ids=list(BACKEND_PACKAGES))
def tests(session: nox.Session, backend: str) -> None:
    """The test suite on one backend."""
    _install(session, *BACKEND_PACKAGES[backend], "-e", ".[test,plot,progress]")
    env = {"ARRAYNN_TEST_BACKENDS": backend, **BACKEND_ENV[backend]}
    env = {k: v for k, v in env.items() if v != ""}
    if backend in ("cupy",):
        probe = session.run(
            "python", "-c",
            f"import arraynn; print(arraynn.get_backend({backend!r}).describe())",
            env=env, silent=True, success_codes=[0, 1],
        )
        if "Error" in (probe or ""):
            session.skip(f"backend {backend} cannot run here: {probe.strip().splitlines()[-1]}")
    session.run("python", "-m", "pytest", *session.posargs, env=env)


# NVRTC compiles CUDA to PTX without a GPU or a driver; CuPy's wheel brings the code
# generator, nvidia-cuda-nvrtc-cu12 the compiler.
NVRTC_PACKAGES = [os.environ.get("ARRAYNN_NOX_CUPY_NVRTC", "cupy-cuda12x"), "nvidia-cuda-nvrtc-cu12"]


@nox.session
def nvrtc(session: nox.Session) -> None:
    """Every fused CuPy kernel, float32 and float64, compiled by NVRTC for compute_80 and
    compute_90 (the source and options CuPy itself would compile); then its tests, one of
    which checks that a kernel broken on purpose fails with the compiler's log."""
    _install(session, *NVRTC_PACKAGES, "pytest>=7.4", "-e", ".")
    env = {"ARRAYNN_TEST_BACKENDS": "numpy"}
    session.run("python", "-m", "arraynn.ops.cupy_nvrtc", "--arch", "80,90", env=env)
    session.run("python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/ops/test_cupy_nvrtc.py",
                *session.posargs, env=env)


@nox.session
def fuzz(session: nox.Session) -> None:
    """The property-based tests (hypothesis) of the IDX reader, the model loader and the
    CLI parser, with a bounded, derandomized example count (ARRAYNN_FUZZ_EXAMPLES, default 300)."""
    _install(session, "-e", ".[test]")
    env = {"ARRAYNN_FUZZ_EXAMPLES": os.environ.get("ARRAYNN_FUZZ_EXAMPLES", "300"),
           "ARRAYNN_FUZZ_DERANDOMIZE": "1", "ARRAYNN_TEST_BACKENDS": "numpy"}
    session.run("python", "-m", "pytest", "tests/test_fuzzing.py", *session.posargs, env=env)


@nox.session
def mpi(session: nox.Session) -> None:
    """Data-parallel training under mpiexec: the MPI tests (2 and 3 ranks against one process,
    a failing rank, the CLI's --distributed), with mpi4py and the mpich wheel of the mpi extra.
    The tests fail, rather than skip, when mpiexec is missing here."""
    _install(session, "-e", ".[test,mpi]")
    env = {"ARRAYNN_TEST_BACKENDS": "numpy", "ARRAYNN_REQUIRE_MPI": "1", "OMP_NUM_THREADS": "1"}
    session.run("python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/distributed",
                *session.posargs, env=env)


@nox.session
def dask(session: nox.Session) -> None:
    """Hyperparameter sweeps on a Dask LocalCluster through joblib's Dask backend (and the
    pickling they rely on). The tests fail, rather than skip, when Dask is missing here."""
    _install(session, "-e", ".[test]", "dask[distributed]")
    env = {"ARRAYNN_TEST_BACKENDS": "numpy", "ARRAYNN_REQUIRE_DASK": "1", "OMP_NUM_THREADS": "1"}
    session.run("python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_sweeps.py",
                *session.posargs, env=env)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff on the package, tests, examples, benchmarks, scripts and the docs' Python."""
    _install(session, "ruff>=0.5")
    session.run("ruff", "check", "arraynn", "tests", "examples", "benchmarks", "scripts", "docs",
                "noxfile.py")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy on the package, as [tool.mypy] in pyproject.toml sets it: every module at a
    moderate level, the public API (the modules of ``arraynn.__all__``, ``arraynn.layers``,
    ``arraynn.export``) strict. The package is installed for its dependencies (NumPy's
    annotations); the optional libraries count as untyped whether installed or not."""
    _install(session, MYPY, "-e", ".")
    session.run("mypy", *session.posargs)


@nox.session
def docs(session: nox.Session) -> None:
    """The documentation: the HTML site with every warning an error, then the examples of its
    pages and docstrings run by sphinx.ext.doctest (tiny synthetic data, offline)."""
    _install(session, "-e", ".[docs]")
    build = Path("docs", "_build")
    session.run("sphinx-build", "-W", "--keep-going", "-q", "-b", "html", "-d", str(build / "doctrees"),
                "docs", str(build / "html"), *session.posargs)
    session.run("sphinx-build", "-W", "--keep-going", "-q", "-b", "doctest", "-d", str(build / "doctrees"),
                "docs", str(build / "doctest"), *session.posargs)


# The real Fashion-MNIST files: $ARRAYNN_DATA (the package's own variable), else a copy beside
# the checkout; the package session falls back to a synthetic look-alike.
REAL_DATA = Path(os.environ.get("ARRAYNN_DATA")
                 or Path(__file__).resolve().parent.parent / "shared" / "data" / "fashion-mnist")


@nox.session
def package(session: nox.Session) -> None:
    """The package as users install it (`pip install .`, not editable) runs the main job."""
    _install(session, ".")
    tmp = Path(session.create_tmp()).resolve()
    data = REAL_DATA
    if not (data / "train-images-idx3-ubyte.gz").is_file():
        data = tmp / "synthetic-fashion-mnist"
        session.run("python", "-c", "import sys; sys.path.insert(0, 'tests'); "
                    "from pathlib import Path; from _synthetic import write_synthetic_fashion_mnist; "
                    f"write_synthetic_fashion_mnist(Path({str(data)!r}), 3000, 500)")
    run = tmp / "run"
    shutil.rmtree(run, ignore_errors=True)  # a reused environment keeps the last run
    session.chdir(tmp)  # away from the source tree: import the installed copy
    session.run("python", "-c", "import arraynn, arraynn.backends, arraynn.ops, arraynn.nn, "
                "arraynn.data, arraynn.train; assert 'site-packages' in arraynn.__file__, "
                "arraynn.__file__; print('installed:', arraynn.__file__)")
    session.run("python", "-m", "arraynn.train", "--data-dir", str(data), "--epochs", "2",
                "--limit", "3000", "--val-size", "500", "--no-plots", "--no-progress",
                "--out", str(run), "--backend", "numpy")
    session.run("python", "-m", "arraynn.train", "--evaluate", str(run), "--data-dir", str(data))
    session.run("python", "-c", f"import json; s = json.load(open({str(run / 'summary.json')!r})); "
                "assert s['test_accuracy'] > 0.5, s['test_accuracy']; print('test accuracy', "
                "s['test_accuracy'])")


@nox.session
def bench(session: nox.Session) -> None:
    """Both benchmark workloads against PyTorch and scikit-learn (see benchmarks/)."""
    _install(session, TORCH, "-e", ".[bench]")
    env = {"OPENBLAS_CORETYPE": None, "OPENBLAS_L2_SIZE": None}
    session.run("python", "-m", "benchmarks.run", *session.posargs, env=env)
