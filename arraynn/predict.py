"""``python -m arraynn.predict MODEL FILE...``: classify images with a trained model.

``MODEL`` is a run directory of ``python -m arraynn.train`` or a model file saved by
``NNClassifier.save``; it brings its preprocessing and class names
(:meth:`arraynn.NNClassifier.load`). Each ``FILE`` is

- an image (PNG, JPEG, BMP, GIF, TIFF, WebP; needs Pillow: ``pip install "arraynn[images]"``),
  read as grayscale and resized to the model's square input (28x28) when it differs;
- a NumPy ``.npy`` array: one image ``(28, 28)`` or ``(784,)``, or many ``(n, 28, 28)`` or
  ``(n, 784)``;
- an IDX image file (``t10k-images-idx3-ubyte.gz``, gzip or not).

For each image it prints the predicted class name and its probability (``--top-k K``: the
K most probable) in aligned columns, or writes CSV (``--csv``) or JSON (``--json``) for
scripts. Fashion-MNIST images are light objects on a dark background; ``--invert`` turns a
dark-on-light picture (a photo on white) into that form.

An image whose pixels all have one value (a blank picture) still gets its prediction, with
a note on its row that there is nothing to classify. A file that cannot be read gets a row
with the error in place of the prediction; the other files are still classified, and at
the end stderr says how many files failed and the exit status is 1. When the reader of the
output goes away (``... | head -3``) it stops quietly with status 141.

Exit status: 0 success, 1 error (one line on stderr; some files unreadable), 2 bad usage,
141 output pipe closed.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import _cli

__all__ = ["IMAGE_SUFFIXES", "PredictError", "main", "predict_files", "read_images"]

#: The file name endings read as pictures (with Pillow).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")

_EPILOG = """\
examples:
  python -m arraynn.predict runs/default-20250101-120000 sneaker.png
      the class of one picture: "sneaker.png  Sneaker   97.31%"
  python -m arraynn.predict RUN_DIR shoe.jpg --invert --top-k 3
      a dark object on a light background, the three most probable classes
  python -m arraynn.predict RUN_DIR images.npy --csv > predictions.csv
      every image of an (n, 28, 28) or (n, 784) array, as CSV
  python -m arraynn.predict RUN_DIR t10k-images-idx3-ubyte.gz --json --backend torch
      an IDX file, as JSON, on PyTorch

A blank picture (every pixel one value) gets a note on its row. A file that cannot be read
gets its error on its row; the others are still classified.

exit status: 0 success, 1 error (one line on stderr; some files unreadable), 2 bad usage,
141 output pipe closed.
"""


class PredictError(_cli.CLIError):
    """An input or a model that cannot be used; the message says why and what to do."""


def _top_k(text: str) -> int:
    try:
        k = int(text)
    except ValueError:
        k = 0
    if k < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return k


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m arraynn.predict``."""
    from . import __version__
    from .backends import BACKEND_NAMES

    p = _cli.Parser(prog="python -m arraynn.predict",
                description="Classify images (PNG/JPEG, .npy arrays, IDX files) with a model trained "
                            "by arraynn: a run directory or a model file.",
                epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"arraynn {__version__}")
    p.add_argument("model", metavar="MODEL", help="a run directory or a model.npz")
    p.add_argument("files", metavar="FILE", nargs="+", help="images, .npy arrays or IDX image files")
    p.add_argument("--top-k", type=_top_k, default=1, metavar="K",
                   help="print the K most probable classes of each image (default 1)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--csv", action="store_true",
                     help="CSV on stdout: file,index,rank,label,class,probability,note,error")
    out.add_argument("--json", action="store_true",
                     help="JSON on stdout: one object per image with its predictions, note and error")
    p.add_argument("--invert", action="store_true",
                   help="invert pictures (255 - pixel): for dark objects on a light background")
    p.add_argument("--backend", choices=("auto", *BACKEND_NAMES), default="numpy",
                   help="array library to compute with (default numpy)")
    p.add_argument("--device", default=None, help="device of the backend: cpu, cuda, cuda:1 ...")
    p.add_argument("--dtype", choices=("float32", "float64"), default=None,
                   help="floating dtype (default: the model's)")
    p.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    return p


# --------------------------------------------------------------------------------------
# reading the inputs
# --------------------------------------------------------------------------------------


def _side(n_features: int) -> int | None:
    s = math.isqrt(n_features)
    return s if s * s == n_features else None


