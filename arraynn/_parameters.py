"""The estimator's parameters and learned attributes, declared once.

The valid values of each choice parameter (:data:`CHOICES`), each number parameter
(:data:`INTERVALS`) and each flag (:data:`FLAGS`) are read by the estimator's validation
(:func:`arraynn._validation.check_params`), by the command line's choices and flag types,
and by the documentation; each
parameter's description (:data:`PARAMETERS`) makes the ``Parameters`` section of
:class:`arraynn.NNClassifier`'s docstring and can be read one at a time
(:func:`describe`), as ``--help`` texts do; :data:`CLASS_DOC` is the whole class
docstring.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from .nn import INITIALIZERS, OPTIMIZERS, SCHEDULES
from .ops import ACTIVATIONS, OUTPUTS

__all__ = ["ATTRIBUTES", "CHOICES", "CLASS_DOC", "FLAGS", "INTERVALS", "Interval", "PARAMETERS", "describe"]

#: The valid values of each choice parameter (``preprocessing`` also takes None).
CHOICES: dict[str, tuple[str, ...]] = {
    "activation": ACTIVATIONS,
    "output": OUTPUTS,
    "optimizer": tuple(OPTIMIZERS),
    "init": INITIALIZERS,
    "schedule": SCHEDULES,
    "dtype": ("float32", "float64"),
    "preprocessing": ("standardize", "per-set", "unit", "none"),
}

@dataclass(frozen=True)
class Interval:
    """The valid values of a number parameter: a ``kind`` (int or float; never a bool) in
    ``[low, high)`` (``(low, high)`` with ``low_open``), or None where ``none``. ``text``
    says it in words (derived when not given)."""

    kind: type
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    none: bool = False
    text: str = ""

    def contains(self, value: Any) -> bool:
        """Whether ``value`` is valid."""
        if value is None:
            return self.none
        kinds: tuple[type, ...] = (int, np.integer)
        if self.kind is not int:
            kinds = (int, float, np.integer, np.floating)
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, kinds):
            return False
        v = float(cast(Any, value))
        if not math.isfinite(v):
            return False
        if self.low is not None and not (v > self.low if self.low_open else v >= self.low):
            return False
        return self.high is None or v < self.high

    def describe(self) -> str:
        """The valid values in words: "a positive integer", "a number >= 0 and < 1", ..."""
        if self.text:
            return self.text
        if self.kind is int:
            if self.low == 1 and not self.low_open and self.high is None:
                return "a positive integer"
            words = f"an integer >= {self.low:g}"
        else:
            words = f"a number {'>' if self.low_open else '>='} {self.low:g}"
        return words + ("" if self.high is None else f" and < {self.high:g}")

    def check(self, name: str, value: Any) -> None:
        """A ValueError naming the parameter, its valid values and the value, unless valid."""
        if not self.contains(value):
            raise ValueError(f"{name} must be {self.describe()}, got {value!r}")


#: The valid values of each number parameter (read by the estimator's checks and by the
#: command line's flag types). ``n_batches`` counts only without ``batch_size``.
INTERVALS: dict[str, Interval] = {
    "epochs": Interval(int, 1),
    "n_classes": Interval(int, 1, none=True),
    "n_features": Interval(int, 1, none=True),
    "batch_size": Interval(int, 1, none=True),
    "n_batches": Interval(int, 1),
    "n_iter_no_change": Interval(int, 1),
    "random_seed": Interval(int, 0, none=True, text="None or an integer >= 0"),
    "augment_shift": Interval(int, 0, 128, text="an integer 0 .. 127 (pixels)"),
    "learning_rate": Interval(float, 0.0, low_open=True),
    "l1": Interval(float, 0.0),
    "l2": Interval(float, 0.0),
    "momentum": Interval(float, 0.0, 1.0),
    "beta_1": Interval(float, 0.0, 1.0),
    "beta_2": Interval(float, 0.0, 1.0),
    "epsilon": Interval(float, 0.0, low_open=True),
    "tol": Interval(float, 0.0),
    "validation_fraction": Interval(float, 0.0, 1.0, low_open=True),
}

#: The parameters that are True or False (``shuffle`` also takes None).
FLAGS: tuple[str, ...] = ("bias", "tf32", "warm_start", "verbose", "early_stopping", "nesterovs_momentum",
                          "augment_flip")

#: ``(names, type, description)`` of each constructor parameter, in the signature's
#: order (numpydoc; ``{choices}`` in a type is the parameter's :data:`CHOICES`).
PARAMETERS: tuple[tuple[str, str, str], ...] = (
    ('n_classes', 'int, optional',
     """\
