"""One vocabulary: the configuration of ``python -m arraynn.train`` (config.json,
summary.json, the presets) is keyed by :class:`~arraynn.NNClassifier`'s parameter names,
the flags keep theirs, the parser's choices are the estimator's, and run directories
written with the earlier keys still resume and evaluate."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from _synthetic import write_synthetic_fashion_mnist
from _train_cli import assert_one_line_error, main_in_process, read_metrics

from arraynn import NNClassifier, get_backend
from arraynn._parameters import CHOICES
from arraynn.train import build_parser
from arraynn.train.config import estimator_params, flag, resolve_config, upgrade
from arraynn.train.errors import UsageError
from arraynn.train.options import check_resume_args
from arraynn.train.presets import LEGACY_DEFAULTS, PRESETS, RUN_KEYS
from arraynn.train.rundir import RunDir
from arraynn.train.training import new_classifier

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"

#: config.json as the version before the estimator's names wrote it (its data_dir blanked),
#: for a run of these flags on the synthetic data of write_synthetic_fashion_mnist:
OLD_CONFIG = FIXTURES / "run-config-before-estimator-names.json"
OLD_FLAGS = ("--hidden", "16", "--val-size", "100", "--limit", "300", "--optimizer", "momentum",
             "--schedule", "constant", "--shift", "1", "--flip", "--seed", "3", "--scale", "unit")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return write_synthetic_fashion_mnist(tmp_path_factory.mktemp("fashion"))


def _args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


def test_the_configuration_keys_are_the_estimators_parameter_names():
    names = set(NNClassifier._param_names())
    for name, preset in PRESETS.items():
        assert set(preset) - set(RUN_KEYS) <= names, name
    cfg = resolve_config(_args("--hidden", "64,32", "--seed", "7", "--shift", "2", "--flip",
                               "--optimizer", "momentum", "--no-nesterov", "--scale", "unit"))
    assert (cfg["n_hidden_units"], cfg["random_seed"], cfg["augment_shift"], cfg["augment_flip"],
            cfg["nesterovs_momentum"], cfg["preprocessing"]) == ([64, 32], 7, 2, True, False, "unit")
    for old in ("hidden", "seed", "shift", "flip", "nesterov", "scale"):
        assert old not in cfg
    # the classifier gets the entries as they are (it preprocesses the raw training images)
    params = new_classifier(cfg, get_backend("numpy")).get_params()
    for key, value in cfg.items():
        if key not in RUN_KEYS and key != "n_batches":
            assert params[key] == value, key
    assert params["preprocessing"] == "unit" and params["warm_start"] is True


def test_a_layers_configuration_gives_the_layers_alone():
    from arraynn import layers

    cfg = resolve_config(_args("--layers", "conv4k3same,relu,flatten"))
    params = estimator_params(cfg)
    assert params["layers"] == [layers.Conv2D(4, 3, padding="same"), layers.ReLU(), layers.Flatten()]
    assert params["input_shape"] == (1, 28, 28)
    assert not {"n_hidden_units", "activation", "dropout", "input_dropout"} & set(params)


def test_every_configuration_key_has_its_flag():
    dests = {a.dest for a in build_parser()._actions}
    assert set(PRESETS["default"]) <= dests
    assert [flag(k) for k in ("n_hidden_units", "random_seed", "augment_shift", "augment_flip",
                              "nesterovs_momentum", "preprocessing", "val_size")] == [
        "--hidden", "--seed", "--shift", "--flip", "--nesterov", "--scale", "--val-size"]


def test_the_parsers_choices_are_the_estimators():
    choices = {a.dest: tuple(a.choices) for a in build_parser()._actions if a.choices is not None}
    for name, valid in CHOICES.items():
        assert choices[name] == tuple(valid), name
    assert "--scale {standardize,per-set,unit,none}" in build_parser().format_help()


def test_the_estimators_check_is_the_usage_error_of_the_flag(tmp_path, capsys):
    with pytest.raises(UsageError, match=r"^--shift: augment_shift must be an integer 0 \.\. 127"):
        resolve_config(_args("--shift", "128"))
    # before any data is loaded: the missing data directory is never reached
    code, _, err = main_in_process(capsys, "--shift", "200", "--data-dir", str(tmp_path / "none"),
                                   "--no-download", "--out", str(tmp_path / "run"))
    assert code == 2
    assert_one_line_error(err, "--shift: augment_shift", "127", "got 200")
    assert not (tmp_path / "run").exists()


def test_upgrade_translates_the_earlier_keys():
    saved = json.loads(OLD_CONFIG.read_text())["config"]
    assert "hidden" in saved and "seed" in saved and "scale" in saved  # as it was written
    assert upgrade(saved) == resolve_config(_args(*OLD_FLAGS, "--epochs", "4"))
    new = resolve_config(_args("--preset", "article"))
    assert upgrade(new) == new
    # a configuration from before the later entries existed trained without them
    first = {k: v for k, v in saved.items() if k not in ("nesterov", "shift", "flip", "dropout")}
    got = upgrade(first)
    assert {k: got[k] for k in LEGACY_DEFAULTS} == LEGACY_DEFAULTS  # classical momentum, no augmentation
    assert got["nesterovs_momentum"] is False and got["random_seed"] == 3


def test_resume_reads_an_earlier_config_in_todays_keys_and_names_the_flags(tmp_path):
    (tmp_path / "config.json").write_text(OLD_CONFIG.read_text())
    saved = RunDir(tmp_path).read_config()
    assert saved["config"] == upgrade(json.loads(OLD_CONFIG.read_text())["config"])
    assert saved["data_fingerprint"] == json.loads(OLD_CONFIG.read_text())["data_fingerprint"]
    check_resume_args(_args("--resume", "--out", "r", *OLD_FLAGS), saved["config"])
    with pytest.raises(UsageError, match=r"drop --scale, --seed \(the run has scale unit, seed 3\)"):
        check_resume_args(_args("--resume", "--out", "r", "--seed", "4", "--scale", "none"), saved["config"])


def _model_arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files if k != "meta.json"}


def test_a_run_of_the_earlier_keys_resumes_and_evaluates(data_dir, tmp_path, capsys):
    """A run written with the earlier keys, stopped after epoch 2 of 4, resumes to the
    weights of an uninterrupted run of today's, and its model evaluates."""
    common = ("--data-dir", str(data_dir), "--no-plots", "--no-progress")
    full = tmp_path / "full"
    code, _, err = main_in_process(capsys, *OLD_FLAGS, *common, "--epochs", "4", "--out", str(full))
    assert code == 0, err
    old = tmp_path / "old"  # its checkpoint after epoch 2 (a constant rate: as the 4-epoch run's)
    code, _, err = main_in_process(capsys, *OLD_FLAGS, *common, "--epochs", "2", "--out", str(old))
    assert code == 0, err
    for name in ("model.npz", "model.json", "summary.json"):
        (old / name).unlink()
    shutil.copy(OLD_CONFIG, old / "config.json")

    code, stdout, err = main_in_process(capsys, "--resume", "--out", str(old), *common)
    assert code == 0, err
    assert "resuming after epoch 2 of 4" in stdout
    assert "784-16-10 relu/softmax" in stdout and "Nesterov momentum" in stdout
    assert "random shifts up to 1 px, random flips" in stdout and "pixels / 255, seed 3" in stdout
    a, b = _model_arrays(full / "model.npz"), _model_arrays(old / "model.npz")
    assert a.keys() == b.keys()
    for key in a:
        assert np.array_equal(a[key], b[key]), key
    assert [r["loss"] for r in read_metrics(old)] == [r["loss"] for r in read_metrics(full)]
    summary = json.loads((old / "summary.json").read_text())
    assert summary["config"] == json.loads((full / "summary.json").read_text())["config"]

    code, stdout, err = main_in_process(capsys, "--evaluate", str(old), "--data-dir", str(data_dir))
    assert code == 0, err
    accuracy = json.loads((full / "summary.json").read_text())["test_accuracy"]
    assert f"test accuracy: {100 * accuracy:.2f}%" in stdout