def _read_picture(path: Path, n_features: int, invert: bool, notes: list[str]) -> np.ndarray:
    try:
        from PIL import Image
    except ImportError:
        raise PredictError(f"reading {path} needs Pillow: pip install pillow (or \"arraynn[images]\"); "
                           "or give the image as a .npy array") from None
    side = _side(n_features)
    if side is None:
        raise PredictError(f"the model takes {n_features} features, not a square image; give {path.name} "
                           "as a .npy array of that width")
    try:
        with Image.open(path) as im:
            im.load()
            gray = im.convert("L")
    except (OSError, ValueError) as exc:
        raise PredictError(f"cannot read the image {path}: {exc}") from None
    if gray.size != (side, side):
        notes.append(f"{path}: resized from {gray.size[0]}x{gray.size[1]} to {side}x{side}")
        gray = gray.resize((side, side), Image.Resampling.LANCZOS)
    a = np.asarray(gray, dtype=np.uint8)
    if invert:
        a = 255 - a
    else:
        border = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])
        if border.mean() > 127:
            notes.append(f"{path}: a light background; the model was trained on light objects on a "
                         "dark background: pass --invert if the predictions look wrong")
    return a.reshape(1, -1)


def _as_rows(a: np.ndarray, n_features: int, path: Path) -> np.ndarray:
    if a.dtype.kind not in "biuf":
        raise PredictError(f"{path} holds {a.dtype} values; images are numbers (uint8 pixels 0-255)")
    if a.ndim == 1 and a.size == n_features:
        return a.reshape(1, -1)
    if a.ndim == 2 and a.shape[1] == n_features:
        return a
    if a.ndim == 3 and a.shape[1] * a.shape[2] == n_features:
        return a.reshape(len(a), -1)
    side = _side(n_features)
    if a.ndim == 2 and side is not None and a.shape == (side, side):
        return a.reshape(1, -1)
    shapes = f"({side}, {side}), ({n_features},), (n, {side}, {side}) or (n, {n_features})" if side \
        else f"({n_features},) or (n, {n_features})"
    raise PredictError(f"{path} holds an array of shape {a.shape}; the model takes images of shape {shapes}")


def read_images(path: str | Path, n_features: int, *, invert: bool = False,
                notes: list[str] | None = None) -> np.ndarray:
    """The images of the file ``path`` as rows ``(n, n_features)`` (uint8 for pictures
    and IDX files, the array's own dtype for ``.npy``).

    ``notes`` collects remarks (a resized picture, a light background).

    Raises
    ------
    PredictError
        The file is missing, unreadable, or of a shape the model cannot take.
    """
    path = Path(path)
    notes = notes if notes is not None else []
    if not path.is_file():
        raise PredictError(f"no file {path}")
    try:
        return _read(path, n_features, invert, notes)
    except PredictError:
        raise
    except OSError as exc:  # e.g. no permission to read it
        raise PredictError(f"cannot read {path}: {exc.strerror or exc}") from None


def _read(path: Path, n_features: int, invert: bool, notes: list[str]) -> np.ndarray:
    from .data.idx import IDXError, read_idx

    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return _read_picture(path, n_features, invert, notes)
    if suffix == ".npy":
        try:
            a = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise PredictError(f"cannot read {path} as a .npy array: {exc}") from None
    else:
        try:
            a = read_idx(path)
        except IDXError as exc:
            raise PredictError(f"{path} is not a picture ({', '.join(IMAGE_SUFFIXES)}), a .npy array or "
                               f"an IDX file: {exc}") from None
    rows = _as_rows(np.asarray(a), n_features, path)
    if invert:
        rows = 255 - rows
    return rows


# --------------------------------------------------------------------------------------
# predicting
# --------------------------------------------------------------------------------------


def _blank_note(row: np.ndarray) -> str | None:
    """A note for an image whose pixels all have one value (nothing to classify), else None."""
    if row.size == 0 or row.min() != row.max():
        return None
    value = float(row[0])
    what = "blank image" if value == 0 else "constant image"
    return f"{what}: every pixel is {value:g}, so there is nothing to classify"


def predict_files(clf: Any, files: Sequence[str | Path], top_k: int = 1, *, invert: bool = False,
                  notes: list[str] | None = None, keep_going: bool = False) -> list[dict[str, Any]]:
    """One record per image of ``files``: ``file``, ``index`` (within its file),
    ``predictions``, the ``top_k`` most probable classes as dicts of ``label`` (the
    model's class), ``class`` (its name) and ``probability``, most probable first,
    ``note`` (for an image whose pixels all have one value: a blank picture; else
    ``None``) and ``error`` (``None``).

    A file that cannot be read raises :class:`PredictError`; with ``keep_going`` it
    gets one record instead, with ``index`` ``None``, no predictions and its ``error``
    (the message), and the other files are still read."""
    names = clf.class_names_ or [str(c) for c in clf.classes_.tolist()]
    labels = clf.classes_.tolist()
    k = min(top_k, len(labels))
    records: list[dict[str, Any]] = []
    for f in files:
        try:
            X = read_images(f, clf.n_features_in_, invert=invert, notes=notes)
        except PredictError as exc:
            if not keep_going:
                raise
            records.append({"file": str(f), "index": None, "predictions": [], "note": None,
                            "error": _cli.one_line(exc)})
            continue
        proba = np.asarray(clf.predict_proba(X))
        order = np.argsort(-proba, axis=1, kind="stable")[:, :k]
        for i in range(len(X)):
            records.append({"file": str(f), "index": i, "predictions": [
                {"label": labels[j], "class": names[j], "probability": float(proba[i, j])}
                for j in order[i]], "note": _blank_note(X[i]), "error": None})
    return records


