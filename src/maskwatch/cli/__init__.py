"""The ``maskwatch`` command. Each subcommand lives in its own module of this package.

Command modules import heavy libraries (TensorFlow, Ray) inside their functions
so that ``maskwatch detect`` starts fast.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

from rich.markup import escape

from maskwatch.cli.app import app, console_err
from maskwatch.errors import MaskwatchError

COMMAND_MODULES = sorted(
    m.name for m in pkgutil.iter_modules(__path__) if m.name not in ("app",) and not m.name.startswith("_")
)
"""Modules under ``maskwatch.cli`` that register commands on ``app`` (every module but ``app``)."""

for _module in COMMAND_MODULES:
    importlib.import_module(f"maskwatch.cli.{_module}")


def main() -> None:
    """Entry point: user errors become one line on stderr and a non-zero exit, never a traceback."""
    try:
        code = app(standalone_mode=False)  # usage errors come back to us, to be printed as one line
    except MaskwatchError as exc:
        console_err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True, markup=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        console_err.print("interrupted", highlight=False)
        sys.exit(130)
    except OSError as exc:  # the machine's side: a read-only or full disk, a path under a file, a permission
        where = f"{exc.filename}: " if exc.filename else ""
        console_err.print(f"error: {where}{exc.strerror or exc}", highlight=False, soft_wrap=True, markup=False)
        sys.exit(2)
    except Exception as exc:
        if not _is_usage_error(exc):
            raise
        if type(exc).__name__ == "NoArgsIsHelpError":  # bare `maskwatch`: the help, as Click would show it
            console_err.print(exc.format_message(), highlight=False, markup=False)
            sys.exit(exc.exit_code)
        command = exc.ctx.command_path if getattr(exc, "ctx", None) else "maskwatch"
        message = f"error: {exc.format_message()} (see {command} --help)"
        console_err.print(message, highlight=False, soft_wrap=True, markup=False)
        sys.exit(exc.exit_code)
    sys.exit(code if isinstance(code, int) else 0)


def _is_usage_error(exc: Exception) -> bool:
    """Click's usage errors (bad option value, missing argument, unknown option or command), by their interface:
    Typer ships its own copy of Click, so the class to catch is not importable from a stable place."""
    return hasattr(exc, "format_message") and isinstance(getattr(exc, "exit_code", None), int)


__all__ = ["app", "main"]
