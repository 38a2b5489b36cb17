"""Running the CLI in-process, as the command-line tests do."""

from __future__ import annotations

import pytest

from emergence.cli import main


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``emergence ARGV``, run in this process."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
        raise SystemExit(0)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err
