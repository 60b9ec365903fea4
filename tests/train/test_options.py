"""The options of ``python -m arraynn.train``: ``--help``, the presets and their
overrides, and the one-line errors of bad flags (exit status 2)."""

from __future__ import annotations

import argparse

import pytest
from _train_cli import assert_one_line_error, main_in_process, run_cli

from arraynn.train import PRESETS, build_parser
from arraynn.train.errors import UsageError
from arraynn.train.options import check_resume_args, describe_config, resolve_config


def test_help_lists_flags_and_examples():
    proc = run_cli("--help")
    assert proc.returncode == 0
    for flag in ("--backend", "--device", "--dtype", "--preset", "--hidden", "--activation",
                 "--output", "--optimizer", "--lr", "--epochs", "--batch-size", "--l1", "--l2",
                 "--seed", "--data-dir", "--out", "--resume", "--no-progress", "--no-plots",
                 "--no-scale", "--limit", "--evaluate"):
        assert flag in proc.stdout, flag
    assert "examples:" in proc.stdout
    assert "python -m arraynn.train --preset article" in proc.stdout


def test_version(capsys):
    import arraynn

    code, out, err = main_in_process(capsys, "--version")
    assert code == 0 and err == ""
    assert out == f"arraynn {arraynn.__version__}\n"


def test_unknown_backend(tmp_path):
    proc = run_cli("--backend", "tensorflow", "--out", str(tmp_path / "r"))
    assert proc.returncode == 2
    assert_one_line_error(proc.stderr, "tensorflow", "numpy")


@pytest.mark.parametrize("flags, fragment", [
    (["--epochs", "0"], "--epochs"),
    (["--epochs", "ten"], "--epochs"),
    (["--lr", "-1"], "--lr"),
    (["--l2", "nan"], "--l2"),
    (["--hidden", "64,x"], "--hidden"),
    (["--limit", "0"], "--limit"),
    (["--dtype", "float16"], "--dtype"),
    (["--batch-size", "32", "--n-batches", "4"], "--n-batches"),
    (["--resume"], "--out"),
    (["--no-such-flag"], "no-such-flag"),
    (["--mirror", "not-a-url"], "--mirror"),
    (["--mirror", "ftp-less:x"], "is not a URL"),
    (["--out", ""], "--out needs a directory name"),
])


def test_bad_flag_values(flags, fragment, tmp_path, capsys):
    code, _, err = main_in_process(capsys, *flags)
    assert code == 2
    assert_one_line_error(err, fragment)


def test_bad_flag_value_subprocess():
    proc = run_cli("--epochs", "-3")
    assert proc.returncode == 2
    assert_one_line_error(proc.stderr, "--epochs", "positive integer")


def _args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


def test_resolve_config_applies_the_overrides_to_the_preset():
    cfg = resolve_config(_args("--preset", "article", "--epochs", "3", "--no-scale"))
    assert cfg == {**PRESETS["article"], "epochs": 3, "preprocessing": "none", "preset": "article"}
    # --batch-size and --n-batches replace each other.
    assert resolve_config(_args("--preset", "article", "--batch-size", "64"))["n_batches"] is None
    assert resolve_config(_args("--n-batches", "4"))["batch_size"] is None
    with pytest.raises(UsageError, match="contradicts --scale unit"):
        resolve_config(_args("--no-scale", "--scale", "unit"))


def test_resume_refuses_flags_that_change_the_saved_configuration():
    check_resume_args(_args("--resume", "--out", "r", "--backend", "numpy", "--no-plots"))
    with pytest.raises(UsageError, match="drop --preset, --l2, --scale") as info:
        check_resume_args(_args("--resume", "--out", "r", "--preset", "article", "--l2", "0.1", "--no-scale"))
    assert info.value.code == 2


def test_describe_config_of_the_presets():
    assert describe_config({**PRESETS["default"], "preset": "default"}) == (
        "784-256-128-10 relu/softmax, he init, adam lr 0.001 (cosine decay), batch 128, L2 0.05, "
        "15 epochs, standardized with the training set's statistics, seed 0")
    assert describe_config({**PRESETS["article"], "preset": "article"}) == (
        "784-50-10 sigmoid/sigmoid, no biases, uniform init, sgd lr 0.001, 25 minibatches, L2 0.5, "
        "300 epochs, each set standardized with its own statistics, seed 0")