Number of classes; inferred from ``y`` at ``fit`` when omitted. When given,
labels must be the integers ``0 .. n_classes-1``."""),
    ('n_features', 'int, optional',
     """\
Number of input features; inferred from ``X`` when omitted."""),
    ('n_hidden_units', 'int or sequence of int',
     """\
Units of the hidden layer, or one entry per hidden layer (or ``layers``)."""),
    ('l1, l2', 'float',
     """\
Penalties ``l1*sum|w| + l2/2*sum w**2`` on the weights; their gradients
``l1*sign(w) + l2*w`` are added to every minibatch's summed gradient."""),
    ('epochs', 'int',
     """\
Passes over the training set."""),
    ('learning_rate', 'float',
     """\
Step size. With ``"sgd"`` the update is ``w -= learning_rate * g`` where ``g``
is the gradient summed over the minibatch (the article's)."""),
    ('n_batches', 'int',
     """\
Number of minibatches per epoch, split as ``numpy.array_split`` (the article's
fixed batches). Ignored when ``batch_size`` is set."""),
    ('random_seed', 'int, optional',
     """\
Seed of the initial weights and of the shuffling. ``None`` draws one (stored
in ``random_seed_``)."""),
    ('activation', '{choices}',
     """\
Hidden-layer activation."""),
    ('output', '{choices}',
     """\
Output layer: the article's independent sigmoids, or a softmax."""),
    ('optimizer', '{choices}',
     """\
"""),
    ('batch_size', 'int, optional',
     """\
Samples per minibatch, an alternative to ``n_batches``."""),
    ('shuffle', 'bool, optional',
     """\
Reshuffle every epoch. Default: ``False`` with ``n_batches`` (the article's
fixed batches), ``True`` with ``batch_size``."""),
    ('bias', 'bool',
     """\
Give every layer a bias vector (the article's network has none)."""),
    ('init', '{choices}',
     """\
Initial weights: ``"uniform"`` is the article's U(-1, 1)."""),
    ('momentum', 'float',
     """\
Momentum of the ``"momentum"`` optimizer."""),
    ('nesterovs_momentum', 'bool',
     """\
With ``optimizer="momentum"``: Nesterov's momentum (scikit-learn's default),
``w += momentum * v - learning_rate * g`` with the new velocity ``v``;
``False``: classical momentum, ``w += v``. Other optimizers ignore it."""),
    ('beta_1, beta_2, epsilon', 'float',
     """\
Adam's parameters."""),
    ('schedule', '{choices}',
     """\
Learning rate of epoch ``e`` (0-based): constant, or cosine decay
``learning_rate * (1 + cos(pi * e / epochs)) / 2`` (both depend only on the
epoch number, so a resumed run follows the same schedule), or
scikit-learn's ``"adaptive"``: constant until the monitored number (the
validation score with ``early_stopping``, else the training loss) fails to
improve by ``tol`` for more than ``n_iter_no_change`` epochs in a row, then
divided by 5; such a plateau at a rate of 1e-6 or less stops training. Its
state is saved with the model, so a resumed run divides at the same epochs.
(scikit-learn's documentation says two epochs: its code, followed here, counts
``n_iter_no_change``; set ``n_iter_no_change=2`` for that.)"""),
    ('early_stopping', 'bool',
     """\
Hold out ``validation_fraction`` of the training data (stratified, drawn from
the seed), score it after every epoch (``validation_scores_``), stop when the
score has not improved by ``tol`` for more than ``n_iter_no_change`` epochs,
and end with the weights of the best epoch (kept on the device when a new
best appears). ``fit(..., validation_data=(X_val, y_val))`` scores a
validation set of your own instead. Not with ``partial_fit``."""),
    ('validation_fraction', 'float',
     """\
The share of the training data held out by ``early_stopping`` (0 < f < 1)."""),
    ('n_iter_no_change', 'int',
     """\
Epochs without an improvement of ``tol`` that ``early_stopping`` and the
``"adaptive"`` schedule tolerate. Without either, training runs all
``epochs`` (unlike MLPClassifier, which also stops on the training loss:
here the number of epochs is the user's, as in the article)."""),
    ('tol', 'float',
     """\
The improvement that counts, in accuracy (early stopping) or in the loss."""),
    ('backend', 'str or Backend, optional',
     """\
Where to compute. ``None`` computes where the input lives (NumPy in, NumPy
out). A name (``"numpy"``, ``"cupy"``, ``"torch"``, ``"jax"``,
``"array_api_strict"``, ``"auto"``) moves inputs there."""),
    ('device', 'str, optional',
     """\
Device of ``backend`` (``"cuda:0"``, ``"device1"``, ...)."""),
    ('dtype', '{choices}',
     """\
Dtype of the weights and computations."""),
    ('tf32', 'bool',
     """\
Let float32 matmuls use TF32 tensor cores on NVIDIA GPUs (faster, 10-bit
mantissa inputs). Off by default; it sets the library's process-wide flag at
``fit`` (and turns it off when ``False``). ``tf32_`` says whether it is in effect."""),
    ('warm_start', 'bool',
     """\
When fitted already, ``fit`` continues from the learned weights and optimizer
state until ``n_iter_`` reaches ``epochs`` (a checkpoint resumes this way:
``epochs`` is the total, not a number of further epochs). A model that has
reached ``epochs``, or whose training was stopped by ``early_stopping`` or the
``"adaptive"`` schedule, is finished: ``fit`` returns it as it is, with a
warning saying how to go on (``partial_fit``, a larger ``epochs``, or
``warm_start=False`` to train afresh). Without ``warm_start`` (the default,
also of the models a run of ``python -m arraynn.train`` saves), ``fit``
starts afresh, as scikit-learn's estimators do."""),
    ('verbose', 'bool',
     """\
Print one line per epoch."""),
    ('preprocessing', '{choices}, optional',
     """\
Preprocess the inputs inside the estimator (:class:`arraynn.Preprocessor`):
``fit`` learns the scheme on its ``X`` (the first call's, with
``partial_fit``) and every method then takes raw inputs, e.g. uint8 pixels.
Training keeps uint8 inputs as uint8 on the device (a quarter of float32's
memory) and preprocesses each minibatch, after its augmentation. The fitted
scheme is ``preprocessor_`` and is saved with the model.
``None`` (default): the inputs are used as given."""),
    ('class_names', 'sequence of str, optional',
     """\
A name for each class, in the order of ``classes_`` (``class_names_``);
saved with the model and printed by ``python -m arraynn.predict``."""),
    ('dropout', 'float or sequence of float',
     """\
Inverted dropout after each hidden layer, during training only: a rate in
``[0, 1)`` for every hidden layer, or one per hidden layer. Kept units are
scaled by ``1 / (1 - rate)``; ``predict`` uses the whole network unchanged.
The masks are drawn on the device from ``random_seed`` and the step counter
(:mod:`arraynn.nn.random`): the same on every backend. Default 0 (none)."""),
    ('input_dropout', 'float',
     """\
Dropout of the input features during training, the same way (a rate in
``[0, 1)``; default 0)."""),
    ('augment_shift', 'int',
     """\
On-device augmentation of image inputs: every training image is moved by a
random offset of up to this many pixels vertically and horizontally (per
image and step, blank pixels filling the border; labels unchanged). Images
are square (``n_features`` a square number, or given as ``(n, height, width)``)
and shifted in pixel space: with ``preprocessing``, each minibatch of raw images is
shifted, then preprocessed (for inputs preprocessed beforehand, ``fit``'s
``preprocessed_with`` maps them back to pixels first). Default 0 (none)."""),
    ('augment_flip', 'bool',
     """\
Also mirror each training image left to right with probability 1/2 (per image
and step, on the device; for classes that do not depend on left and right, as
Fashion-MNIST's). Default False."""),
    ('blas_threads', 'int, optional',
     """\
The number of threads of the BLAS library (OpenBLAS, MKL, ...) during ``fit``,
``partial_fit``, ``predict``, ``predict_proba``, ``predict_log_proba`` and
``score`` (with ``threadpoolctl``'s ``threadpool_limits``; the previous count is
restored afterwards). Matrix products round differently with other thread
counts, and joblib's worker processes (``n_jobs`` of scikit-learn's searches)
run BLAS with fewer threads than the main process: ``blas_threads=1`` gives a
worker exactly the results of the main process. ``None`` (default): the
library's own count. Needs ``threadpoolctl`` (installed with scikit-learn)."""),
    ('layers', 'list of arraynn.layers objects, optional',
     """\
The network's body as a list of layers (``[layers.Dense(64), layers.ReLU(),
layers.Dropout(0.1), ...]``), instead of ``n_hidden_units``, ``activation``,
``dropout`` and ``input_dropout`` (giving one of those too is an error). The
estimator adds the output layer, ``Dense(n_classes, bias=bias)``, for the classes
it finds in ``y``, and ``output`` is its loss. A dense stack written as layers
trains to the same weights as its ``n_hidden_units`` spelling. Convolutions and
pooling (``layers.Conv2D``, ``layers.MaxPool2D``, ...) take images: ``X`` shaped
``(n, channels, height, width)`` or ``(n, height, width)``, or flat rows with
``input_shape``."""),
    ('input_shape', '(channels, height, width) or (height, width), optional',
     """\
What one row of flat ``X`` is to a network of ``layers`` with convolutions or
pooling (rows are read in C order, PyTorch's layout); its product must be the
number of features. Not needed for images given as such."""),
)

