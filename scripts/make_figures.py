"""Make the documentation's figures from a real training run.

    python scripts/make_figures.py --data-dir path/to/fashion-mnist [--run RUN_DIR] [--backend numpy]

It trains the default preset with its plots on (``python -m arraynn.train --data-dir DIR --out
RUN``), which writes ``loss.png``, ``confusion_matrix.png`` and ``predictions.png`` into the run
directory, then maps the last hidden layer of the run's model with ``examples/tsne.py``, and
copies the four figures to ``docs/_static/figures/`` (shrunk to a palette PNG when Pillow is
installed, so that each stays small). With ``--run`` an existing run directory is used as it is
and nothing is trained. The docs build does not run this script: the figures it writes are
committed.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ROOT / "docs" / "_static" / "figures"
RUN_FIGURES = ("loss.png", "confusion_matrix.png", "predictions.png")


def _run(*args: str) -> None:
    print("+", " ".join(args), flush=True)
    subprocess.run(args, check=True, cwd=ROOT)


def _shrink(src: Path, dst: Path) -> None:
    """Copy ``src`` to ``dst``, as a 256-colour PNG where Pillow is installed."""
    try:
        from PIL import Image
    except ImportError:
        shutil.copyfile(src, dst)
        return
    with Image.open(src) as im:
        im.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(
            dst, optimize=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, help="directory with the four Fashion-MNIST files")
    parser.add_argument("--run", type=Path, help="an existing run directory (nothing is trained)")
    parser.add_argument("--backend", default="numpy", help="backend of the training run (default numpy)")
    parser.add_argument("--tsne-n", type=int, default=2000, help="test images on the t-SNE map")
    parser.add_argument("--out", type=Path, default=FIGURES, help="where the figures go")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="arraynn-figures-"))
    run = args.run
    if run is None:
        run = work / "run"
        _run(sys.executable, "-m", "arraynn.train", "--data-dir", args.data_dir, "--out", str(run),
             "--backend", args.backend, "--no-progress")
    run = run.resolve()
    missing = [name for name in RUN_FIGURES if not (run / name).is_file()]
    if missing:
        raise SystemExit(f"error: {run} has no {', '.join(missing)} (is matplotlib installed?)")
    summary = run / "summary.json"
    if summary.is_file():
        import json
        print(f"run: test accuracy {json.loads(summary.read_text())['test_accuracy']:.4f}")
    tsne = work / "tsne.png"
    _run(sys.executable, "examples/tsne.py", "--data-dir", args.data_dir, "--n", str(args.tsne_n),
         "--model", str(run / "model.npz"), "--out", str(tsne))

    args.out.mkdir(parents=True, exist_ok=True)
    for src in [run / name for name in RUN_FIGURES] + [tsne]:
        dst = args.out / src.name
        _shrink(src, dst)
        print(f"{dst.relative_to(ROOT) if dst.is_relative_to(ROOT) else dst}: "
              f"{dst.stat().st_size / 1024:.0f} KB")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
