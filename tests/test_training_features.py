"""The training features of scikit-learn's MLPClassifier on NNClassifier, on every backend:
sample weights, early stopping with the best weights restored, the adaptive learning rate,
Nesterov momentum, predict_log_proba, and pandas input with feature_names_in_."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
from conftest import assert_on_backend

from arraynn import NNClassifier
from arraynn.nn import MLP, Plateau, validation_split


def _blobs(n=120, d=5, k=3, seed=0, scale=3.0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=scale, size=(k, d))
    y = rng.integers(0, k, size=n)
    return centers[y] + rng.normal(size=(n, d)), y


def _on(backend, **kw):
    """Parameters that put the model on ``backend`` (its device and dtype)."""
    device = None
    if backend.name == "array_api_strict":
        device = backend.device_name if backend.device_name != "CPU_DEVICE" else None
    elif backend.name != "numpy":
        device = backend.device_name
    return dict(backend=backend.name, device=device, dtype=backend.dtype_name, **kw)


def _host(backend, arrays):
    return [backend.to_numpy(a).copy() for a in arrays]


def _tol(backend):
    return dict(rtol=1e-10, atol=1e-12) if backend.dtype_name == "float64" else dict(rtol=2e-5, atol=1e-6)


# --- sample weights ----------------------------------------------------------------------

_FULL_BATCH = dict(n_hidden_units=6, epochs=15, learning_rate=0.002, n_batches=1, random_seed=3,
                   bias=True, l2=0.05)


@pytest.mark.parametrize(("output", "optimizer"), [("softmax", "sgd"), ("sigmoid", "momentum"),
                                                    ("softmax", "adam")])
def test_a_weight_of_two_is_the_row_repeated(backend, output, optimizer):
    # Full-batch training: the weighted batch and the batch with the repeated rows hold the
    # same rows; gradients are summed, so a weight of 2 adds the row's term twice.
    X, y = _blobs(n=40)
    twice = [0, 7, 19]
    w = np.ones(len(X))
    w[twice] = 2.0
    kw = _on(backend, **_FULL_BATCH, output=output, optimizer=optimizer)
    weighted = NNClassifier(**kw).fit(X, y, sample_weight=w)
    repeated = NNClassifier(**kw).fit(np.concatenate([X, X[twice]]), np.concatenate([y, y[twice]]))
    for a, b in zip(weighted.coefs_ + weighted.intercepts_, repeated.coefs_ + repeated.intercepts_):
        assert_on_backend(a, backend)
        np.testing.assert_allclose(backend.to_numpy(a), backend.to_numpy(b), **_tol(backend))
    # the loss per unit of weight is the loss per sample of the repeated set
    np.testing.assert_allclose(weighted.loss_curve_, repeated.loss_curve_, rtol=1e-5)
    # and the weights do something
    plain = NNClassifier(**kw).fit(X, y)
    assert not np.allclose(backend.to_numpy(plain.coefs_[0]), backend.to_numpy(weighted.coefs_[0]),
                           rtol=1e-4, atol=1e-6)


def test_weights_of_one_change_nothing_and_zero_drops_a_row(backend):
    X, y = _blobs(n=40)
    kw = _on(backend, **_FULL_BATCH, output="softmax")
    plain = NNClassifier(**kw).fit(X, y)
    ones = NNClassifier(**kw).fit(X, y, sample_weight=np.ones(len(X)))
    np.testing.assert_allclose(backend.to_numpy(ones.coefs_[0]), backend.to_numpy(plain.coefs_[0]),
                               **_tol(backend))
    w = np.ones(len(X))
    w[:5] = 0.0
    zero = NNClassifier(**kw).fit(X, y, sample_weight=w)
    dropped = NNClassifier(**kw).fit(X[5:], y[5:])
    np.testing.assert_allclose(backend.to_numpy(zero.coefs_[0]), backend.to_numpy(dropped.coefs_[0]),
                               **_tol(backend))


def test_weights_with_shuffled_minibatches_and_partial_fit(backend):
    X, y = _blobs()
    w = np.random.default_rng(1).uniform(0.5, 2.0, size=len(X))
    kw = _on(backend, n_hidden_units=8, epochs=20, learning_rate=0.01, batch_size=16,
             optimizer="adam", output="softmax", bias=True, random_seed=0)
    clf = NNClassifier(**kw).fit(backend.asarray(X), backend.asarray(y), sample_weight=backend.asarray(w))
    assert clf.score(X, y) > 0.9
    part = NNClassifier(**kw)
    for _ in range(3):
        part.partial_fit(X, y, classes=[0, 1, 2], sample_weight=w)
    assert part.n_iter_ == 3 and all(np.isfinite(part.loss_curve_))


def test_weighted_score():
    X, y = _blobs()
    clf = NNClassifier(n_hidden_units=8, epochs=10, random_seed=0).fit(X, y)
    y_bad = y.copy()
    y_bad[:10] = (clf.predict(X[:10]) + 1) % 3  # ten rows certainly wrong
    right = clf.predict(X) == y_bad
    w = np.random.default_rng(0).uniform(0.0, 3.0, size=len(y))
    assert clf.score(X, y_bad, sample_weight=w) == pytest.approx(w[right].sum() / w.sum())
    assert clf.score(X, y_bad, sample_weight=np.ones(len(y))) == pytest.approx(clf.score(X, y_bad))
    only_wrong = np.zeros(len(y))
    only_wrong[:10] = 1.0
    assert clf.score(X, y_bad, sample_weight=only_wrong) == 0.0


@pytest.mark.parametrize(("weights", "match"), [
    (np.ones(3), r"sample_weight.shape == \(3,\), expected \(120,\)"),
    (np.ones((120, 1)), "one weight per sample"),
    (np.r_[-1.0, np.ones(119)], "negative weights.*>= 0"),
    (np.r_[np.nan, np.ones(119)], "NaN or infinity"),
    (np.r_[np.inf, np.ones(119)], "NaN or infinity"),
    (np.zeros(120), "every sample_weight is zero"),
])
def test_bad_sample_weights_are_named(weights, match):
    X, y = _blobs()
    with pytest.raises(ValueError, match=match):
        NNClassifier(epochs=1).fit(X, y, sample_weight=weights)
    clf = NNClassifier(epochs=1).fit(X, y)
    with pytest.raises(ValueError, match=match):
        clf.score(X, y, sample_weight=weights)


def test_the_callers_weights_are_not_changed():
    X, y = _blobs()
    w = np.linspace(0.5, 1.5, len(y))
    before = w.copy()
    NNClassifier(epochs=2, early_stopping=True, random_seed=0).fit(X, y, sample_weight=w)
    np.testing.assert_array_equal(w, before)


# --- early stopping ---------------------------------------------------------------------

def _params_per_epoch(backend):
    seen = []

    def callback(model, info):
        seen.append(_host(backend, [model._state.params])[0])

    return seen, callback


def test_early_stopping_stops_at_the_plateau_and_restores_the_best_weights(backend):
    # The validation labels are the opposite of the training rule: the better the model
    # learns, the worse it scores, so the score peaks in the first epochs.
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 4))
    y = (X[:, 0] > 0).astype(int)
    Xv = rng.normal(size=(100, 4))
    yv = (Xv[:, 0] <= 0).astype(int)
    patience = 3
    clf = NNClassifier(**_on(backend, n_hidden_units=6, epochs=60, learning_rate=0.01, batch_size=20,
                             optimizer="adam", output="softmax", bias=True, random_seed=2,
                             early_stopping=True, n_iter_no_change=patience))
    seen, callback = _params_per_epoch(backend)
    clf.fit(X, y, callback=callback, validation_data=(Xv, yv))
    scores = clf.validation_scores_
    assert len(scores) == clf.n_iter_ == len(clf.loss_curve_) == len(seen)
    best = int(np.argmax(scores))  # the first epoch with the best score
    assert clf.n_iter_ == best + 1 + patience + 1 < 60  # stopped: patience + 1 epochs without a best
    assert clf.best_validation_score_ == scores[best] == max(scores)
    assert clf.best_loss_ is None
    # the model ends with the weights of the best epoch, which training had moved on from
    final = _host(backend, [clf._state.params])[0]
    np.testing.assert_array_equal(final, seen[best])
    assert not np.array_equal(seen[best], seen[best + 1])
    assert clf.score(Xv, yv) == pytest.approx(scores[best])


def test_early_stopping_holds_out_a_stratified_split_of_the_seed(backend):
    X, y = _blobs(n=200)
    kw = _on(backend, n_hidden_units=8, epochs=8, learning_rate=0.01, batch_size=16, optimizer="adam",
             output="softmax", bias=True, random_seed=4, early_stopping=True, validation_fraction=0.2,
             n_iter_no_change=100)
    clf = NNClassifier(**kw)
    sizes = []
    clf.fit(X, y, batch_callback=lambda done, n: sizes.append(n))
    assert sizes[0] == 10  # 160 training rows in batches of 16
    assert len(clf.validation_scores_) == clf.n_iter_ == 8
    best = int(np.argmax(clf.validation_scores_))
    assert clf.best_validation_score_ == clf.validation_scores_[best]
    # the same split and the same scores on NumPy
    ref = NNClassifier(**dict(kw, backend=None, device=None)).fit(X, y)
    np.testing.assert_allclose(clf.validation_scores_, ref.validation_scores_, atol=1 / 40 + 1e-9)
    train, val = validation_split(y, 0.2, np.random.default_rng([4, 0x5EED, 1]))
    assert len(val) == 40 and len(train) == 160 and not set(train) & set(val)
    np.testing.assert_allclose(np.bincount(y[val]) / 40, np.bincount(y) / 200, atol=1 / 40)


def test_early_stopping_resumes_exactly_from_a_checkpoint(tmp_path):
    X, y = _blobs(n=200, scale=1.0)
    kw = dict(n_hidden_units=8, epochs=25, learning_rate=0.02, batch_size=16, optimizer="adam",
              output="softmax", bias=True, random_seed=1, early_stopping=True, n_iter_no_change=4,
              schedule="adaptive", validation_fraction=0.25)
    full = NNClassifier(**kw).fit(X, y)
    paused = NNClassifier(**kw)
    paused.fit(X, y, callback=lambda m, info: info["epoch"] == 3)
    assert paused.n_iter_ == 3
    paused.save(tmp_path / "ckpt.npz")
    resumed = NNClassifier.load(tmp_path / "ckpt.npz").set_params(warm_start=True).fit(X, y)
    thawed = pickle.loads(pickle.dumps(paused)).set_params(warm_start=True).fit(X, y)
    for other in (resumed, thawed):
        assert other.n_iter_ == full.n_iter_
        assert other.validation_scores_ == full.validation_scores_
        assert other.loss_curve_ == full.loss_curve_
        assert other.best_validation_score_ == full.best_validation_score_
        for a, b in zip(full.coefs_ + full.intercepts_, other.coefs_ + other.intercepts_):
            np.testing.assert_array_equal(a, b)
    # a model that stopped is finished: a warm-start fit leaves it as it is
    if full.n_iter_ < 25:
        before = full.coefs_[0].copy()
        full.set_params(warm_start=True).fit(X, y)
        np.testing.assert_array_equal(full.coefs_[0], before)
    # the file of a stopped model restores the same model
    full.save(tmp_path / "final.npz")
    again = NNClassifier.load(tmp_path / "final.npz")
    assert again.validation_scores_ == full.validation_scores_
    np.testing.assert_array_equal(again.predict_proba(X), full.predict_proba(X))


def test_a_split_whose_weights_sum_to_zero_is_refused_before_training():
    X, y = _blobs(n=50)
    w = np.zeros(50)
    w[:2] = 1.0  # too few weighted rows for both parts of a 50 % split
    clf = NNClassifier(n_hidden_units=4, epochs=3, early_stopping=True, validation_fraction=0.5,
                       random_seed=1)
    with pytest.raises(ValueError, match="sum to 0"):
        for seed in range(20):  # some seed puts both weighted rows on one side
            clf.set_params(random_seed=seed).fit(X, y, sample_weight=w)
    assert not hasattr(clf, "classes_") and not hasattr(clf, "_params")
    with pytest.warns(UserWarning, match="validation_data is scored only with early_stopping=True"):
        NNClassifier(n_hidden_units=4, epochs=1).fit(X, y, validation_data=(X[:5], y[:5]))
    with pytest.raises(ValueError, match="every sample_weight is zero"):
        NNClassifier(n_hidden_units=4, epochs=3, early_stopping=True).fit(
            X, y, validation_data=(X[:5], y[:5], np.zeros(5)))


def test_early_stopping_is_refused_by_partial_fit_and_checks_its_parameters():
    X, y = _blobs()
    with pytest.raises(ValueError, match="partial_fit does not support early_stopping"):
        NNClassifier(early_stopping=True).partial_fit(X, y)
    for param, value in [("validation_fraction", 0.0), ("validation_fraction", 1.0),
                         ("n_iter_no_change", 0), ("tol", -1.0), ("early_stopping", "yes"),
                         ("nesterovs_momentum", 1)]:
        with pytest.raises(ValueError, match=param):
            NNClassifier(**{param: value}).fit(X, y)
    clf = NNClassifier(early_stopping=True, validation_fraction=0.01)
    with pytest.raises(ValueError, match="validation set is too small"):
        clf.fit(X[:20], y[:20])
    assert not hasattr(clf, "classes_")  # refused before any work
    with pytest.raises(ValueError, match="validation X has 2 features"):
        clf.fit(X, y, validation_data=(X[:, :2], y))
    with pytest.raises(ValueError, match="not seen in the first fit"):
        clf.fit(X, y, validation_data=(X, y + 5))


def test_without_early_stopping_the_loss_is_watched_and_every_epoch_runs():
    X, y = _blobs()
    clf = NNClassifier(epochs=12, n_iter_no_change=1, tol=10.0, random_seed=0).fit(X, y)
    assert clf.n_iter_ == 12  # the plateau does not stop a constant schedule
    assert clf.best_loss_ == min(clf.loss_curve_)
    assert clf.validation_scores_ is None and clf.best_validation_score_ is None


def test_plateau_follows_scikit_learns_rule():
    p = Plateau(higher_is_better=True, tol=0.01, n_iter_no_change=2)
    events = [p.update(v, 0.1) for v in (0.5, 0.6, 0.605, 0.61, 0.6, 0.7)]
    # 0.605 and 0.61 are new bests but not by tol: they count, and the third such epoch stops
    assert [e[0] for e in events[:4]] == [True, True, True, True]
    assert [e[1] for e in events[:4]] == [None, None, None, None]
    assert events[4] == (False, "stop") and p.stopped
    q = Plateau(higher_is_better=False, tol=0.1, n_iter_no_change=1, adaptive=True)
    assert [q.update(1.0, lr)[1] for lr in (1e-3, 1e-3, 1e-3)] == [None, None, "divide"]
    assert q.divisions == 1 and q.count == 0
    assert [q.update(1.0, 1e-6)[1] for _ in range(2)] == [None, "stop"]
    assert Plateau(higher_is_better=False, tol=0, n_iter_no_change=1).set_state(q.state()).divisions == 1


# --- the adaptive learning rate ---------------------------------------------------------

def test_adaptive_divides_the_rate_by_five_on_a_plateau_and_stops_below_1e_6(backend):
    # tol=1.0: no epoch improves the loss by 1, so every epoch after the first counts
    X, y = _blobs(n=60)
    rates = []
    clf = NNClassifier(**_on(backend, n_hidden_units=5, epochs=100, learning_rate=1e-5,
                             schedule="adaptive", tol=1.0, n_iter_no_change=2, random_seed=0,
                             n_batches=2, optimizer="momentum"))
    clf.fit(X, y, callback=lambda m, info: rates.append(info["learning_rate"]))
    # epochs 1-4 at 1e-5 (epochs 2, 3, 4 count; the third makes a plateau), then 3 epochs
    # at each fifth; a plateau at 4e-7 <= 1e-6 stops
    expected = [1e-5] * 4 + [2e-6] * 3 + [4e-7] * 3
    np.testing.assert_allclose(rates, expected, rtol=1e-12)
    assert clf.n_iter_ == 10 and clf._state.stopping["stopped"] and clf._state.stopping["divisions"] == 2
    assert clf.learning_rate_at(0) == pytest.approx(4e-7)


def test_adaptive_with_early_stopping_watches_the_validation_score():
    X, y = _blobs(n=100)
    rates = []
    clf = NNClassifier(epochs=40, learning_rate=1e-3, schedule="adaptive", early_stopping=True,
                       tol=2.0, n_iter_no_change=1, random_seed=0)
    clf.fit(X, y, callback=lambda m, info: rates.append(info["learning_rate"]))
    # accuracy never improves by 2: a plateau every 2 epochs after the first, 1e-3 -> ... -> 3.2e-7
    assert rates == pytest.approx([1e-3] * 3 + [2e-4] * 2 + [4e-5] * 2 + [8e-6] * 2 + [1.6e-6] * 2
                                  + [3.2e-7] * 2, rel=1e-12)
    assert clf.n_iter_ == 13 and len(clf.validation_scores_) == 13


# --- Nesterov momentum ------------------------------------------------------------------

def test_nesterov_matches_a_hand_computation_and_differs_from_classical_momentum(backend):
    X, y = _blobs(n=30, d=4)
    lr, mu, epochs = 0.01, 0.9, 3
    kw = _on(backend, n_hidden_units=5, epochs=epochs, learning_rate=lr, momentum=mu, n_batches=1,
             optimizer="momentum", output="softmax", bias=True, random_seed=7)
    nesterov = NNClassifier(**kw).fit(X, y)
    classical = NNClassifier(**kw, nesterovs_momentum=False).fit(X, y)
    # by hand, in float64 on the host, from the same initial weights (drawn from the seed):
    # v = mu v - lr g;  w += mu v - lr g
    mlp = MLP((4, 5, 3), activation="sigmoid", output="softmax", bias=True)
    w = mlp.init_params(_numpy64(), np.random.default_rng(7), "uniform")
    Y = np.eye(3)[y]
    v = np.zeros_like(w)
    for _ in range(epochs):
        _, g = mlp.loss_and_grad(w, X, Y)
        v = mu * v - lr * g
        w = w + mu * v - lr * g
    np.testing.assert_allclose(backend.to_numpy(nesterov._state.params), w, rtol=2e-4, atol=2e-5)
    assert not np.allclose(backend.to_numpy(classical._state.params), w, rtol=1e-3, atol=1e-4)


def _numpy64():
    import arraynn

    return arraynn.get_backend("numpy", None, "float64")


def test_nesterov_is_only_the_momentum_optimizers():
    X, y = _blobs(n=30)
    kw = dict(n_hidden_units=5, epochs=3, learning_rate=0.01, random_seed=0)
    for opt in ("sgd", "adam"):
        a = NNClassifier(**kw, optimizer=opt).fit(X, y)
        b = NNClassifier(**kw, optimizer=opt, nesterovs_momentum=False).fit(X, y)
        np.testing.assert_array_equal(a.coefs_[0], b.coefs_[0])
    assert NNClassifier(optimizer="momentum", **kw).fit(X, y)._state.optimizer.nesterov is True


# --- predict_log_proba ------------------------------------------------------------------

@pytest.mark.parametrize("output", ["softmax", "sigmoid"])
def test_predict_log_proba_is_the_log_of_predict_proba_and_finite_where_it_underflows(backend, output):
    X, y = _blobs()
    clf = NNClassifier(**_on(backend, n_hidden_units=8, epochs=20, learning_rate=0.01, batch_size=16,
                             optimizer="adam", output=output, bias=True, activation="relu",
                             init="he", random_seed=0)).fit(X, y)
    Xd = backend.asarray(X)
    log_p = clf.predict_log_proba(Xd)
    assert_on_backend(log_p, backend)
    p = backend.to_numpy(clf.predict_proba(Xd)).astype(np.float64)
    log_p = backend.to_numpy(log_p).astype(np.float64)
    fine = p > 1e-3
    np.testing.assert_allclose(log_p[fine], np.log(p[fine]), rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(np.exp(log_p).sum(axis=1), 1.0, rtol=1e-4)
    # far from the data the probabilities underflow to 0; their logarithms stay finite
    far = backend.asarray(X * 1e4)
    p_far = backend.to_numpy(clf.predict_proba(far))
    log_far = backend.to_numpy(clf.predict_log_proba(far))
    if output == "softmax":
        assert (p_far == 0).any()
    assert np.isfinite(log_far).all() and (log_far <= 0).all()
    assert (log_far.min(axis=1) < -30).all()
    np.testing.assert_array_equal(np.argmax(log_far, axis=1), np.argmax(p_far, axis=1))
    assert isinstance(clf.predict_log_proba(X), np.ndarray)  # NumPy in, NumPy out


# --- pandas -----------------------------------------------------------------------------

def test_dataframe_in_sets_feature_names_in_and_checks_them(backend, tmp_path):
    pd = pytest.importorskip("pandas")
    X, y = _blobs()
    cols = [f"f{i}" for i in range(X.shape[1])]
    df = pd.DataFrame(X, columns=cols)
    clf = NNClassifier(**_on(backend, n_hidden_units=8, epochs=10, random_seed=0, learning_rate=0.05))
    clf.fit(df, pd.Series(y), sample_weight=pd.Series(np.ones(len(y))))
    assert clf.n_features_in_ == 5
    np.testing.assert_array_equal(clf.feature_names_in_, cols)
    assert clf.feature_names_in_.dtype == object
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        proba = clf.predict_proba(df)
        assert clf.score(df, pd.Series(y)) == clf.score(df, y)
    assert isinstance(proba, np.ndarray)
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        np.testing.assert_array_equal(proba, clf.predict_proba(X))
    with pytest.raises(ValueError, match="same order as they were in fit"):
        clf.predict(df[cols[::-1]])
    with pytest.raises(ValueError, match="unseen at fit time:\n- g0"):
        clf.predict(df.rename(columns={"f0": "g0"}))
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        clf.predict(X)
    clf.save(tmp_path / "m.npz")
    np.testing.assert_array_equal(NNClassifier.load(tmp_path / "m.npz").feature_names_in_, cols)
    # fitted on an array: no names, and a DataFrame later is warned about
    plain = NNClassifier(epochs=2, random_seed=0).fit(X, y)
    assert not hasattr(plain, "feature_names_in_")
    with pytest.warns(UserWarning, match="X has feature names, but NNClassifier was fitted without"):
        plain.predict(df)
    # columns named by integers are not feature names; mixed ones are an error
    assert not hasattr(NNClassifier(epochs=1).fit(pd.DataFrame(X), y), "feature_names_in_")
    with pytest.raises(TypeError, match="all input features have string names"):
        NNClassifier(epochs=1).fit(pd.DataFrame(X, columns=["a", 1, "c", "d", "e"]), y)


def test_every_training_feature_at_once_is_the_same_on_every_backend(backend):
    """Sample weights, early stopping, Nesterov momentum, the adaptive rate, dropout and
    shifted images together: one run per backend, the same losses, validation scores
    and best weights as on NumPy."""
    rng = np.random.default_rng(3)
    X = rng.integers(0, 256, size=(150, 6, 6)).astype(np.uint8)
    y = rng.integers(0, 3, size=150)
    X[y == 1, :3, :] //= 4  # something to learn
    w = rng.uniform(0.5, 2.0, size=150)
    kw = dict(n_hidden_units=(10, 8), epochs=12, batch_size=32, random_seed=4, activation="relu",
              output="softmax", optimizer="momentum", learning_rate=0.01, momentum=0.8,
              nesterovs_momentum=True, schedule="adaptive", bias=True, init="he",
              preprocessing="standardize", early_stopping=True, validation_fraction=0.2,
              n_iter_no_change=3, tol=0.0, dropout=[0.2, 0.1], input_dropout=0.1,
              augment_shift=1, augment_flip=True)
    ref = NNClassifier(**kw).fit(X, y, sample_weight=w)
    other = NNClassifier(**_on(backend, **kw)).fit(X, y, sample_weight=w)
    np.testing.assert_allclose(other.loss_curve_, ref.loss_curve_, rtol=1e-4)
    np.testing.assert_allclose(other.validation_scores_, ref.validation_scores_, atol=1e-6)  # float32 sums
    assert other.n_iter_ == ref.n_iter_
    for a, b in zip(ref.coefs_, _host(backend, other.coefs_)):
        np.testing.assert_allclose(b, a, rtol=2e-4, atol=2e-5)
    # the noise and the weights took part: without them the run is another one
    plain = NNClassifier(**{**kw, "dropout": 0.0, "input_dropout": 0.0, "augment_shift": 0,
                            "augment_flip": False}).fit(X, y, sample_weight=w)
    assert not np.allclose(plain.loss_curve_[:3], ref.loss_curve_[:3])
    unweighted = NNClassifier(**kw).fit(X, y)
    assert not np.allclose(unweighted.loss_curve_[:3], ref.loss_curve_[:3])
