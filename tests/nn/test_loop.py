"""The epoch loop's hooks."""

from __future__ import annotations

import numpy as np

from arraynn import NNClassifier


def test_batch_callback_counts_every_step_of_every_epoch():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(100, 5)), rng.integers(0, 3, size=100)
    seen = []
    NNClassifier(n_hidden_units=4, epochs=2, batch_size=32, random_seed=0).fit(
        X, y, batch_callback=lambda done, n: seen.append((done, n)))
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)] * 2
