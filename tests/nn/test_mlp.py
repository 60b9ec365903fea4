"""The network's one parameter buffer: its layout, views, packing and initial values."""

from __future__ import annotations

import numpy as np
import pytest

import arraynn
from arraynn.nn import MLP, ParamLayout, draw_weights


def test_layout_offsets_and_sizes():
    layout = MLP((4, 3, 2), bias=True).layout
    assert layout.shapes == [(4, 3), (3,), (3, 2), (2,)]
    assert layout.offsets == [0, 12, 15, 21]
    assert layout.size == 23 and len(layout) == 4
    assert MLP((4, 3, 2)).layout.shapes == [(4, 3), (3, 2)]


def test_views_cut_the_buffer_and_pack_puts_it_back(backend):
    mlp = MLP((4, 3, 2), bias=True)
    flat = backend.asarray(np.arange(23.0))
    views = mlp.layout.views(flat)
    assert [tuple(v.shape) for v in views] == mlp.layout.shapes
    np.testing.assert_array_equal(backend.to_numpy(views[2]), np.arange(15.0, 21.0).reshape(3, 2))
    np.testing.assert_array_equal(backend.to_numpy(mlp.layout.pack(views)), np.arange(23.0))
    assert [tuple(w.shape) for w in mlp.weights(flat)] == [(4, 3), (3, 2)]
    assert [tuple(b.shape) for b in mlp.biases(flat)] == [(3,), (2,)]
    with pytest.raises(ValueError, match="do not match the layout"):
        mlp.layout.pack(views[::-1])


def test_views_share_memory_with_the_buffer_on_numpy():
    flat = np.zeros(10, dtype=np.float32)
    w, b = ParamLayout([(2, 4), (2,)]).views(flat)
    flat += 1.0
    assert w.base is not None and np.all(w == 1.0) and np.all(b == 1.0)


def test_initial_weights_are_drawn_layer_by_layer_and_biases_start_at_zero(backend):
    mlp = MLP((5, 4, 3), bias=True)
    params = backend.to_numpy(mlp.init_params(backend, np.random.default_rng(2), "glorot"))
    rng = np.random.default_rng(2)
    w0, w1 = draw_weights(rng, 5, 4, "glorot"), draw_weights(rng, 4, 3, "glorot")
    W, B = mlp.weights(params), mlp.biases(params)
    np.testing.assert_allclose(W[0], w0, rtol=1e-6)
    np.testing.assert_allclose(W[1], w1, rtol=1e-6)
    assert all(np.all(b == 0) for b in B)
    assert params.dtype == np.dtype(backend.dtype_name)


def test_bad_network_shapes_are_refused():
    with pytest.raises(ValueError, match=">= 2 positive"):
        MLP((4,))
    with pytest.raises(ValueError, match="unknown activation 'gelu'"):
        MLP((4, 2), activation="gelu")
    with pytest.raises(ValueError, match="unknown output"):
        MLP((4, 2), output="linear")
    with pytest.raises(ValueError, match="unknown init"):
        MLP((4, 2)).init_params(arraynn.get_backend("numpy"), np.random.default_rng(0), "zeros")
