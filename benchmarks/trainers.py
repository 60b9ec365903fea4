"""The implementations being timed: arraynn, plain NumPy, PyTorch, scikit-learn.

Each trainer takes a workload, the data and the number of epochs, trains from the
same initial weights (scikit-learn draws its own), and returns the wall time of
every epoch and the final test accuracy. An epoch's time covers the whole epoch as
the user sees it: drawing the permutation, cutting the minibatches, forward,
backward, update, and fetching the epoch's summed loss to the host once.

A workload of layers (``cnn``) runs on arraynn and PyTorch only: the hand-written
NumPy trainer and scikit-learn's ``MLPClassifier`` know dense networks alone.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from .workloads import Data, Workload, batch_bounds, initial_network_params, initial_weights

__all__ = ["TRAINERS", "train_arraynn", "train_numpy", "train_torch", "train_sklearn"]

SEED = 0


def _sizes(wl: Workload, data: Data) -> tuple[int, ...]:
    return wl.layer_sizes(data.X_train.shape[1], data.n_classes)


def _permutation(seed: int, epoch: int, n: int) -> np.ndarray:
    """The permutation arraynn's loader draws for ``epoch`` (the same batches everywhere)."""
    return np.random.default_rng([seed, epoch]).permutation(n)


# --------------------------------------------------------------------------------------
# arraynn
# --------------------------------------------------------------------------------------
def train_arraynn(wl: Workload, data: Data, epochs: int, backend: str = "numpy",
                  kernels: str = "auto", threads: int | None = None) -> dict[str, Any]:
    """arraynn's :class:`NNClassifier` on ``backend``; epoch times from its callback.

    ``kernels="generic"`` turns arraynn's fast paths off (the generic Array API code);
    ``kernels="ufuncs"`` keeps NumPy's fast path but not its Numba-compiled optimizer
    updates (what a NumPy-only install runs).
    """
    import arraynn
    from arraynn import ops
    from arraynn.ops import numba_kernels

    ops.set_fast_paths(kernels != "generic")
    numba_kernels.set_enabled(kernels == "auto")
    try:
        if backend == "torch" and threads:
            import torch

            torch.set_num_threads(threads)
        clf = arraynn.NNClassifier(**wl.classifier_params(), epochs=epochs, random_seed=SEED,
                                   backend=backend, dtype="float32")
        times: list[float] = []
        clf.fit(data.X_train, data.y_train, callback=lambda c, info: times.append(info["seconds"]))
        accuracy = clf.score(data.X_test, data.y_test)
        used = type(ops.ops_for(clf.backend_.xp)).__name__
        if wl.layers:
            n_params = int(clf._state.net.layout.size)
        else:
            sizes = _sizes(wl, data)
            n_params = sum(a * b + (b if wl.bias else 0) for a, b in zip(sizes[:-1], sizes[1:]))
        compiled = (backend == "numpy" and kernels == "auto" and wl.optimizer in ("adam", "momentum")
                    and n_params >= numba_kernels.MIN_SIZE and numba_kernels.available())
        return {"epoch_seconds": times, "accuracy": accuracy, "final_loss": clf.loss_curve_[-1],
                "dtype": clf.backend_.dtype_name, "device": clf.backend_.device_name,
                "kernels_class": used, "numba_updates": compiled}
    finally:
        ops.set_fast_paths(True)
        numba_kernels.set_enabled(True)


