"""The benchmark workloads, their data, and their floating-point operations.

==========  =========================================  =====================================
name        network                                    training
==========  =========================================  =====================================
``seed``    784-50-10, sigmoid hidden and output,      SGD lr 0.001 on summed gradients,
            no biases, uniform(-1, 1) initial weights  L2 0.5, 25 fixed minibatches
``modern``  784-256-128-10 ReLU, softmax               Adam lr 1e-3, batch 128, shuffled,
            cross-entropy, biases, He initial weights  no penalty
``cnn``     PyTorch's usual small CNN on 1x28x28:      Adam lr 1e-3, batch 128, shuffled,
            conv 3x3 32 "same", ReLU, max pool 2,      no penalty
            conv 3x3 64 "same", ReLU, max pool 2,
            dense 128, ReLU, dropout 0.3, dense 10;
            softmax cross-entropy, biases, He init
==========  =========================================  =====================================

All train on Fashion-MNIST standardized with the training set's statistics, in
float32. Every implementation gets the same host arrays and the same initial
weights (drawn by :func:`initial_weights` with NumPy, like arraynn does; for ``cnn``
by the network's own ``init_params``, :func:`initial_network_params`). ``seed`` and
``modern`` run by default; ``cnn`` (an epoch on all 60,000 images takes minutes on
two cores) only when asked for (``python -m benchmarks.run --workloads cnn``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["WORKLOADS", "DEFAULT_WORKLOADS", "Workload", "Data", "load_data", "synthetic_data",
           "initial_weights", "initial_network_params", "network", "batch_bounds", "batch_sizes",
           "epoch_flops", "gemm_shapes", "network_gemms", "network_epoch_flops"]

#: The body of the ``cnn`` workload (the layer spec syntax of :mod:`arraynn.nn.layer_spec`);
#: the output layer ``Dense(n_classes)`` follows, as :class:`arraynn.NNClassifier` adds it.
CNN_LAYERS = "conv32k3same,relu,maxpool2,conv64k3same,relu,maxpool2,flatten,dense128,relu,dropout0.3"


@dataclasses.dataclass(frozen=True)
class Workload:
    """One benchmark workload, in :class:`arraynn.NNClassifier` terms."""

    name: str
    hidden: tuple[int, ...]
    activation: str
    output: str
    optimizer: str
    learning_rate: float
    l2: float
    bias: bool
    init: str
    batch_size: int | None  # samples per minibatch (shuffled every epoch), or ...
    n_batches: int | None  # ... a fixed number of unshuffled minibatches (array_split)
    warmup: int  # default untimed epochs
    repeats: int  # default timed epochs
    peers: tuple[str, ...]  # the peer libraries this workload is compared with
    #: The network's body as a layer spec (then ``hidden`` and ``activation`` are unused),
    #: on samples of ``input_shape``; None: the dense network of ``hidden``.
    layers: str | None = None
    input_shape: tuple[int, ...] | None = None
    default: bool = True  # in the default run of ``python -m benchmarks.run``
    timeout: float = 900.0  # default seconds per measurement
    not_compared: str = ""  # why some peers do not run this workload (said under its table)

    @property
    def all_peers(self) -> tuple[str, ...]:
        """The peers that run this workload: the hand-written NumPy one (dense networks
        only) and :attr:`peers`."""
        return self.peers if self.layers else ("numpy", *self.peers)

    def classifier_params(self) -> dict[str, Any]:
        """The :class:`arraynn.NNClassifier` parameters of this workload."""
        params = dict(n_hidden_units=self.hidden, activation=self.activation, output=self.output,
                      optimizer=self.optimizer, learning_rate=self.learning_rate, l2=self.l2,
                      l1=0.0, bias=self.bias, init=self.init, batch_size=self.batch_size,
                      n_batches=self.n_batches or 25,
                      shuffle=self.batch_size is not None)
        if self.layers:  # the layers replace the dense network's parameters
            from arraynn.nn.layer_spec import parse_layers

            del params["n_hidden_units"], params["activation"]
            params.update(layers=parse_layers(self.layers), input_shape=self.input_shape)
        return params

    def layer_sizes(self, n_features: int, n_classes: int) -> tuple[int, ...]:
        return (n_features, *self.hidden, n_classes)

    def describe(self) -> str:
        if self.layers:
            shape = "x".join(str(d) for d in self.input_shape or ())
            batches = f"batch {self.batch_size}, shuffled" if self.batch_size else f"{self.n_batches} batches"
            return (f"{self.layers},dense10 on {shape} images, {self.output}, {self.optimizer} lr "
                    f"{self.learning_rate}, {batches}")
        sizes = "-".join(str(s) for s in self.layer_sizes(784, 10))
        batches = (f"batch {self.batch_size}, shuffled" if self.batch_size
                   else f"{self.n_batches} fixed minibatches")
        pen = f", L2 {self.l2}" if self.l2 else ""
        return (f"{sizes} {self.activation}/{self.output}, {self.optimizer} lr {self.learning_rate}"
                f"{pen}, {batches}")


WORKLOADS: dict[str, Workload] = {
    "seed": Workload("seed", (50,), "sigmoid", "sigmoid", "sgd", 0.001, 0.5, False, "uniform",
                     None, 25, warmup=2, repeats=12, peers=("torch",)),
    "modern": Workload("modern", (256, 128), "relu", "softmax", "adam", 1e-3, 0.0, True, "he",
                       128, None, warmup=1, repeats=6, peers=("torch", "sklearn")),
    # PyTorch's usual small CNN (benchmarks/reference.py --cnn trains it to convergence); not in
    # the default run: an epoch on 60,000 images takes 1-3 minutes on two cores per
    # implementation, hence also the longer timeout per measurement.
    "cnn": Workload("cnn", (), "relu", "softmax", "adam", 1e-3, 0.0, True, "he", 128, None,
                    warmup=1, repeats=2, peers=("torch",), layers=CNN_LAYERS, input_shape=(1, 28, 28),
                    default=False, timeout=3600.0,
                    not_compared="plain NumPy and scikit-learn do not run this workload (no "
                                 "hand-written NumPy convolution; scikit-learn has no convolutional "
                                 "network)"),
}

#: The workloads ``python -m benchmarks.run`` times unless told otherwise.
DEFAULT_WORKLOADS: list[str] = [name for name, wl in WORKLOADS.items() if wl.default]


@dataclasses.dataclass
class Data:
    """Standardized float32 host arrays and where they came from."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    source: str

    @property
    def n_classes(self) -> int:
        return int(max(self.y_train.max(), self.y_test.max())) + 1

    def save(self, directory: Path) -> None:
        for name in ("X_train", "y_train", "X_test", "y_test"):
            np.save(directory / f"{name}.npy", getattr(self, name), allow_pickle=False)
        (directory / "source.txt").write_text(self.source)

    @classmethod
    def load(cls, directory: Path) -> Data:
        arrays = {name: np.load(directory / f"{name}.npy", allow_pickle=False)
                  for name in ("X_train", "y_train", "X_test", "y_test")}
        return cls(**arrays, source=(directory / "source.txt").read_text())


