"""What the classifier's and the detector's training share: weights-file checks, JSON state files, run provenance."""

from __future__ import annotations

import contextlib
import json
import platform
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from maskwatch.errors import ModelError

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def check_hdf5(path: str | Path, what: str = "Keras weights") -> None:
    """A one-line ``ModelError`` unless ``path`` can be read and is an HDF5 file (what Keras weights are)."""
    try:
        with open(path, "rb") as f:  # HDF5 puts its signature at 0, 512, 1024, ... (after a user block)
            head = f.read(8)
            offset = 512
            while head != HDF5_SIGNATURE and len(head) == 8 and offset <= 1 << 20:
                f.seek(offset)
                head = f.read(8)
                offset *= 2
    except OSError as exc:
        raise ModelError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if head != HDF5_SIGNATURE:
        raise ModelError(f"{path}: not {what} (not an HDF5 file)")


def write_json(path: Path, payload: Any) -> None:
    """Write JSON atomically: a Ctrl-C mid-write leaves the previous file intact."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)


def versions() -> dict[str, str]:
    """Versions of Python and the packages a trained model depends on, for its bundle's provenance."""
    from importlib import metadata

    found = {"python": platform.python_version()}
    for package in ("maskwatch", "numpy", "keras", "tensorflow", "tensorflow-cpu", "onnxruntime", "tf2onnx"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[package] = metadata.version(package)
    return found


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
