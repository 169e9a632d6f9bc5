"""Model bundles: the hand-off from training to inference.

A bundle is a folder holding ``model.onnx`` (float32 NHWC RGB pixels in 0..255,
normalisation inside the graph, softmax out) and ``bundle.json`` (classes, input
size, crop, backbone, metrics, split-manifest hash, the training command,
versions). Packaged bundles are named ``maskwatch:NAME``.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError, field_validator

from maskwatch.errors import ModelError
from maskwatch.faces import TOO_SMALL
from maskwatch.inference.crops import DEFAULT_MARGIN

BUNDLE_FORMAT = "maskwatch-bundle/1"
MODEL_FILE = "model.onnx"
META_FILE = "bundle.json"
DEFAULT_BUNDLE = "maskwatch:default"


class CropSpec(BaseModel):
    margin: float = DEFAULT_MARGIN
    detector: str = "blazeface"


class BundleMeta(BaseModel):
    """What ``bundle.json`` holds; validated on load so a malformed bundle fails in one line."""

    format: str = BUNDLE_FORMAT
    classes: list[str] = Field(min_length=2)
    input_size: int = Field(ge=16, le=1024)
    preprocessing: str = "RGB float32 0..255, NHWC; normalisation is inside the ONNX graph"
    crop: CropSpec = Field(default_factory=CropSpec)
    backbone: str = "unknown"
    metrics: dict[str, Any] = Field(default_factory=dict)
    split_manifest_sha256: str | None = None
    train_command: str | None = None
    versions: dict[str, str] = Field(default_factory=dict)
    created: str | None = None
    export: dict[str, Any] | None = None
    """Set on an exported bundle (``maskwatch export``): its format, source bundle, calibration set and parity."""
    trained_on_photos: list[str] = Field(default_factory=list)
    """Digests of the annotated photos whose faces it learnt from (``maskwatch.data.provenance``)."""

    @field_validator("classes")
    @classmethod
    def _distinct_and_not_reserved(cls, classes: list[str]) -> list[str]:
        """Two classes of one name would collapse a face's probabilities; ``too_small`` is what detect calls a face
        too small to classify."""
        twice = sorted({name for name in classes if classes.count(name) > 1})
        if twice:
            raise ValueError(f"names class {twice[0]!r} twice")
        if TOO_SMALL in classes:
            raise ValueError(f"'{TOO_SMALL}' is reserved for faces too small to classify")
        return classes


@dataclass(frozen=True)
class Bundle:
    """A loaded bundle: its metadata and the ONNX model bytes."""

    meta: BundleMeta
    onnx: bytes
    source: str

    @property
    def classes(self) -> list[str]:
        return self.meta.classes

    @property
    def name(self) -> str:
        """``maskwatch:NAME`` for a packaged bundle, else the folder's own name: never where it is installed.

        What a server shows to its clients (a path would tell them the server's file layout).
        """
        folder = Path(self.source)
        packaged = Path(str(resources.files("maskwatch.packaged")))
        with contextlib.suppress(OSError, ValueError):
            if folder.resolve().parent == packaged.resolve():
                return f"maskwatch:{folder.name}"
        return folder.name or str(folder)


def packaged_bundles() -> list[str]:
    """Names of bundles shipped inside the package, as ``maskwatch:NAME``."""
    root = resources.files("maskwatch.packaged")
    return sorted(f"maskwatch:{p.name}" for p in root.iterdir() if p.is_dir() and p.joinpath(META_FILE).is_file())


def resolve_bundle_dir(model: str | Path | None) -> Path:
    """The folder of a bundle given as ``None`` (default), ``maskwatch:NAME``, a folder or its bundle.json.

    ``None`` means ``$MASKWATCH_MODEL`` when set (handy for services), else the packaged default.
    """
    name = str(model) if model is not None else os.environ.get("MASKWATCH_MODEL") or DEFAULT_BUNDLE
    if name.startswith("maskwatch:"):
        folder = Path(str(resources.files("maskwatch.packaged").joinpath(name.split(":", 1)[1])))
        if not (folder / META_FILE).is_file():
            available = ", ".join(packaged_bundles()) or "none"
            raise ModelError(f"no packaged model bundle {name!r} (available: {available})")
        return folder
    path = Path(name)
    if path.is_file() and path.name in (META_FILE, MODEL_FILE):
        path = path.parent
    if not path.exists():
        raise ModelError(f"{path}: model bundle not found")
    if not path.is_dir():
        raise ModelError(f"{path}: a model bundle is a folder with {MODEL_FILE} and {META_FILE}")
    return path


def load_bundle(model: str | Path | None = None) -> Bundle:
    """Load and validate a bundle, raising a one-line ``ModelError`` for anything wrong."""
    folder = resolve_bundle_dir(model)
    meta_path, model_path = folder / META_FILE, folder / MODEL_FILE
    for required in (meta_path, model_path):
        if not required.is_file():
            raise ModelError(f"{folder}: model bundle lacks {required.name}")
    try:
        meta = BundleMeta.model_validate(json.loads(meta_path.read_text(encoding="utf-8")))
    except json.JSONDecodeError as exc:
        raise ModelError(f"{meta_path}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "bundle"
        message = str(first["msg"]).removeprefix("Value error, ")  # our own validators' text, as written
        raise ModelError(f"{meta_path}: {where}: {message}") from None
    if meta.format != BUNDLE_FORMAT:
        raise ModelError(f"{meta_path}: unsupported bundle format {meta.format!r} (expected {BUNDLE_FORMAT})")
    return Bundle(meta=meta, onnx=model_path.read_bytes(), source=str(folder))


def save_bundle(folder: str | Path, onnx_bytes: bytes, meta: BundleMeta) -> Path:
    """Write a bundle folder (model first, metadata last, so a half-written bundle never validates)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MODEL_FILE).write_bytes(onnx_bytes)
    tmp = folder / (META_FILE + ".tmp")
    tmp.write_text(meta.model_dump_json(indent=2) + "\n", encoding="utf-8")
    tmp.replace(folder / META_FILE)
    return folder
