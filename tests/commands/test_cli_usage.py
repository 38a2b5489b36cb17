"""Usage errors of the command line (a missing argument, an unknown command or option, a value of
the wrong type) end like every other user error: exit code 2 and one line naming the culprit, no
traceback."""

from __future__ import annotations

import pytest

from emergence.cli import main


@pytest.mark.parametrize(
    ("argv", "culprit"),
    [
        (["eval"], "emergence eval: Missing argument 'model'"),
        (["nosuchcmd"], "No such command 'nosuchcmd'"),
        (["eval", "smollm2-135m", "--shots", "two"], "'--shots'"),
        (["eval", "smollm2-135m", "--no-such-option"], "--no-such-option"),
    ],
)
def test_usage_errors_exit_2_with_one_line(argv, culprit, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert err.count("\n") == 1 and err.startswith("error: ") and culprit in err, err
    assert "Traceback" not in err


def test_no_arguments_show_the_help_without_an_error_line(capsys):
    with pytest.raises(SystemExit):  # click's exit code for "no arguments: here is the help"
        main([])
    out = capsys.readouterr()
    assert "Usage" in out.out and out.err == ""