#: ``(name, type, description)`` of each learned attribute.
ATTRIBUTES: tuple[tuple[str, str, str], ...] = (
    ('classes_', 'ndarray',
     """\
The class labels (host NumPy array)."""),
    ('n_features_in_', 'int',
     """\
"""),
    ('coefs_, intercepts_', 'list of arrays',
     """\
Weight matrices ``(n_in, n_out)`` and bias vectors (empty without biases), as
arrays of the training backend."""),
    ('feature_names_in_', 'ndarray of str',
     """\
The column names of a pandas DataFrame given to ``fit`` (only when they are
all strings); ``predict`` and ``score`` then check the names they are given."""),
    ('input_shape_', 'tuple of int',
     """\
One sample as the network takes it: ``(channels, height, width)`` for ``layers``
with convolutions or pooling, else ``(n_features_in_,)``."""),
    ('image_shape_', '(int, int) or None',
     """\
``(height, width)`` when ``fit`` was given images as ``(n, height, width)``: the
shape ``augment_shift`` and ``augment_flip`` move them in (else rows are read as
square images)."""),
    ('loss_curve_', 'list of float',
     """\
Per epoch: mean cross-entropy per sample plus the penalty per sample (the
penalty at the epoch's final weights, counted once per minibatch); with
``sample_weight``, per unit of weight."""),
    ('validation_scores_', 'list of float or None',
     """\
With ``early_stopping``: the validation accuracy after each epoch."""),
    ('best_validation_score_', 'float or None',
     """\
With ``early_stopping``: the best of ``validation_scores_``, whose weights the
model has after ``fit``."""),
    ('best_loss_', 'float or None',
     """\
Without ``early_stopping``: the lowest training loss (``None`` with it)."""),
    ('error_', 'list of float',
     """\
The article's name for ``loss_curve_``."""),
    ('n_iter_', 'int',
     """\
Epochs run."""),
    ('backend_', 'Backend',
     """\
Where the model lives."""),
    ('tf32_', 'bool',
     """\
Whether TF32 matmuls were in effect."""),
    ('random_seed_', 'int',
     """\
The seed used."""),
    ('preprocessor_', 'Preprocessor or None',
     """\
What ``predict``, ``predict_proba`` and ``score`` apply to their input before
the network (None: nothing). Set by ``fit`` from ``preprocessing``, or loaded
with the model (a run of ``python -m arraynn.train`` saves its own)."""),
    ('class_names_', 'list of str or None',
     """\
The classes' names, in the order of ``classes_``."""),
    ('input_range_', '(float, float) or None',
     """\
With ``preprocessor_``: the smallest and largest raw input value the model was
fitted on (saved with the model). ``predict``, ``predict_proba`` and ``score``
warn (:class:`InputRangeWarning`) when their input is clearly outside it:
negative where the training inputs had no negative value, or all at most 1 (and
not all 0) where they went above 10 (standardized or scaled inputs given to a model that
preprocesses raw ones itself). One minimum and maximum over the input."""),
)


