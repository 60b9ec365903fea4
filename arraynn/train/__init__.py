"""``python -m arraynn.train``: train a Fashion-MNIST classifier and report it.

The main job of arraynn. It loads Fashion-MNIST (downloading it when needed), uploads
the uint8 images to the backend's device once, preprocesses them there, trains an
:class:`~arraynn.NNClassifier` and writes a *run directory* (config.json,
metrics.csv, checkpoint.npz, model.npz + model.json, summary.json and the figures;
see :mod:`arraynn.train.rundir`). A killed run continues with ``--resume``; a saved
model is evaluated on any backend with ``--evaluate``.

Two presets: ``default`` (the best classifier this library trains on a laptop CPU in
under a minute) and ``article`` (the original article's experiment). Run
``python -m arraynn.train --help`` for the flags.

Errors print one line, ``error: ...``, on stderr and exit with status 2 (bad usage)
or 1 (anything else), without a traceback (``--debug`` shows it).

The modules: :mod:`~arraynn.train.presets`, :mod:`~arraynn.train.options` (the parser
and its flags), :mod:`~arraynn.train.config` (the configuration the flags make),
:mod:`~arraynn.train.job` (:class:`~arraynn.train.job.Run`, one invocation's state),
:mod:`~arraynn.train.rundir` (the run directory's files),
:mod:`~arraynn.train.dataset` (data, split, device sets),
:mod:`~arraynn.train.progress`, :mod:`~arraynn.train.run` (:func:`run`),
:mod:`~arraynn.train.training` (the classifier: built, resumed, trained),
:mod:`~arraynn.train.evaluate` (:func:`evaluate`, the test accuracy),
:mod:`~arraynn.train.errors` (the one-line errors, on :mod:`arraynn._cli`) and
:mod:`~arraynn.train.cli` (:func:`main`).
"""

from .cli import main, process_main
from .options import PRESETS, build_parser

__all__ = ["PRESETS", "build_parser", "main", "process_main"]
