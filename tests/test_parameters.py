"""The estimator's parameters are declared once: documented, and their valid values read
by the checks."""

from __future__ import annotations

import inspect
import re

import numpy as np
import pytest

from arraynn import NNClassifier
from arraynn._parameters import CHOICES, FLAGS, INTERVALS, PARAMETERS, Interval, describe


def _documented() -> list[str]:
    return [n.strip() for names, _, _ in PARAMETERS for n in names.split(",")]


def test_every_constructor_parameter_is_documented_once_in_the_signatures_order():
    signature = [p for p in inspect.signature(NNClassifier.__init__).parameters if p != "self"]
    assert _documented() == signature
    doc = inspect.cleandoc(NNClassifier.__doc__)
    for name in signature:
        assert f"\n{name}" in doc or f", {name}" in doc, name
    # the choice parameters' documented types are their valid values
    assert 'activation : {"sigmoid", "tanh", "relu"}' in doc


def test_every_declared_rule_is_a_parameters_and_is_enforced():
    signature = set(inspect.signature(NNClassifier.__init__).parameters)
    assert set(INTERVALS) | set(CHOICES) | set(FLAGS) <= signature
    X = np.random.default_rng(0).normal(size=(20, 4))
    y = np.arange(20) % 2
    for name, interval in INTERVALS.items():
        bad = interval.high if interval.high is not None else (interval.low - 1 if interval.low else -1)
        kw = {name: bad, **({"batch_size": None} if name == "n_batches" else {})}
        with pytest.raises(ValueError, match=re.escape(f"{name} must be {interval.describe()}, got")):
            NNClassifier(**kw).fit(X, y)


def test_an_interval_says_what_it_takes():
    assert Interval(int, 1).describe() == "a positive integer"
    assert Interval(float, 0.0, 1.0).describe() == "a number >= 0 and < 1"
    assert Interval(float, 0.0, low_open=True).describe() == "a number > 0"
    unit = Interval(float, 0.0, 1.0)
    assert unit.contains(0.0) and unit.contains(np.float32(0.5)) and not unit.contains(1.0)
    assert not unit.contains(True) and not unit.contains(float("nan")) and not unit.contains("0.5")
    assert not Interval(int, 1).contains(2.0) and Interval(int, 1, none=True).contains(None)
    assert describe("l2").startswith("Penalties ``l1*sum|w|")
    with pytest.raises(KeyError, match="not a parameter"):
        describe("alpha")