def _standardize(X_train: np.ndarray, X_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Standardize both sets with the training set's statistics (arraynn's Standardizer)."""
    from arraynn.data.preprocessing import Standardizer

    st = Standardizer().fit(X_train.astype(np.float32))
    return (np.ascontiguousarray(st.transform(X_train.astype(np.float32))),
            np.ascontiguousarray(st.transform(X_test.astype(np.float32))))


def load_data(data_dir: str | Path | None = None, limit: int | None = None) -> Data:
    """Fashion-MNIST, standardized, float32, found as arraynn finds it: ``data_dir``, else
    ``$ARRAYNN_DATA``, else the cache (never downloaded: a benchmark does not fetch data)."""
    from arraynn.data import DatasetNotFoundError
    from arraynn.data.fashion_mnist import load_fashion_mnist

    try:
        X_train, y_train, X_test, y_test = load_fashion_mnist(data_dir, download=False)
    except DatasetNotFoundError as exc:
        raise SystemExit(f"{exc}\nGive --data-dir DIR (or set ARRAYNN_DATA), or run with --quick "
                         "for a smoke test on synthetic data") from None
    if limit:
        X_train, y_train = X_train[:limit], y_train[:limit]
    X_train, X_test = _standardize(X_train, X_test)
    return Data(X_train, y_train.astype(np.int64), X_test, y_test.astype(np.int64),
                source=f"Fashion-MNIST ({len(X_train)} training, {len(X_test)} test images)")


def synthetic_data(n_train: int = 768, n_test: int = 256, n_features: int = 784,
                   n_classes: int = 10, seed: int = 0) -> Data:
    """Small separable blobs shaped like Fashion-MNIST (for ``--quick`` and the tests)."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0.0, 1.0, size=(n_classes, n_features))
    y = rng.integers(0, n_classes, size=n_train + n_test)
    X = centers[y] + rng.normal(0.0, 2.0, size=(len(y), n_features))
    X_train, X_test = _standardize(X[:n_train], X[n_train:])
    return Data(X_train, y[:n_train].astype(np.int64), X_test, y[n_train:].astype(np.int64),
                source=f"synthetic blobs ({n_train} training, {n_test} test samples)")


