"""arraynn._cli: the errors, the parser and the exit statuses that python -m arraynn.train
and python -m arraynn.predict share."""

from __future__ import annotations

import pytest

from arraynn import _cli
from arraynn import predict as predict_cli
from arraynn.train import cli as train_cli
from arraynn.train import errors as train_errors


def test_the_parser_raises_a_usage_error_with_status_2():
    p = _cli.Parser(prog="x")
    p.add_argument("--n", type=int)
    with pytest.raises(_cli.UsageError, match="invalid int value") as info:
        p.parse_args(["--n", "many"])
    assert info.value.code == _cli.USAGE == 2


def test_one_line_joins_the_first_paragraph_and_drops_the_instructions():
    exc = ValueError("the files are missing:\n  train-images-idx3-ubyte.gz\n\nPut the files in DIR\n"
                     "https://example.org/")
    assert _cli.one_line(exc) == "the files are missing; train-images-idx3-ubyte.gz"
    assert _cli.one_line(ValueError("two   spaces\tand a tab")) == "two spaces and a tab"
    assert _cli.one_line(ValueError()) == "ValueError"


def test_error_line_gives_a_cli_errors_own_status_and_a_last_resort():
    assert _cli.error_line(_cli.CLIError("bad", code=3)) == ("bad", 3)
    assert _cli.error_line(KeyError("k"), expected=(KeyError,)) == ("'k'", 1)
    message, code = _cli.error_line(RuntimeError("boom\nsecond line"))
    assert (message, code) == ("RuntimeError: boom; second line (rerun with --debug for the traceback)", 1)


def test_the_training_modules_errors_are_the_shared_ones():
    assert train_errors.CLIError is _cli.CLIError and train_errors.UsageError is _cli.UsageError
    assert train_errors.one_line is _cli.one_line
    assert issubclass(predict_cli.PredictError, _cli.CLIError)
    assert predict_cli.PredictError("x").code == 1


@pytest.mark.parametrize("main", [train_cli.main, predict_cli.main], ids=["train", "predict"])
def test_both_command_lines_report_bad_usage_alike(main, capsys):
    assert main(["--no-such-flag", "x", "y"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.endswith("  (see --help)\n") and err.count("\n") == 1
    assert "--no-such-flag" in err


@pytest.mark.parametrize("main", [train_cli.main, predict_cli.main], ids=["train", "predict"])
def test_both_command_lines_exit_0_after_help(main, capsys):
    assert main(["--help"]) == 0
    assert "usage: python -m arraynn." in capsys.readouterr().out


def test_an_interrupted_prediction_exits_130(tmp_path, capsys, monkeypatch):
    def interrupt(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(predict_cli, "_run", interrupt)
    assert predict_cli.main([str(tmp_path), "x.png"]) == 130
    assert capsys.readouterr().err == "\ninterrupted\n"


def test_an_unexpected_prediction_error_is_one_line(tmp_path, capsys, monkeypatch):
    def fail(args):
        raise RuntimeError("something\nbroke")

    monkeypatch.setattr(predict_cli, "_run", fail)
    assert predict_cli.main([str(tmp_path), "x.png"]) == 1
    assert capsys.readouterr().err == ("error: RuntimeError: something; broke (rerun with --debug for the "
                                       "traceback)\n")
    with pytest.raises(RuntimeError):
        predict_cli.main([str(tmp_path), "x.png", "--debug"])
