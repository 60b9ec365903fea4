"""Run under mpiexec by the tests: fit every configuration of a JSON file with the MPI
world as communicator; rank 0 writes the weights and loss curves to an .npz file.

    mpiexec -n 2 python -m mpi4py _mpi_fit.py CONFIGS.json OUT.npz [FAIL_RANK]

With FAIL_RANK, that rank raises in its callback after the first epoch (a failing rank
must end the job, not leave the others waiting).
"""

from __future__ import annotations

import json
import sys

import numpy as np

import arraynn
from arraynn import NNClassifier, distributed


def data(n: int, n_features: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A small classification set, the same on every rank."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    X = rng.normal(size=(n, n_features)) + y[:, None] * 0.7
    return X, y


def weights(n: int) -> np.ndarray:
    """Sample weights for the configurations marked ``"weighted"``."""
    return 1.0 + (np.arange(n) % 4) / 2.0


def layers_from_spec(cfg: dict) -> None:
    """A configuration's ``"layers_spec"`` (JSON has no layer objects) as ``layers``."""
    spec = cfg.pop("layers_spec", None)
    if spec is not None:
        from arraynn.nn.layer_spec import parse_layers

        cfg["layers"] = parse_layers(spec)


def main() -> None:
    configs = json.loads(open(sys.argv[1]).read())
    fail_rank = int(sys.argv[3]) if len(sys.argv) > 3 else None
    comm = distributed.world()
    out = {"world_size": np.array(comm.size)}
    world = comm
    for i, cfg in enumerate(configs):
        X, y = data(cfg.pop("n"), cfg.pop("n_features", 5))
        layers_from_spec(cfg)
        w = weights(len(y)) if cfg.pop("weighted", False) else None
        kind = cfg.pop("comm", None)
        if kind is not None:  # e.g. NCCL: each rank on its own GPU, the gradients summed there
            be = distributed.rank_backend(arraynn.get_backend(cfg.pop("backend"), None, cfg["dtype"]),
                                          world, False)
            cfg["backend"] = be
            comm = distributed.communicator(kind, be, world)

        def callback(model, info, comm=comm):
            if comm.rank == fail_rank:
                raise RuntimeError(f"rank {comm.rank} fails on purpose")

        clf = NNClassifier(**cfg).fit(X, y, w, comm=comm, callback=callback)
        out[f"params{i}"] = clf.backend_.to_numpy(clf._state.params)
        out[f"loss{i}"] = np.array(clf.loss_curve_)
        if "stats" in clf._state.opt:  # BatchNorm's running statistics
            out[f"stats{i}"] = clf.backend_.to_numpy(clf._state.opt["stats"])
    if world.rank == 0:
        np.savez(sys.argv[2], **out)


if __name__ == "__main__":
    main()
