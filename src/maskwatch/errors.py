"""User-facing errors: one clear line, non-zero exit, never a traceback."""

from __future__ import annotations


class MaskwatchError(Exception):
    """An error caused by the user's input or environment, shown as one line.

    The CLI prints ``str(error)`` and exits with ``exit_code``; the web API maps
    it to an HTTP status. Anything else that escapes is a bug.
    """

    exit_code = 2
    http_status = 400


class InputError(MaskwatchError):
    """A path, file, camera or stream that cannot be read."""

    http_status = 422


class EmptyInputError(InputError):
    """A file or upload with no bytes in it."""

    http_status = 400


class InputTooLargeError(InputError):
    """An input over a size limit (pixels, frames): refused before it is decoded in full."""

    http_status = 413


class ModelError(MaskwatchError):
    """A model bundle or detector that is missing or malformed."""

    exit_code = 3
    http_status = 500


def require_extra(module: str, extra: str, what: str) -> None:
    """A one-line error naming the pip extra when an optional dependency is missing."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise MaskwatchError(f"{what} needs {module}: pip install 'maskwatch[{extra}]'")


def first_line(exc: BaseException) -> str:
    """An exception's first line, or its type when it says nothing: library errors are often pages long."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
