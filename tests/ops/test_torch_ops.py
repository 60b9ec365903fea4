"""PyTorch's fast path: gradients land in the flat buffer, with the generic values."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import arraynn  # noqa: E402
from arraynn import ops as ops_module  # noqa: E402
from arraynn.nn import MLP, make_optimizer  # noqa: E402
from arraynn.ops import Ops, ops_for  # noqa: E402
from arraynn.ops.torch import TorchOps  # noqa: E402


@pytest.fixture(scope="module")
def be():
    return arraynn.get_backend("torch", "cpu")


def test_torch_gets_its_fast_path(be):
    assert type(ops_for(be.xp)) is TorchOps


def test_gradients_and_penalty_land_in_out_with_the_generic_values(be):
    rng = np.random.default_rng(0)
    a, d = be.asarray(rng.normal(size=(9, 5))), be.asarray(rng.normal(size=(9, 4)))
    w = be.asarray(rng.normal(size=(5, 4)))
    fast, generic = TorchOps(be.xp), Ops(be.xp)
    out = torch.empty(5, 4)
    assert fast.weight_grad(a, d, out) is out
    assert torch.equal(out, generic.weight_grad(a, d))
    b = torch.empty(4)
    assert fast.bias_grad(d, b) is b
    assert torch.equal(b, generic.bias_grad(d))
    want = generic.penalize(w, out.clone(), 0.3, 0.7)
    assert fast.penalize(w, out, 0.3, 0.7) is out
    assert torch.equal(out, want)
    assert fast.weight_grad(a, d) is not None  # without out: a new tensor


@pytest.mark.parametrize("config", [
    dict(sizes=(12, 5, 3), activation="sigmoid", output="sigmoid", bias=False, optimizer="sgd",
         l1=0.0, l2=0.5),
    dict(sizes=(12, 8, 6, 3), activation="relu", output="softmax", bias=True, optimizer="adam",
         l1=0.1, l2=0.0),
], ids=["seed", "modern-l1"])
def test_training_steps_equal_the_generic_path_exactly(be, config):
    def train(fast):
        ops_module.set_fast_paths(fast)
        try:
            rng = np.random.default_rng(3)
            mlp = MLP(config["sizes"], activation=config["activation"], output=config["output"],
                      bias=config["bias"])
            params = mlp.init_params(be, rng, "glorot")
            opt = make_optimizer(config["optimizer"])
            state = opt.init(params)
            grad_buffer = torch.empty_like(params)
            for _ in range(4):
                X = be.asarray(rng.normal(size=(16, config["sizes"][0])))
                Y = mlp.one_hot(be.asarray(rng.integers(0, 3, size=16), dtype=be.index_dtype), be.dtype)
                params, state, _ = mlp.train_step(params, opt, state, X, Y, 0.01, config["l1"],
                                                  config["l2"], grad_buffer=grad_buffer)
            return params
        finally:
            ops_module.set_fast_paths(True)

    assert torch.equal(train(True), train(False))


@pytest.mark.parametrize("fast", [True, False])
def test_a_training_step_turns_no_python_scalar_into_a_tensor(be, monkeypatch, fast):
    """array-api-compat makes a tensor of a Python scalar given to ``xp.maximum`` (ReLU,
    the sigmoid loss's softplus) with ``torch.asarray``: on CUDA a host-to-device copy and
    a wait, every step. A step with ReLU, the sigmoid output and both penalties makes none."""
    made = []
    real = torch.asarray

    def spy(obj, *args, **kwargs):
        if isinstance(obj, (bool, int, float, complex)):
            made.append(obj)
        return real(obj, *args, **kwargs)

    rng = np.random.default_rng(0)
    mlp = MLP((6, 5, 3), activation="relu", output="sigmoid")
    params = mlp.init_params(be, rng)
    opt = make_optimizer("adam")
    state = opt.init(params)
    X = be.asarray(rng.normal(size=(8, 6)))
    Y = mlp.one_hot(be.asarray(rng.integers(0, 3, size=8), dtype=be.index_dtype), be.dtype)
    ops_module.set_fast_paths(fast)
    monkeypatch.setattr(torch, "asarray", spy)
    try:
        for _ in range(2):
            params, state, loss = mlp.train_step(params, opt, state, X, Y, 0.01, 1e-3, 1e-3,
                                                 grad_buffer=torch.empty_like(params))
    finally:
        ops_module.set_fast_paths(True)
    assert made == [], f"Python scalars made into tensors during a step: {made}"
    assert torch.isfinite(loss)
