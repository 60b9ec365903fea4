"""The transfer proof script passes on every backend (one upload and one read-back per epoch)."""

from __future__ import annotations

import json

import numpy as np

import arraynn
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


def test_fit_with_preprocessing_copies_the_training_data_to_the_device_once():
    # the preprocessing is fitted on the device copy that training then takes: the same
    # bytes as a fit without preprocessing (the data once, in its uint8, plus the rows the
    # learned-nothing check scores)
    import warnings

    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, size=(5000, 784)).astype(np.uint8)
    y = rng.integers(0, 10, size=5000)
    sent = {}
    for prep in (None, "standardize"):
        clf = arraynn.NNClassifier(backend="array_api_strict", n_hidden_units=8, epochs=1, batch_size=500,
                                   preprocessing=prep, random_seed=0)
        with warnings.catch_warnings(), arraynn.count_transfers() as c:
            warnings.simplefilter("ignore")
            clf.fit(X, y)
        sent[prep] = c.host_to_device_bytes
    assert sent["standardize"] == sent[None]
    assert sent[None] < X.nbytes + 2000 * 784 + 200_000  # and the labels, permutation, weights