# --------------------------------------------------------------------------------------
# Plain NumPy: the same math written directly with NumPy, as one would by hand
# --------------------------------------------------------------------------------------
def train_numpy(wl: Workload, data: Data, epochs: int, **_: Any) -> dict[str, Any]:
    """The same network, batches and updates, hand-written with NumPy (float32).

    Written the way a careful NumPy user would: arrays stay float32 (Python-float
    hyperparameters), optimizer buffers are updated in place, and the namespace is
    NumPy itself. It is the reference for the cost of arraynn's Array API layer.
    """
    if wl.layers:
        raise ValueError(f"the plain NumPy trainer knows dense networks only, not the {wl.name!r} workload")
    X, y = data.X_train, data.y_train
    n, n_classes = X.shape[0], data.n_classes
    sizes = _sizes(wl, data)
    params = initial_weights(wl, sizes, SEED)
    L = len(sizes) - 1
    step = 2 if wl.bias else 1
    relu = wl.activation == "relu"
    softmax = wl.output == "softmax"
    lr, l2 = wl.learning_rate, wl.l2
    b1, b2, eps = 0.9, 0.999, 1e-8
    ms = [np.zeros_like(p) for p in params]
    vs = [np.zeros_like(p) for p in params]
    t = 0
    eye = np.eye(n_classes, dtype=np.float32)
    bounds = batch_bounds(wl, n)

    def act(z: np.ndarray) -> np.ndarray:
        return np.maximum(z, 0.0) if relu else 0.5 * np.tanh(0.5 * z) + 0.5

    def act_grad(a: np.ndarray, g: np.ndarray) -> np.ndarray:
        return np.where(a > 0.0, g, 0.0) if relu else g * (a * (1.0 - a))

    times = []
    for epoch in range(epochs):
        start = time.perf_counter()
        perm = _permutation(SEED, epoch, n) if wl.batch_size else None
        total = np.float32(0.0)
        for s, e in bounds:
            if perm is None:
                Xb, yb = X[s:e], y[s:e]
            else:
                idx = perm[s:e]
                Xb, yb = X[idx], y[idx]
            Y = eye[yb]
            # forward
            acts = [Xb]
            a = Xb
            for i in range(L):
                z = a @ params[step * i]
                if wl.bias:
                    z += params[step * i + 1]
                a = act(z) if i < L - 1 else z
                acts.append(a)
            z = acts.pop()
            # loss and output error term
            if softmax:
                shifted = z - z.max(axis=1, keepdims=True)
                ez = np.exp(shifted)
                s_ = ez.sum(axis=1, keepdims=True)
                total += -(Y * (shifted - np.log(s_))).sum()
                delta = ez / s_ - Y
            else:
                total += (np.maximum(z, 0.0) + np.log1p(np.exp(-np.abs(z))) - Y * z).sum()
                delta = 0.5 * np.tanh(0.5 * z) + 0.5 - Y
            # backward
            grads: list[Any] = [None] * len(params)
            for i in range(L - 1, -1, -1):
                W = params[step * i]
                gW = acts[i].T @ delta
                if l2:
                    gW += l2 * W
                grads[step * i] = gW
                if wl.bias:
                    grads[step * i + 1] = delta.sum(axis=0)
                if i > 0:
                    delta = act_grad(acts[i], delta @ W.T)
            # update
            if wl.optimizer == "sgd":
                for p, g in zip(params, grads):
                    p -= lr * g
            else:
                t += 1
                c2 = (1.0 - b2**t) ** 0.5
                lr_t = lr * c2 / (1.0 - b1**t)
                eps_t = eps * c2
                for p, g, m, v in zip(params, grads, ms, vs):
                    m *= b1
                    m += (1.0 - b1) * g
                    v *= b2
                    v += (1.0 - b2) * (g * g)
                    p -= lr_t * (m / (np.sqrt(v) + eps_t))
        if l2:
            total += len(bounds) * 0.5 * l2 * sum(float((params[step * i] ** 2).sum()) for i in range(L))
        float(total)
        times.append(time.perf_counter() - start)
    a = data.X_test
    for i in range(L):
        z = a @ params[step * i] + (params[step * i + 1] if wl.bias else 0.0)
        a = act(z) if i < L - 1 else z
    accuracy = float(np.mean(a.argmax(axis=1) == data.y_test))
    return {"epoch_seconds": times, "accuracy": accuracy, "final_loss": float(total) / n,
            "dtype": str(params[0].dtype), "device": "cpu"}


