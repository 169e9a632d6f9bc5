"""User-facing errors: one clear line, non-zero exit, never a traceback."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


class MaskwatchError(Exception):
    """An error caused by the user's input or environment, shown as one line.

    The CLI prints ``str(error)`` and exits with ``exit_code``; the web API maps
    it to an HTTP status. Anything else that escapes is a bug.
    """

    exit_code = 2
    http_status = 400


class InputError(MaskwatchError):
    """A path, file, camera or stream that cannot be read."""


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


def read_json_input(path: str | Path, label: str | None = None) -> Any:
    """A user-supplied JSON file's content, or a one-line ``InputError`` naming ``label`` (default: the path)."""
    path = Path(path)
    label = label or str(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{label}: no such file") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{label}: malformed JSON ({exc.msg}, line {exc.lineno})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{label}: cannot read ({exc})") from None


def file_in_the_way(folder: Path) -> Path | None:
    """``folder`` itself, or its nearest existing parent, when that is a file: the folder cannot be made there."""
    existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
    return existing if existing is not None and not existing.is_dir() else None


def make_folder(folder: Path) -> Path | None:
    """Create ``folder`` and its parents; the highest one this created (None when it existed), so that a run
    failing before its first result can remove exactly what it made. ``OSError`` is the caller's to word."""
    top = None
    for candidate in (folder, *folder.parents):
        if candidate.exists() or candidate.is_symlink():
            break
        top = candidate
    folder.mkdir(parents=True, exist_ok=True)
    return top


def prepare_output_folder(folder: str | Path) -> Path:
    """Create an output folder and prove it writable before any work is done, or a one-line ``InputError``.

    Writability is proven by writing a file, not by ``os.access``: root passes every permission
    check, yet a read-only file system still refuses it.
    """
    folder = Path(folder)
    blocker = file_in_the_way(folder)
    if blocker == folder:
        raise InputError(f"{folder}: is a file, not a folder")
    if blocker is not None:
        raise InputError(f"{folder}: cannot create the output folder ({blocker} is a file)")
    try:
        make_folder(folder)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".maskwatch-write-check.")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise InputError(f"{folder}: output folder is not writable ({exc.strerror or exc})") from None
    return folder
