"""Filesystem helpers for user-named paths: read a JSON input, make an output folder and prove it writable.

Each failure is a one-line ``InputError`` naming the path.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from maskwatch.errors import InputError


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
