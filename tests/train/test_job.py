"""arraynn.train.job.Run: what one invocation's steps find out, held apart from the parsed
command line (which is never written to), and what an interruption says."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from _synthetic import write_synthetic_fashion_mnist
from _train_cli import FAST

from arraynn.train import build_parser
from arraynn.train.job import Run
from arraynn.train.run import evaluate, run
from arraynn.train.rundir import RunDir


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return write_synthetic_fashion_mnist(tmp_path_factory.mktemp("fashion"))


def _args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


def test_a_new_run_knows_nothing_yet():
    job = Run(_args())
    assert not job.evaluating and job.is_root and job.n_ranks == 1 and job.rank_prefix() == ""
    assert job.run_dir is None and job.config is None and job.backend is None and not job.resumable
    assert job.interrupted_message() == "interrupted"
    job.abort_others(1)  # one process: nothing to abort


def test_what_an_interrupted_run_says(tmp_path):
    job = Run(_args("--out", "runs/x y"))
    job.run_dir = RunDir(Path("runs/x y"))
    assert job.interrupted_message() == "interrupted before the first epoch finished; nothing was kept"
    job.resumable = True
    assert job.interrupted_message() == ("interrupted; continue from the last checkpoint with: python -m "
                                         "arraynn.train --resume --out 'runs/x y'")
    assert Run(_args("--evaluate", "m.npz"), run_dir=job.run_dir, resumable=True).interrupted_message() \
        == "interrupted"


def test_a_run_fills_in_the_run_and_leaves_the_namespace_as_parsed(data_dir, tmp_path, capsys):
    args = _args("--data-dir", str(data_dir), "--out", str(tmp_path / "r"), "--epochs", "2", "--no-plots",
                 "--backend", "numpy", *FAST)
    before = dict(vars(args))
    job = Run(args)
    assert run(job) == 0
    assert vars(args) == before
    assert job.world is not None and job.comm is job.world and job.n_ranks == 1
    assert job.run_dir is not None and job.run_dir.path == tmp_path / "r"
    assert job.config is not None and job.config["epochs"] == 2 and job.config["preset"] == "default"
    assert job.backend.name == "numpy" and job.backend_reason is None
    assert job.resumable and not job.from_checkpoint and job.saved is None and not job.extended

    # --resume --epochs 3 extends it: the saved configuration, with the new epochs
    args = _args("--data-dir", str(data_dir), "--out", str(tmp_path / "r"), "--resume", "--epochs", "3")
    before = dict(vars(args))
    job = Run(args)
    assert run(job) == 0
    assert vars(args) == before and args.epochs == 3
    assert job.from_checkpoint and job.extended and job.saved is not None
    assert job.config["epochs"] == 3 and job.backend_reason is None  # the saved backend, numpy

    args = _args("--evaluate", str(tmp_path / "r"), "--data-dir", str(data_dir))
    before = dict(vars(args))
    job = Run(args)
    assert evaluate(job) == 0 and vars(args) == before
    assert job.evaluating and job.backend is not None and job.run_dir is None
    assert "test accuracy" in capsys.readouterr().out


def test_auto_says_why_it_chose_its_backend(data_dir, tmp_path, capsys):
    job = Run(_args("--data-dir", str(data_dir), "--out", str(tmp_path / "r"), "--epochs", "1", "--no-plots",
                    *FAST))
    assert run(job) == 0
    assert job.backend_reason
    assert f"(auto: {job.backend_reason})" in capsys.readouterr().out
