"""ONNX Runtime sessions configured once for the whole package."""

from __future__ import annotations

import os

import onnxruntime as ort

from maskwatch.errors import ModelError, first_line


def default_threads() -> int:
    """Intra-op threads: all cores, capped so small models do not pay for thread wake-ups."""
    return int(os.environ.get("MASKWATCH_THREADS", min(4, os.cpu_count() or 1)))


def create_session(model: bytes | str, threads: int | None = None) -> ort.InferenceSession:
    """A CPU inference session, or a one-line ``ModelError`` if the model cannot be loaded.

    Spinning is off: by default ONNX Runtime's idle worker threads spin for a while
    after each run, so with a detector and a classifier taking turns on the same
    cores each session's spinning threads steal the other's CPU; off, the end-to-end
    pipeline is faster on few cores (measured in docs/benchmarks.md).
    """
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or default_threads()
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises several unrelated types for a bad file
        raise ModelError(f"cannot load ONNX model: {first_line(exc)}") from None
