"""The one user-facing error type.

Anything the *user* got wrong (a path that does not exist, a malformed row, an unknown key, an
unsupported quantization) is raised as :class:`UserError` with a single line that names the culprit
(file, row, key, tensor). The CLI turns it into that line on stderr and exit code 2, never a
traceback. Bugs stay ordinary exceptions so that they *do* show a traceback.
"""

from __future__ import annotations

EXIT_USER_ERROR = 2


class UserError(Exception):
    """A problem with the user's input, reported as one line and exit code 2."""

    def __init__(self, message: str):
        message = " ".join(str(message).split())  # one line, always
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message
