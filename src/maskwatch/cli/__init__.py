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
        app()
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


__all__ = ["app", "main"]