def test_resume_accepts_flags_equal_to_the_saved_configuration():
    saved = resolve_config(_args("--hidden", "32", "--l2", "0.05", "--epochs", "3"))
    check_resume_args(_args("--resume", "--out", "r", "--hidden", "32", "--epochs", "3", "--l2", "0.050",
                            "--preset", "default", "--scale", "standardize"), saved)
    with pytest.raises(UsageError, match=r"drop --hidden, --epochs \(the run has hidden 32, epochs 3\)"):
        check_resume_args(_args("--resume", "--out", "r", "--hidden", "64", "--epochs", "4", "--l2", "0.05"),
                          saved)
    with pytest.raises(UsageError, match="drop --preset"):
        check_resume_args(_args("--resume", "--out", "r", "--preset", "article"), saved)
    no_bias = dict(saved, bias=False)
    check_resume_args(_args("--resume", "--out", "r", "--no-bias"), no_bias)
    with pytest.raises(UsageError, match="drop --bias"):
        check_resume_args(_args("--resume", "--out", "r", "--bias"), no_bias)


def test_the_librarys_names_are_aliases():
    from arraynn.train.options import build_parser

    parser = build_parser()
    short = parser.parse_args(["--hidden", "64,32", "--seed", "3", "--data-dir", "d"])
    long = parser.parse_args(["--n-hidden-units", "64,32", "--random-seed", "3", "--data-home", "d"])
    assert (short.n_hidden_units, short.random_seed, short.data_dir) == (
        long.n_hidden_units, long.random_seed, long.data_dir)
    assert (long.n_hidden_units, long.random_seed, long.data_dir) == ([64, 32], 3, "d")
    text = parser.format_help()
    assert "--n-hidden-units" in text and "--random-seed" in text and "--data-home" in text


def test_dropout_and_shift_flags():
    args = _args("--dropout", "0.3", "--shift", "2")
    assert (args.dropout, args.augment_shift) == (0.3, 2)
    assert _args("--dropout", "0.2,0.4").dropout == [0.2, 0.4]
    assert _args("--augment-shift", "1").augment_shift == 1
    assert _args("--input-dropout", "0.1").input_dropout == 0.1
    assert "input dropout 0.1" in describe_config(resolve_config(_args("--input-dropout", "0.1")))
    cfg = resolve_config(_args("--dropout", "0.25", "--shift", "1", "--hidden", "64,32"))
    assert (cfg["dropout"], cfg["augment_shift"]) == (0.25, 1)
    assert describe_config(cfg).endswith(
        "L2 0.05, dropout 0.25, random shifts up to 1 px, 15 epochs, standardized with the "
        "training set's statistics, seed 0")
    assert "dropout 0.1,0.2" in describe_config({**cfg, "dropout": [0.1, 0.2]})
    text = build_parser().format_help()
    assert "--dropout" in text and "--shift" in text and "--augment-shift" in text
    for preset in PRESETS.values():
        assert "dropout" in preset and "augment_shift" in preset and "input_dropout" in preset


@pytest.mark.parametrize("flags, fragment", [
    (["--dropout", "1"], "--dropout"),
    (["--dropout", "-0.1"], "--dropout"),
    (["--dropout", "0.1,x"], "--dropout"),
    (["--shift", "-1"], "--shift"),
    (["--input-dropout", "0.1,0.2"], "--input-dropout"),
    (["--hidden", "32", "--dropout", "0.2,0.3"], "2 rates for 1 hidden layer"),
    (["--shift", "128"], "--shift: augment_shift must be an integer 0 .. 127"),
])
def test_bad_dropout_and_shift_values(flags, fragment, tmp_path, capsys):
    code, _, err = main_in_process(capsys, *flags)
    assert code == 2
    assert_one_line_error(err, fragment)


def test_the_best_preset():
    best = PRESETS["best"]
    assert best["dropout"] and best["input_dropout"] and best["epochs"] > PRESETS["default"]["epochs"]
    assert PRESETS["default"]["dropout"] == 0.0 and PRESETS["default"]["augment_shift"] == 0
    from arraynn.train.options import PRESET_HEADERS

    assert "best" in PRESET_HEADERS and "PyTorch" in PRESET_HEADERS["best"]


