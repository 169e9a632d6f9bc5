"""Exported (int8) detectors: a registered detector built with quantised copies of its ONNX models.

An export folder (``maskwatch export --detector NAME``) holds ``detector.json`` (the detector it was made from,
and which float model, by SHA-256, each int8 file replaces) and the int8 models. ``--detector FOLDER`` builds
that detector with the copies loaded in place of the originals, so its decoding, passes and thresholds are the
ones its float model runs with. Export folders packaged under ``maskwatch/packaged/`` are registered by name.
"""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path
from typing import Any

from maskwatch.detectors.base import (
    FaceDetector,
    create_detector,
    fingerprint,
    register_detector,
    register_folder_loader,
)
from maskwatch.errors import ModelError
from maskwatch.inference.onnx_runtime import model_sha256, recorded_sessions, substituted_models

EXPORT_FORMAT = "maskwatch-detector-export/1"
META_FILE = "detector.json"


def exported_name(detector: str, fmt: str) -> str:
    """``maskface`` exported as ``onnx-int8`` is ``maskface-int8``."""
    return f"{detector}-{fmt.removeprefix('onnx-')}"


def is_export_folder(path: str | Path) -> bool:
    path = Path(path)
    return (path / META_FILE).is_file() or (path.name == META_FILE and path.is_file())


def load_exported_detector(path: str | Path, **options: Any) -> FaceDetector:
    """The detector an export folder was made from, running the folder's int8 models; one-line errors."""
    folder = Path(path)
    folder = folder.parent if folder.name == META_FILE else folder
    meta_path = folder / META_FILE
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("format") != EXPORT_FORMAT:
            raise ModelError(f"{meta_path}: not an exported detector (format {meta.get('format')!r})")
        base, models = str(meta["detector"]), list(meta["models"])
        substitutes = {str(m["replaces_sha256"]): (folder / str(m["file"])).read_bytes() for m in models}
    except ModelError:
        raise
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ModelError(f"{meta_path}: unreadable exported detector ({type(exc).__name__}: {exc})") from None
    with substituted_models(substitutes), recorded_sessions() as sessions:
        detector = create_detector(base, **options)
    loaded = {model_sha256(session.model) for session in sessions}
    if not {model_sha256(model) for model in substitutes.values()} <= loaded:
        raise ModelError(
            f"{folder}: detector {base!r} no longer loads the model this export was made from (a new model, or "
            f"{'$MASKWATCH_MASKFACE' if 'MASKWATCH_MASKFACE' in os.environ else 'other settings'}); export it again"
        )
    detector.name = str(meta.get("name") or f"{base}-export")
    if hasattr(detector, "version"):  # the crop cache must not mix the int8 detector's crops with the float one's
        detector.version = fingerprint(str(detector.version), *sorted(substitutes))  # type: ignore[attr-defined]
    return detector


def _register_packaged() -> None:
    root = resources.files("maskwatch.packaged")
    for entry in root.iterdir():
        if entry.is_dir() and entry.joinpath(META_FILE).is_file():
            folder = Path(str(entry))
            register_detector(entry.name, lambda folder=folder, **options: load_exported_detector(folder, **options))


_register_packaged()
register_folder_loader(is_export_folder, load_exported_detector)
