"""The `emergence` command line: a thin typer app.

Each command group lives in its own module under :mod:`emergence.commands` and exposes
``register(app)``; this file only assembles them and maps :class:`~emergence.errors.UserError` to one
line on stderr with exit code 2. Heavy imports (JAX, NumPyro) happen inside the commands, so that
``emergence --help`` stays fast.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import typer

from emergence import commands
from emergence.errors import EXIT_USER_ERROR, UserError

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
        register = getattr(module, "register", None)
        if register is not None:
            register(app)


_register_all()


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the app, turning user errors into one line and exit code 2."""
    try:
        app(args=argv, standalone_mode=False, prog_name="emergence")
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
    except FileNotFoundError as err:
        print(f"error: file not found: {err.filename or err}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
    except typer.Exit as err:
        sys.exit(err.exit_code)
    except typer.Abort:
        print("aborted", file=sys.stderr)
        sys.exit(1)
    except typer.TyperException as err:
        # usage errors (missing argument, unknown option or command, bad value) from the click
        # that typer vendors; typer's own base class catches them whichever click is installed
        code = getattr(err, "exit_code", EXIT_USER_ERROR)
        message = err.format_message() if hasattr(err, "format_message") else str(err)
        if code and message:  # no arguments at all: the help was shown, nothing went wrong
            command = getattr(getattr(err, "ctx", None), "command_path", "emergence")
            print(f"error: {command}: {message} (see {command} --help)", file=sys.stderr)
        sys.exit(code)


if __name__ == "__main__":
    main()
