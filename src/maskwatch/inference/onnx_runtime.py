"""ONNX Runtime sessions configured once for the whole package.

Every model the package runs goes through ``create_session``, which makes two things possible without touching
the detectors: ``recorded_sessions`` keeps each new session's model and the inputs it is given (what calibrating
a quantised copy of any ONNX detector needs), and ``substituted_models`` loads another model (a quantised copy)
wherever a given one would be loaded, so the detector's own pre- and post-processing runs it.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnxruntime as ort

from maskwatch.errors import ModelError, first_line


def default_threads() -> int:
    """Intra-op threads: all cores, capped so small models do not pay for thread wake-ups."""
    return int(os.environ.get("MASKWATCH_THREADS", min(4, os.cpu_count() or 1)))


def model_sha256(model: bytes) -> str:
    return hashlib.sha256(model).hexdigest()


@dataclass
class RecordedSession:
    """A session created inside ``recorded_sessions``: its model and every input feed it was run on."""

    model: bytes
    session: ort.InferenceSession
    feeds: list[dict[str, np.ndarray]] = field(default_factory=list)
    recording: bool = True
    """False once the ``recorded_sessions`` block that made it has ended: later runs are not kept."""

    def run(self, output_names: Any, feed: dict[str, np.ndarray], *args: Any, **kwargs: Any) -> Any:
        if self.recording:
            self.feeds.append({name: np.array(value) for name, value in feed.items()})
        return self.session.run(output_names, feed, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:  # get_inputs, get_outputs, ...: the session's own
        return getattr(self.session, name)


_SUBSTITUTES: ContextVar[Mapping[str, bytes] | None] = ContextVar("maskwatch_substitutes", default=None)
_RECORDING: ContextVar[list[RecordedSession] | None] = ContextVar("maskwatch_recording", default=None)


@contextmanager
def substituted_models(substitutes: Mapping[str, bytes]) -> Iterator[None]:
    """Sessions created inside load ``substitutes[sha256 of the model]`` instead of a model with that hash."""
    token = _SUBSTITUTES.set(dict(substitutes))
    try:
        yield
    finally:
        _SUBSTITUTES.reset(token)


@contextmanager
def recorded_sessions() -> Iterator[list[RecordedSession]]:
    """Sessions created inside record their model and inputs (the list fills as sessions are created and run)."""
    sessions: list[RecordedSession] = []
    token = _RECORDING.set(sessions)
    try:
        yield sessions
    finally:
        _RECORDING.reset(token)
        for session in sessions:
            session.recording = False


def create_session(model: bytes | str, threads: int | None = None, source: object = None) -> ort.InferenceSession:
    """A CPU inference session, or a one-line ``ModelError`` if the model cannot be loaded (naming ``source``, the
    user's file it came from, when there is one).

    Spinning is off: by default ONNX Runtime's idle worker threads spin for a while
    after each run, so with a detector and a classifier taking turns on the same
    cores each session's spinning threads steal the other's CPU; off, the end-to-end
    pipeline is faster on few cores (measured in docs/benchmarks.md).
    """
    substitutes, recording = _SUBSTITUTES.get(), _RECORDING.get()
    if (substitutes or recording is not None) and isinstance(model, str):
        with open(model, "rb") as handle:
            model = handle.read()
    if substitutes:
        model = substitutes.get(model_sha256(model), model)  # type: ignore[arg-type]
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or default_threads()
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises several unrelated types for a bad file
        text = f"cannot load ONNX model: {first_line(exc)}"
        raise ModelError(f"{source}: {text}" if source else text) from None
    if recording is not None:
        recorded = RecordedSession(model, session)  # type: ignore[arg-type]
        recording.append(recorded)
        return recorded  # type: ignore[return-value]
    return session