def initial_weights(wl: Workload, sizes: tuple[int, ...], seed: int) -> list[np.ndarray]:
    """The float32 host parameters ``[W0, (b0,) W1, ...]`` that arraynn starts from.

    Drawn exactly as :meth:`arraynn.MLP.init_params` does with
    ``numpy.random.default_rng(seed)`` (arraynn's :class:`NNClassifier` uses its
    ``random_seed`` this way), so every implementation starts from the same network.
    """
    from arraynn.nn import draw_weights

    rng = np.random.default_rng(seed)
    params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        params.append(draw_weights(rng, fan_in, fan_out, wl.init).astype(np.float32))
        if wl.bias:
            params.append(np.zeros(fan_out, dtype=np.float32))
    return params


def batch_bounds(wl: Workload, n: int) -> list[tuple[int, int]]:
    """``(start, stop)`` of each minibatch of one epoch over ``n`` samples (arraynn's)."""
    from arraynn.data.loader import batch_bounds as bounds

    if wl.batch_size is not None:
        return bounds(n, batch_size=min(wl.batch_size, n))
    return bounds(n, n_batches=min(wl.n_batches, n))


def batch_sizes(wl: Workload, n: int) -> list[int]:
    """The minibatch sizes of one epoch over ``n`` samples."""
    return [e - s for s, e in batch_bounds(wl, n)]


def gemm_shapes(sizes: tuple[int, ...], b: int) -> list[tuple[str, int, int, int]]:
    """The matrix products of one minibatch of ``b`` samples: ``(kind, m, k, n)``.

    Layer ``i`` maps ``n_i`` to ``n_{i+1}`` units: forward ``(b, n_i) @ (n_i, n_{i+1})``;
    weight gradient ``(n_i, b) @ (b, n_{i+1})``; and, above the first layer, the
    error passed down ``(b, n_{i+1}) @ (n_{i+1}, n_i)``.
    """
    shapes = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        shapes.append(("forward", b, fan_in, fan_out))
        shapes.append(("weight-grad", fan_in, b, fan_out))
        if i > 0:
            shapes.append(("input-grad", b, fan_out, fan_in))
    return shapes


def epoch_flops(wl: Workload, sizes: tuple[int, ...], n: int) -> int:
    """Floating-point operations of one epoch's matrix products (2 per multiply-add)."""
    return sum(2 * m * k * n_ for b in batch_sizes(wl, n) for _, m, k, n_ in gemm_shapes(sizes, b))