def test_the_run_headers_promise_no_training_time():
    # A training time depends on the CPU (15-18 s on one machine where another took 6 s):
    # the header printed by every run states what holds everywhere, the accuracy.
    import re

    from arraynn.train.options import PRESET_HEADERS

    assert set(PRESET_HEADERS) == set(PRESETS)
    for name, text in PRESET_HEADERS.items():
        assert not re.search(r"\d\s*s\b|seconds|minute", text), (name, text)


def test_the_layers_flag_reads_a_spec_and_writes_it_back_in_its_own_words():
    from arraynn import layers
    from arraynn.nn.layer_spec import format_layers, parse_layers

    spec = ("conv32k3same,relu,maxpool2,conv16k3x5s2p1nobias,tanh,avgpool3s1,gap,dense64nobias,sigmoid,"
            "dropout0.3")
    got = parse_layers(spec)
    assert got == [layers.Conv2D(32, 3, padding="same"), layers.ReLU(), layers.MaxPool2D(2),
                   layers.Conv2D(16, (3, 5), stride=2, padding=1, bias=False), layers.Tanh(),
                   layers.AvgPool2D(3, stride=1), layers.GlobalAvgPool2D(), layers.Dense(64, bias=False),
                   layers.Sigmoid(), layers.Dropout(0.3)]
    assert format_layers(got) == spec and parse_layers(format_layers(got)) == got
    assert _args("--layers", "Conv8K3, ReLU ,Flatten").layers == "conv8k3valid,relu,flatten"
    cfg = resolve_config(_args("--layers", "conv8k3same,relu,maxpool2,flatten"))
    assert describe_config(cfg).startswith(
        "784 -> conv8k3same,relu,maxpool2,flatten -> dense10 softmax output")
    assert "--layers" in build_parser().format_help()


@pytest.mark.parametrize("flags, fragment", [
    (["--layers", "conv8,relu"], "unknown layer 'conv8'"),
    (["--layers", "dense0"], "positive integer"),
    (["--layers", "relu,,flatten"], "empty item"),
    (["--layers", "dropout1.5"], "[0, 1)"),
    (["--layers", "flatten,dense8", "--hidden", "64"], "--hidden cannot change it"),
    (["--layers", "flatten,dense8", "--dropout", "0.1"], "--dropout cannot change it"),
])
def test_bad_layers_flags(flags, fragment, tmp_path, capsys):
    code, _, err = main_in_process(capsys, *flags)
    assert code == 2
    assert_one_line_error(err, fragment)


def test_the_layers_spec_knows_batchnorm():
    from arraynn import layers
    from arraynn.nn.layer_spec import format_layers, parse_layers

    got = parse_layers("conv8k3samenobias,bn,relu,flatten,dense16nobias,bn0.99,relu")
    assert got[1] == layers.BatchNorm() and got[5] == layers.BatchNorm(momentum=0.99)
    assert format_layers(got) == "conv8k3samenobias,bn,relu,flatten,dense16nobias,bn0.99,relu"
    with pytest.raises(ValueError, match="no word"):
        format_layers([layers.BatchNorm(epsilon=1e-3)])


def test_the_cnn_preset_is_a_layers_spec_over_the_default_training():
    from arraynn.nn.layer_spec import format_layers, parse_layers
    from arraynn.train.options import PRESET_HEADERS

    cnn = PRESETS["cnn"]
    assert format_layers(parse_layers(cnn["layers"])) == cnn["layers"]  # in the parser's own words
    assert cnn["augment_flip"] and cnn["epochs"] == 10 and cnn["learning_rate"] == 2e-3
    assert "cnn" in PRESET_HEADERS
    differs = {k for k in cnn if cnn[k] != PRESETS["default"][k]}
    assert differs == {"layers", "augment_flip", "learning_rate", "epochs", "val_size"}
    assert cnn["val_size"] == 0  # all 60,000
    cfg = resolve_config(_args("--preset", "cnn"))
    assert describe_config(cfg).startswith(f"784 -> {cnn['layers']} -> dense10 softmax output")