def _type(names: str, typ: str) -> str:
    if "{choices}" not in typ:
        return typ
    values = ", ".join(f'"{v}"' for v in CHOICES[names])
    return typ.replace("{choices}", "{" + values + "}")


def describe(name: str) -> str:
    """The description of the parameter ``name`` (one paragraph, lines joined)."""
    for names, _, text in PARAMETERS:
        if name in (n.strip() for n in names.split(",")):
            return " ".join(text.split())
    raise KeyError(f"{name!r} is not a parameter of NNClassifier")


def _section(title: str, entries: tuple[tuple[str, str, str], ...]) -> str:
    lines = [title, "-" * len(title)]
    for names, typ, text in entries:
        lines.append(f"{names} : {_type(names, typ)}")
        lines.extend(("    " + ln) if ln else "" for ln in text.splitlines())
    return "\n".join(lines)


def _docstring(head: str, tail: str) -> str:
    """``head``, the Parameters and Attributes sections, then ``tail`` (dedented text)."""
    return "\n\n".join((head.rstrip(), _section("Parameters", PARAMETERS),
                        _section("Attributes", ATTRIBUTES), tail.strip())) + "\n"


_HEAD = '''\
A multilayer-perceptron classifier trained by backpropagation.

The first nine parameters are the article's, with its meaning and defaults; the
rest extend it. The article's defaults (sigmoid units, one full batch, SGD at 0.01)
learn only on standardized inputs and over many epochs; a fit that learns nothing
says so with a :class:`ConvergenceWarning` naming the settings to try.

Examples
--------
Standardized inputs, Adam and minibatches of 128 learn in a few epochs:

>>> import numpy as np
>>> from arraynn import NNClassifier
>>> rng = np.random.default_rng(0)
>>> centers = rng.uniform(0, 255, size=(3, 64))
>>> y = rng.integers(0, 3, size=1000)
>>> X = np.clip(centers[y] + rng.normal(0, 60, size=(1000, 64)), 0, 255).astype(np.uint8)
>>> clf = NNClassifier(preprocessing="standardize", optimizer="adam", batch_size=128,
...                    epochs=10, random_seed=0).fit(X[:800], y[:800])   # raw uint8 in
>>> clf.score(X[800:], y[800:]) > 0.95
True
'''

_TAIL = '''\
Inputs may be images: ``X`` of shape ``(n, height, width)`` is taken as
``(n, height * width)``, and pandas DataFrames (``X``) and Series (``y``,
``sample_weight``); pandas is not needed otherwise.
'''

#: :class:`arraynn.NNClassifier`'s docstring.
CLASS_DOC = _docstring(_HEAD, _TAIL)
