"""What every export shares: the formats, the output folder check, the report beside the model."""

from __future__ import annotations

import json
import platform
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from maskwatch.errors import InputError
from maskwatch.export.measure import THREADS
from maskwatch.media.files import prepare_output_folder

FORMATS = ("onnx-int8", "tflite")
REPORT_FILE = "export.json"
"""Parity and speed figures of an export, written beside its model."""


def check_format(fmt: str, allowed: tuple[str, ...] = FORMATS) -> str:
    if fmt not in allowed:
        raise InputError(f"unknown export format {fmt!r}; choose {' or '.join(allowed)}")
    return fmt


def prepare_out(out: str | Path, source: str | Path | None = None) -> Path:
    """A new or empty output folder (an export never overwrites files already there), not the source itself."""
    out = Path(out)
    if source is not None and out.resolve() == Path(source).resolve():
        raise InputError(f"{out}: is the source; write the export to another folder")
    if out.is_dir() and any(out.iterdir()):
        raise InputError(f"{out}: folder is not empty; write the export to a new folder")
    return prepare_output_folder(out)


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def machine() -> dict[str, Any]:
    import os

    import onnxruntime

    return {
        "cpu_count": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "onnxruntime": onnxruntime.__version__,
    }


def export_report(
    fmt: str, source: str, out: Path, parity: dict, speed: dict, end_to_end_fps: dict | None = None
) -> dict[str, Any]:
    """What every export reports (``export.json``): its parity and speed, and where and when they were measured."""
    report: dict[str, Any] = {"format": fmt, "source": source, "out": str(out), "parity": parity, "speed_ms": speed}
    if end_to_end_fps is not None:
        report["end_to_end_fps"] = end_to_end_fps
    return {**report, "threads": THREADS, "machine": machine(), "measured": now()}


def write_report(out: Path, report: dict[str, Any]) -> Path:
    path = out / REPORT_FILE
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return path