# --------------------------------------------------------------------------------------
# PyTorch
# --------------------------------------------------------------------------------------
def train_torch(wl: Workload, data: Data, epochs: int, threads: int | None = None,
                **_: Any) -> dict[str, Any]:
    """The same network in ``torch.nn`` on the CPU, float32, autograd and torch.optim.

    Matches the math: summed losses (``reduction="sum"``), so gradients are summed
    over the minibatch; the seed workload's sigmoid output with binary cross-entropy
    on logits (gradient ``sigmoid(z) - y``) and L2 as SGD's ``weight_decay`` (adds
    ``l2 * w`` to the summed gradient, as arraynn does). Adam is torch's default
    implementation. A workload of layers (``cnn``) is the same network in ``torch.nn``
    (``Conv2d``, ``MaxPool2d``, ``Linear``, ``Dropout``, ...) with arraynn's initial
    weights (:func:`torch_network`).
    """
    import torch

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(SEED)
    if wl.layers:
        return _train_torch_network(wl, data, epochs)
    sizes = _sizes(wl, data)
    host = initial_weights(wl, sizes, SEED)
    step = 2 if wl.bias else 1
    layers: list[Any] = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        lin = torch.nn.Linear(fan_in, fan_out, bias=wl.bias)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(host[step * i].T.copy()))
            if wl.bias:
                lin.bias.copy_(torch.from_numpy(host[step * i + 1]))
        layers.append(lin)
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU() if wl.activation == "relu" else torch.nn.Sigmoid())
    model = torch.nn.Sequential(*layers)
    if wl.optimizer == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=wl.learning_rate)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=wl.learning_rate, weight_decay=wl.l2)
    X = torch.from_numpy(data.X_train)
    y = torch.from_numpy(data.y_train)
    n, n_classes = X.shape[0], data.n_classes
    eye = torch.eye(n_classes, dtype=torch.float32)
    bounds = batch_bounds(wl, n)
    if wl.output == "softmax":
        def loss_fn(z: Any, yb: Any) -> Any:
            return torch.nn.functional.cross_entropy(z, yb, reduction="sum")
    else:
        def loss_fn(z: Any, yb: Any) -> Any:
            return torch.nn.functional.binary_cross_entropy_with_logits(z, eye[yb], reduction="sum")
    times, total = _torch_epochs(model, opt, loss_fn, X, y, bounds, wl, epochs)
    with torch.no_grad():
        pred = model(torch.from_numpy(data.X_test)).argmax(dim=1).numpy()
    return {"epoch_seconds": times, "accuracy": float(np.mean(pred == data.y_test)),
            "final_loss": float(total) / n, "dtype": str(model[0].weight.dtype).replace("torch.", ""),
            "device": "cpu", "torch_threads": torch.get_num_threads()}


def _torch_epochs(model: Any, opt: Any, loss_fn: Any, X: Any, y: Any, bounds: list[tuple[int, int]],
                  wl: Workload, epochs: int) -> tuple[list[float], Any]:
    """``epochs`` timed epochs of PyTorch's training loop over ``bounds`` (the minibatches
    reshuffled with the permutation every peer uses); the epoch times and the last epoch's
    summed loss."""
    import torch

    n = X.shape[0]
    times, total = [], torch.zeros(())
    for epoch in range(epochs):
        start = time.perf_counter()
        perm = torch.from_numpy(_permutation(SEED, epoch, n)) if wl.batch_size else None
        total = torch.zeros(())
        for s, e in bounds:
            if perm is None:
                Xb, yb = X[s:e], y[s:e]
            else:
                idx = perm[s:e]
                Xb, yb = X[idx], y[idx]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(Xb), yb)
            loss.backward()
            opt.step()
            total += loss.detach()
        total.item()
        times.append(time.perf_counter() - start)
    return times, total


def torch_network(wl: Workload, n_classes: int) -> Any:
    """The network of a workload of layers in ``torch.nn``, from arraynn's initial weights."""
    from .conv_step import torch_model

    net, flat = initial_network_params(wl, n_classes, SEED)
    return torch_model(net, flat)