def _write(records: list[dict[str, Any]], args: argparse.Namespace, many: set[str]) -> None:
    if args.json:
        json.dump(records, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    if args.csv:
        w = csv.writer(sys.stdout, lineterminator="\n")
        w.writerow(["file", "index", "rank", "label", "class", "probability", "note", "error"])
        for r in records:
            if r["error"] is not None:
                w.writerow([r["file"], "", "", "", "", "", "", r["error"]])
            for rank, p in enumerate(r["predictions"], 1):
                w.writerow([r["file"], r["index"], rank, p["label"], p["class"], f"{p['probability']:.6f}",
                            r["note"] or "", ""])
        return
    # Aligned columns: the file (with [index] for a file of several images), then per
    # prediction the class, padded to the longest class shown, and its probability.
    shown = [(f"{r['file']}[{r['index']}]" if r["file"] in many and r["error"] is None else r["file"], r)
             for r in records]
    width = max(len(s) for s, _ in shown)
    cwidth = max((len(p["class"]) for r in records for p in r["predictions"]), default=0)
    for s, r in shown:
        if r["error"] is not None:
            text = f"error: {r['error']}"
        else:
            text = "  ".join(f"{p['class']:<{cwidth}}  {100 * p['probability']:6.2f}%"
                             for p in r["predictions"])
            if r["note"]:
                text += f"  note: {r['note']}"
        print(f"{s:<{width}}  {text}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``python -m arraynn.predict``; returns the exit status."""
    args = _cli.parse_args(build_parser(), argv)
    if isinstance(args, int):
        return args
    try:
        return _run(args)
    except BrokenPipeError:
        # The reader went away (``... | head -3``): stop quietly, as Unix tools do. The
        # status is 141 (128 + SIGPIPE), what the shell reports for a tool that SIGPIPE
        # ended: the output was cut short, so 0 would claim too much, and under
        # ``set -o pipefail`` the pipeline fails as it does with cat or grep.
        _stdout_to_devnull()
        return 141
    except KeyboardInterrupt:
        return _cli.interrupted()
    except Exception as exc:
        if args.debug:
            raise
        return _cli.report(*_error_line(exc))


def _stdout_to_devnull() -> None:
    """Point stdout's file descriptor at os.devnull, so that flushing what is left of its
    buffer at exit does not fail on the closed pipe again."""
    try:
        fd = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        return
    try:
        os.dup2(fd, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # a stream without a file descriptor
        pass
    finally:
        os.close(fd)


def _error_line(exc: BaseException) -> tuple[str, int]:
    """The line of ``error: ...`` for ``exc`` and the exit status (:func:`arraynn._cli.error_line`:
    a :class:`PredictError`'s message, a model file's, a backend's and a missing file's
    are their own report)."""
    from .backends import BackendError
    from .model_io import ModelFileError

    return _cli.error_line(exc, expected=(ModelFileError, BackendError, FileNotFoundError))


def _run(args: argparse.Namespace) -> int:
    from .classifier import NNClassifier

    clf = NNClassifier.load(args.model, backend=args.backend, device=args.device, dtype=args.dtype)
    notes: list[str] = []
    if clf.preprocessor_ is None:
        notes.append(f"{args.model}: the model holds no preprocessing; the images are fed as they are")
    records = predict_files(clf, args.files, args.top_k, invert=args.invert, notes=notes, keep_going=True)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    counts: dict[str, int] = {}
    for r in records:
        counts[r["file"]] = counts.get(r["file"], 0) + 1
    many = {f for f, n in counts.items() if n > 1}
    _write(records, args, many)
    sys.stdout.flush()  # a closed pipe shows here, inside main, not at exit
    failed = [r["error"] for r in records if r["error"] is not None]
    if failed:
        shown = "; ".join(failed[:3]) + (f"; and {len(failed) - 3} more" if len(failed) > 3 else "")
        files = "1 file" if len(args.files) == 1 else f"{len(args.files)} files"
        print(f"error: {len(failed)} of {files} could not be read: {shown}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover - the command line
    sys.exit(main())
