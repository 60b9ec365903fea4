"""nox sessions: the test suite once per backend, lint, and the benchmark.

    nox                      # the default set: numpy, array-api-strict, torch (CPU), lint
    nox -s "tests(cupy)"     # on an NVIDIA GPU
    nox -s "tests(jax)"
    nox -s bench

Each tests session installs arraynn with its test extra plus one array library and
sets ARRAYNN_TEST_BACKENDS, which tests/conftest.py reads. A GPU session first probes
its device with a tiny computation and is skipped, with the reason, when none works.
"""

from __future__ import annotations

import os

import nox

nox.options.sessions = ["tests(numpy)", "tests(array_api_strict)", "tests(torch)", "lint"]
nox.options.reuse_existing_virtualenvs = True

# The torch wheel the CPU sessions install; override with ARRAYNN_NOX_TORCH (e.g. "torch"
# for the newest release, which on Linux is a CUDA build of several GB).
TORCH = os.environ.get("ARRAYNN_NOX_TORCH", "torch==2.13.0")
CUPY = os.environ.get("ARRAYNN_NOX_CUPY", "cupy-cuda12x")

BACKEND_PACKAGES = {
    "numpy": [],
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


@nox.session
@nox.parametrize("backend", list(BACKEND_PACKAGES), ids=list(BACKEND_PACKAGES))
def tests(session: nox.Session, backend: str) -> None:
    """The test suite on one backend."""
    session.install(*BACKEND_PACKAGES[backend], "-e", ".[test,plot,progress]")
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


@nox.session
def lint(session: nox.Session) -> None:
    """ruff on the package, tests, examples and benchmarks."""
    session.install("ruff>=0.5")
    session.run("ruff", "check", "arraynn", "tests", "examples", "benchmarks", "noxfile.py")


@nox.session
def bench(session: nox.Session) -> None:
    """Both benchmark workloads against PyTorch and scikit-learn (see benchmarks/)."""
    session.install(TORCH, "-e", ".[bench]")
    env = {"OPENBLAS_CORETYPE": None, "OPENBLAS_L2_SIZE": None}
    session.run("python", "-m", "benchmarks.run", *session.posargs, env=env)
