"""The transfer proof script passes on every backend (one upload and one read-back per epoch)."""

from __future__ import annotations

import json

import numpy as np

from arraynn.backends import dtype_name
from benchmarks import transfer_proof


def test_one_epoch_copies_only_the_permutation_and_the_loss(backend, capsys):
    args = ["--backend", backend.name, "--samples", "1500"]
    if backend.name != "numpy":
        args += ["--device", backend.device_name if backend.device_name != "CPU_DEVICE" else "cpu"]
    assert transfer_proof.main(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["counted"]["host_to_device"] == 1
    index_bytes = np.dtype(dtype_name(backend.xp, backend.index_dtype)).itemsize
    assert report["counted"]["host_to_device_bytes"] == 1500 * index_bytes  # the permutation
