"""The `emergence` command line: the command groups of :mod:`emergence.commands` and one error boundary.

Exit codes (README "Exit codes"): 0 done; 1 some cells or fits failed, the rest done; 2 a user error
(one line naming the file, row, key or option, as :func:`~emergence.errors.expected_error_line`
decides); 3 a bug (a short traceback; ``EMERGENCE_DEBUG=1`` prints the full one of any error).
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys
import traceback

import typer

from emergence import commands
from emergence.commands.domains import check_all
from emergence.errors import (
    EXIT_INTERNAL,
    EXIT_PARTIAL,
    EXIT_USER_ERROR,
    PartialFailure,
    expected_error_line,
)

app = typer.Typer(
    name="emergence",
    help="Predict when a capability emerges: finetune a checkpoint ladder, fit emergence laws, forecast.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register_all() -> None:
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        if hasattr(module, "register"):
            module.register(app)
    check_all(app)  # every numeric option checked against its domain before the command runs


_register_all()


def _debug() -> bool:
    return os.environ.get("EMERGENCE_DEBUG", "").strip() not in ("", "0", "false", "no")


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the app and end with an honest exit code (0, 1, 2 or 3)."""
    try:
        # standalone_mode=False: click *returns* the code of a typer.Exit(n) instead of exiting, so
        # it must be passed on here (dropping it made a sweep with failed cells exit 0)
        code = app(args=argv, standalone_mode=False, prog_name="emergence")
    except typer.Exit as err:  # raised past click by a callback
        code = err.exit_code
    except typer.Abort:
        print("aborted", file=sys.stderr)
        code = EXIT_PARTIAL
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        code = 130
    except typer.TyperException as err:
        # usage errors (missing argument, unknown option or command, bad value) from the click
        # that typer vendors; typer's own base class catches them whichever click is installed
        code = getattr(err, "exit_code", EXIT_USER_ERROR)
        message = err.format_message() if hasattr(err, "format_message") else str(err)
        if code and message:  # no arguments at all: the help was shown, nothing went wrong
            command = getattr(getattr(err, "ctx", None), "command_path", "emergence")
            print(f"error: {command}: {' '.join(message.split())} (see {command} --help)", file=sys.stderr)
    except PartialFailure as err:  # some cells failed, the rest is done and kept
        print(f"failed: {err}", file=sys.stderr)
        code = EXIT_PARTIAL
    except Exception as err:  # the boundary: a user's mistake is one line, a bug is a traceback
        code = _report(err)
    if isinstance(code, int) and code != 0:
        sys.exit(code)  # success returns normally (exit 0), as a console entry point should


def _report(err: Exception) -> int:
    """Print ``err`` as one line (user error, 2) or a short traceback (bug, 3); return the code."""
    if _debug():
        traceback.print_exception(err, file=sys.stderr)
    line = expected_error_line(err)
    if line is not None:
        print(f"error: {line}", file=sys.stderr)
        return EXIT_USER_ERROR
    if not _debug():
        traceback.print_exception(err, limit=-3, file=sys.stderr)
    print(
        f"internal error: {type(err).__name__}: {' '.join(str(err).split())} (a bug in emergence; "
        "rerun with EMERGENCE_DEBUG=1 for the full traceback and please report it)",
        file=sys.stderr,
    )
    return EXIT_INTERNAL


if __name__ == "__main__":
    main()