def check_torch_network_workload(wl: Workload) -> None:
    """Stop unless the PyTorch trainers of networks of layers can run ``wl`` as arraynn
    does: Adam on a softmax output, no penalty."""
    if wl.optimizer != "adam" or wl.output != "softmax" or wl.l2:
        raise ValueError(f"the PyTorch trainer of networks of layers runs Adam on softmax without a "
                         f"penalty, not the {wl.name!r} workload")


def _train_torch_network(wl: Workload, data: Data, epochs: int) -> dict[str, Any]:
    """:func:`train_torch` for a workload of layers: images of ``wl.input_shape``, summed
    cross-entropy, ``torch.optim.Adam``, dropout on while training and off to predict."""
    import torch

    check_torch_network_workload(wl)
    shape = tuple(wl.input_shape or ())
    model = torch_network(wl, data.n_classes)
    opt = torch.optim.Adam(model.parameters(), lr=wl.learning_rate)
    n = data.X_train.shape[0]
    X = torch.from_numpy(data.X_train).reshape(n, *shape)
    y = torch.from_numpy(data.y_train)
    bounds = batch_bounds(wl, n)
    model.train()

    def loss_fn(z: Any, yb: Any) -> Any:
        return torch.nn.functional.cross_entropy(z, yb, reduction="sum")

    times, total = _torch_epochs(model, opt, loss_fn, X, y, bounds, wl, epochs)
    model.eval()
    X_test = torch.from_numpy(data.X_test).reshape(data.X_test.shape[0], *shape)
    with torch.no_grad():  # in chunks: the first convolution's output of 10,000 images is 1 GB
        pred = torch.cat([model(X_test[s:s + 1000]).argmax(dim=1) for s in range(0, X_test.shape[0], 1000)])
    conv = next(m for m in model if isinstance(m, torch.nn.Conv2d))
    return {"epoch_seconds": times, "accuracy": float(np.mean(pred.numpy() == data.y_test)),
            "final_loss": float(total) / n, "dtype": str(conv.weight.dtype).replace("torch.", ""),
            "device": "cpu", "torch_threads": torch.get_num_threads()}


# --------------------------------------------------------------------------------------
# scikit-learn
# --------------------------------------------------------------------------------------
def train_sklearn(wl: Workload, data: Data, epochs: int, **_: Any) -> dict[str, Any]:
    """``MLPClassifier`` with the same layers, Adam, batch size and learning rate.

    One ``fit`` call with ``warm_start=True`` and ``max_iter=1`` is one epoch (its
    time includes ``fit``'s input validation, as a user pays it); no L2
    (``alpha=0``); its own Glorot initial weights. Given float32 input, recent
    scikit-learn trains in float32 (the dtype is reported).
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    if wl.optimizer != "adam" or wl.output != "softmax" or wl.layers:
        raise ValueError(f"scikit-learn's MLPClassifier cannot run the {wl.name!r} workload")
    clf = MLPClassifier(hidden_layer_sizes=wl.hidden, activation=wl.activation, solver="adam",
                        alpha=0.0, batch_size=wl.batch_size, learning_rate_init=wl.learning_rate,
                        max_iter=1, shuffle=True, random_state=SEED, warm_start=True, tol=0.0,
                        n_iter_no_change=10**9)
    times = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for _epoch in range(epochs):
            start = time.perf_counter()
            clf.fit(data.X_train, data.y_train)
            times.append(time.perf_counter() - start)
    return {"epoch_seconds": times, "accuracy": float(clf.score(data.X_test, data.y_test)),
            "final_loss": float(clf.loss_), "dtype": str(clf.coefs_[0].dtype), "device": "cpu"}


TRAINERS: dict[str, Callable[..., dict[str, Any]]] = {
    "arraynn": train_arraynn,
    "numpy": train_numpy,
    "torch": train_torch,
    "sklearn": train_sklearn,
}