# --------------------------------------------------------------------------------------
# Networks of layers (the cnn workload)
# --------------------------------------------------------------------------------------
def network(wl: Workload, n_classes: int = 10) -> Any:
    """The :class:`arraynn.nn.Sequential` of a workload with ``layers``: its body and the
    output layer ``Dense(n_classes)``, as :class:`arraynn.NNClassifier` builds it."""
    from arraynn.layers import Dense
    from arraynn.nn import Sequential
    from arraynn.nn.layer_spec import parse_layers

    if not wl.layers:
        raise ValueError(f"the {wl.name!r} workload is a dense network, not one of layers")
    return Sequential([*parse_layers(wl.layers), Dense(n_classes, bias=wl.bias)], wl.input_shape or (),
                      output=wl.output)


def initial_network_params(wl: Workload, n_classes: int, seed: int) -> tuple[Any, np.ndarray]:
    """The network of ``wl`` and the float32 flat host buffer arraynn starts it from
    (:meth:`Sequential.init_params` with ``numpy.random.default_rng(seed)``, as
    :class:`arraynn.NNClassifier` draws it from its ``random_seed``)."""
    import arraynn

    net = network(wl, n_classes)
    host = arraynn.get_backend("numpy", dtype="float32")
    flat = net.init_params(host, np.random.default_rng(seed), wl.init)
    return net, np.asarray(flat)


def network_gemms(wl: Workload, b: int, n_classes: int = 10) -> list[dict[str, Any]]:
    """The matrix products of one training step on ``b`` samples of a network of layers.

    Each is ``batch`` products ``(m, k) @ (k, n)``, as arraynn makes them
    (:mod:`arraynn.nn.conv`, :class:`arraynn.layers.Dense`): a convolution of ``F``
    filters over ``c`` channels with ``kh x kw`` kernels and ``P = oh * ow`` outputs
    per channel multiplies, per sample, ``(F, c*kh*kw) @ (c*kh*kw, P)`` forward (the
    im2col columns), ``(F, P) @ (P, c*kh*kw)`` for the kernels' gradient and, where
    the input's gradient is needed (not for the first layer), ``(c*kh*kw, F) @ (F, P)``
    before col2im; a dense layer as in :func:`gemm_shapes`. Pooling and the rest
    multiply no matrices.
    """
    from arraynn.layers import Conv2D, Dense

    net = network(wl, n_classes)
    out = []
    for i, (layer, shape) in enumerate(zip(net.layers, net.input_shapes)):
        name = f"{i}: {type(layer).__name__}"
        if isinstance(layer, Conv2D):
            c = int(shape[0])
            kh, kw = layer.kernel_size
            K, F = c * kh * kw, layer.filters
            oh, ow = layer.output_shape(shape)[1:]
            P = int(oh) * int(ow)
            conv = {"layer": name, "op": "conv", "batch": b}
            out.append({**conv, "kind": "forward", "m": F, "k": K, "n": P})
            out.append({**conv, "kind": "weight-grad", "m": F, "k": P, "n": K})
            if net._need_dx[i]:
                out.append({**conv, "kind": "input-grad", "m": K, "k": F, "n": P})
        elif isinstance(layer, Dense):
            fan_in, units = int(shape[0]), layer.units
            dense = {"layer": name, "op": "dense", "batch": 1}
            out.append({**dense, "kind": "forward", "m": b, "k": fan_in, "n": units})
            out.append({**dense, "kind": "weight-grad", "m": fan_in, "k": b, "n": units})
            if net._need_dx[i]:
                out.append({**dense, "kind": "input-grad", "m": b, "k": units, "n": fan_in})
    return out


def network_epoch_flops(wl: Workload, n: int, n_classes: int = 10) -> int:
    """Floating-point operations of one epoch's matrix products of a network of layers."""
    from collections import Counter

    total = 0
    for b, times in Counter(batch_sizes(wl, n)).items():
        step = network_gemms(wl, b, n_classes)
        total += times * sum(2 * g["batch"] * g["m"] * g["k"] * g["n"] for g in step)
    return total
