"""Layers (arraynn.layers) and the Sequential network: every layer's hand-written
backward pass against a float64 finite difference along random directions, on every
backend; the dense stack of layers against MLP (bit for bit on NumPy); descriptions."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
from _gradcheck import directional_check
from _steps import jax_jit_against_generic

import arraynn
from arraynn import layers
from arraynn.nn import MLP, Sequential, make_optimizer
from arraynn.ops import ops_of


def _r(rng, *shape, scale=1.0):
    return rng.normal(size=shape) * scale


def _layer_case(name, rng):
    """(layer, input shape of one sample, input scale, forward keywords on the host)."""
    if name == "dense":
        return layers.Dense(5), (7,), {}
    if name == "dense-no-bias":
        return layers.Dense(4, bias=False), (6,), {}
    if name in ("relu", "sigmoid", "tanh"):
        return {"relu": layers.ReLU(), "sigmoid": layers.Sigmoid(), "tanh": layers.Tanh()}[name], (9,), {}
    if name == "dropout":
        mask = (rng.random((6, 8)) > 0.3) / 0.7
        return layers.Dropout(0.3), (8,), {"mask": mask}
    if name == "flatten":
        return layers.Flatten(), (2, 3, 4), {}
    raise AssertionError(name)


LAYER_CASES = ["dense", "dense-no-bias", "relu", "sigmoid", "tanh", "dropout", "flatten"]


@pytest.mark.parametrize("name", LAYER_CASES)
def test_each_layer_backward_matches_a_finite_difference(backend64, name):
    be = backend64
    rng = np.random.default_rng(3)
    layer, shape, step = _layer_case(name, rng)
    n = 6
    x = _r(rng, n, *shape)
    if name == "relu":  # away from the kink at 0
        x = np.where(np.abs(x) < 0.1, x + np.sign(x) * 0.2, x)
    params = [_r(rng, *s) for s in layer.param_shapes(shape)]
    out_shape = (n, *layer.output_shape(shape))
    r = _r(rng, *out_shape)  # the loss is sum(y * r): dL/dy = r
    dev_step = {k: be.asarray(v) for k, v in step.items()}

    def loss(x_h, *p_h):
        ops = ops_of(be.asarray(x_h))
        y, _ = layer.forward(ops, [be.asarray(p) for p in p_h], be.asarray(x_h), **dev_step)
        return float(np.sum(be.to_numpy(y) * r))

    xd = be.asarray(x)
    ops = ops_of(xd)
    pd = [be.asarray(p) for p in params]
    y, cache = layer.forward(ops, pd, xd + 0.0, **dev_step)  # the layer may consume its input
    assert tuple(y.shape) == out_shape
    grads = [None] * len(pd)
    # dy is the caller's temporary, which the backward pass may consume: a copy of r
    dx = layer.backward(ops, pd, cache, be.asarray(r.copy()), grads, need_dx=True)
    assert tuple(dx.shape) == x.shape
    host_grads = [be.to_numpy(dx)] + [be.to_numpy(g) for g in grads]
    directional_check(loss, [x, *params], host_grads, rng)
    # need_dx=False skips the input's gradient, the parameters' still come
    grads2 = [None] * len(pd)
    assert layer.backward(ops, pd, cache, be.asarray(r.copy()), grads2, need_dx=False) is None
    for a, b in zip(grads, grads2):
        np.testing.assert_allclose(be.to_numpy(a), be.to_numpy(b))


def test_dense_adds_the_penalty_gradient_to_its_weights_only(backend64):
    be = backend64
    rng = np.random.default_rng(4)
    layer = layers.Dense(3)
    x, W, b, dy = _r(rng, 5, 4), _r(rng, 4, 3), _r(rng, 3), _r(rng, 5, 3)
    ops = ops_of(be.asarray(x))
    _, cache = layer.forward(ops, [be.asarray(W), be.asarray(b)], be.asarray(x))
    grads = [None, None]
    layer.backward(ops, [be.asarray(W), be.asarray(b)], cache, be.asarray(dy.copy()), grads, l1=0.1, l2=0.3)
    np.testing.assert_allclose(be.to_numpy(grads[0]), x.T @ dy + 0.3 * W + 0.1 * np.sign(W), rtol=1e-12)
    np.testing.assert_allclose(be.to_numpy(grads[1]), dy.sum(axis=0), rtol=1e-12)


def _image_net():
    return Sequential([layers.Flatten(), layers.Dropout(0.2), layers.Dense(6), layers.Tanh(),
                       layers.Dense(3, bias=False)], input_shape=(2, 3, 2), output="softmax")


def test_a_whole_network_gradient_matches_a_finite_difference(backend64):
    be = backend64
    rng = np.random.default_rng(5)
    net = _image_net()
    params = be.to_numpy(net.init_params(be, rng, "glorot"))
    X = _r(rng, 7, 2, 3, 2)
    labels = rng.integers(0, 3, size=7)
    Y = np.eye(3)[labels]
    masks = net.dropout_masks(be.asarray(X), 11, 2)
    assert sum(m is not None for m in masks) == 1 and masks[1].shape == (7, 12)

    def loss(p, x):
        total, _ = net.loss_and_grad(be.asarray(p), be.asarray(x), be.asarray(Y), 0.0, 0.2, masks=masks)
        return be.to_float(total) + be.to_float(net.penalty(be.asarray(p), 0.0, 0.2))

    _, g = net.loss_and_grad(be.asarray(params), be.asarray(X), be.asarray(Y), 0.0, 0.2, masks=masks)
    # the input's gradient is not computed by the network: check the parameters alone
    directional_check(lambda p: loss(p, X), [params], [be.to_numpy(g)], rng)


def _dense_stack(act, bias, drop, idrop):
    stack = [layers.Dropout(idrop)] if idrop else []
    for h, r in zip((16, 8), drop):
        stack += [layers.Dense(h, bias), {"relu": layers.ReLU(), "sigmoid": layers.Sigmoid(),
                                          "tanh": layers.Tanh()}[act]]
        stack += [layers.Dropout(r)] if r else []
    return stack + [layers.Dense(4, bias)]


STACKS = [("relu", True, (0.2, 0.1), 0.3, "softmax"), ("sigmoid", False, (0.0, 0.0), 0.0, "sigmoid"),
          ("tanh", True, (0.5, 0.0), 0.0, "softmax")]


@pytest.mark.parametrize("act,bias,drop,idrop,output", STACKS)
def test_a_dense_stack_of_layers_trains_as_mlp(backend, act, bias, drop, idrop, output):
    # The same network written as layers and as MLP: the same weights after eight Adam
    # steps with dropout, L1/L2, sample weights and the gradient buffer; bit for bit on
    # NumPy (the same operations in the same order), to rounding elsewhere.
    be = backend
    rng = np.random.default_rng(0)
    X = rng.normal(size=(8, 32, 20)).astype(np.float32)
    lab = rng.integers(0, 4, size=(8, 32))
    w = rng.uniform(0.5, 2.0, size=32).astype(np.float32)
    nets = [MLP((20, 16, 8, 4), activation=act, output=output, bias=bias, dropout=drop, input_dropout=idrop),
            Sequential(_dense_stack(act, bias, drop, idrop), (20,), output)]
    res = []
    for net in nets:
        p = net.init_params(be, np.random.default_rng(1), "he")
        opt = make_optimizer("adam")
        state = opt.init(p)
        for s in range(8):
            Y = net.one_hot(be.asarray(lab[s], dtype=be.index_dtype), be.dtype)
            p, state, _ = net.train_step(p, opt, state, be.asarray(X[s]), Y, 1e-2, 0.01, 0.1,
                                         sample_weight=be.asarray(w), seed=5)
        res.append(be.to_numpy(p))
    assert nets[0].layout.shapes == nets[1].layout.shapes
    if be.name == "numpy":
        assert res[0].tobytes() == res[1].tobytes()
    else:
        np.testing.assert_allclose(res[0], res[1], rtol=1e-5, atol=1e-6)


def test_the_jax_compiled_step_runs_any_sequential():
    rng = np.random.default_rng(2)
    jax_jit_against_generic(_image_net(), rng.normal(size=(4, 16, 2, 3, 2)).astype(np.float32),
                            rng.integers(0, 3, size=(4, 16)), 0.1, seed=3)


def test_layers_describe_themselves_as_json_and_copy_as_equal_specs():
    stack = [layers.Flatten(), layers.Dropout(0.25), layers.Dense(8, bias=False), layers.ReLU(),
             layers.Dense(3)]
    configs = [layer.config() for layer in stack]
    assert configs[2] == {"layer": "dense", "units": 8, "bias": False}
    assert [layers.layer_from_config(json.loads(json.dumps(c))) for c in configs] == stack
    assert copy.deepcopy(stack) == stack and copy.deepcopy(stack)[2] is not stack[2]
    net = Sequential(stack, (1, 4, 4), "softmax")
    again = Sequential.from_spec(net.spec)
    assert again.spec == net.spec and again.layout.shapes == net.layout.shapes == [(16, 8), (8, 3), (3,)]
    assert repr(stack[2]) == "Dense(units=8, bias=False)"
    pytest.importorskip("sklearn")
    from sklearn.base import clone

    assert clone(stack, safe=False) == stack  # what scikit-learn does with a parameter holding layers


@pytest.mark.parametrize("make, match", [
    (lambda: layers.Dense(0), "positive integer"),
    (lambda: layers.Dense(2.5), "positive integer"),
    (lambda: layers.Dropout(1.0), r"\[0, 1\)"),
    (lambda: layers.Dropout("x"), r"\[0, 1\)"),
    (lambda: layers.Activation("swish"), "unknown activation"),
    (lambda: layers.layer_from_config({"layer": "conv9d"}), "unknown layer 'conv9d'"),
    (lambda: layers.layer_from_config({"layer": "dense", "units": 3, "colour": 1}), "bad description"),
    (lambda: Sequential([layers.Dense(3)], (2, 2)), "put a Flatten"),
    (lambda: Sequential([layers.Dropout(0.1), layers.Dropout(0.2), layers.Dense(2)], (4,)), "same input"),
    (lambda: Sequential([layers.Dense(3), layers.ReLU(), "dense"], (4,)), "arraynn.layers objects"),
    (lambda: Sequential([layers.Flatten()], (2, 2), "softmax").n_outputs and
     Sequential([layers.ReLU()], (2, 2)), "logits must be flat"),
    (lambda: Sequential([layers.Dense(3)], (4,), "linear"), "unknown output"),
])
def test_bad_layers_and_networks_are_clear_errors(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


def test_mlp_trains_to_the_weights_recorded_before_it_was_built_from_layers():
    # tests/fixtures/dense-stack-before-layers.npz: six float64 steps of three dense stacks
    # (dropout, L1/L2, sample weights; Adam, SGD, momentum), trained by MLP as it was
    # before it became a Sequential of layers. The same operations in the same order give
    # the same bits where the BLAS kernels are the same; 1e-12 allows for another CPU's.
    from pathlib import Path

    recorded = np.load(Path(__file__).resolve().parents[1] / "fixtures" / "dense-stack-before-layers.npz")
    be = arraynn.get_backend("numpy", dtype="float64")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(6, 32, 20))
    lab = rng.integers(0, 4, size=(6, 32))
    w = rng.uniform(0.5, 2.0, size=32)
    cases = {"relu-dropout-adam": (dict(activation="relu", output="softmax", bias=True, dropout=(0.2, 0.1),
                                        input_dropout=0.3), "adam"),
             "sigmoid-sgd": (dict(activation="sigmoid", output="sigmoid", bias=False), "sgd"),
             "tanh-momentum": (dict(activation="tanh", output="softmax", bias=True, dropout=(0.5, 0.0)),
                               "momentum")}
    assert set(cases) == set(recorded.files)
    for name, (kw, optimizer) in cases.items():
        net = MLP((20, 16, 8, 4), **kw)
        p = net.init_params(be, np.random.default_rng(1), "he")
        opt = make_optimizer(optimizer)
        state = opt.init(p)
        for s in range(6):
            Y = net.one_hot(be.asarray(lab[s], dtype=be.index_dtype), be.dtype)
            p, state, _ = net.train_step(p, opt, state, be.asarray(X[s]), Y, 1e-2, 0.01, 0.1,
                                         sample_weight=be.asarray(w), seed=5)
        np.testing.assert_allclose(be.to_numpy(p), recorded[name], rtol=1e-12, atol=1e-15, err_msg=name)
