"""The face-detector interface, detector fingerprints and the registry of detectors.

Box maths (IoU, non-maximum suppression) lives in ``maskwatch.inference.boxes``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Protocol

import numpy as np

from maskwatch.errors import ModelError
from maskwatch.faces import Detection


class FaceDetector(Protocol):
    """Finds faces in a BGR frame. Implementations must be cheap to call per frame."""

    name: str

    def detect(self, image_bgr: np.ndarray) -> list[Detection]: ...


def load_model_meta(model_path: Path | None, packaged_meta: str, what: str) -> dict:
    """The JSON beside a detector's ONNX file (operating threshold, input size, training recipe); the packaged
    file's when no model is named, empty when there is none. ``what`` names the detector in errors."""
    if model_path is None:
        text = resources.files("maskwatch.packaged").joinpath(packaged_meta)
        return json.loads(text.read_text()) if text.is_file() else {}
    meta_path = model_path.with_suffix(".json")
    if not meta_path.is_file():
        return {}
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ModelError(f"{meta_path}: unreadable {what} metadata ({type(exc).__name__})") from None
    if not isinstance(meta, dict):
        raise ModelError(f"{meta_path}: {what} metadata must be a JSON object")
    return meta


def fingerprint(*parts: bytes | str) -> str:
    """A short hash of what a detector's boxes depend on (model bytes, settings).

    Detectors expose it as ``version``; the training crop cache keys on it, so a new
    model behind the same detector name never reuses crops the old one cut.
    """
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part if isinstance(part, bytes) else part.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:12]


def detector_version(detector: FaceDetector) -> str:
    """``detector.version``, or its name for detectors (e.g. a user's own) that have none."""
    return str(getattr(detector, "version", "") or detector.name)


_REGISTRY: dict[str, Callable[..., FaceDetector]] = {}


_FOLDER_LOADERS: list[tuple[Callable[[str], bool], Callable[..., FaceDetector]]] = []
"""Detectors given by a folder instead of a name (e.g. an int8 export): (is it one?, load it)."""


def register_detector(name: str, factory: Callable[..., FaceDetector]) -> None:
    """Make a detector available to ``create_detector`` and ``--detector``."""
    _REGISTRY[name] = factory


def register_folder_loader(is_one: Callable[[str], bool], load: Callable[..., FaceDetector]) -> None:
    """Let ``create_detector`` (and ``--detector``) take a folder that ``is_one`` recognises, built by ``load``."""
    _FOLDER_LOADERS.append((is_one, load))


def detector_names() -> list[str]:
    return sorted(_REGISTRY)


def create_detector(name: str, **options: object) -> FaceDetector:
    """Build a registered detector by name (or an exported detector by its folder), or a one-line ``ModelError``."""
    if name not in _REGISTRY:
        for is_one, load in _FOLDER_LOADERS:
            if is_one(name):
                return load(name, **options)
        raise ModelError(f"unknown detector {name!r}; choose one of: {', '.join(detector_names())}")
    return _REGISTRY[name](**options)
