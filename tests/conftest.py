"""Shared test fixtures. Each feature's own fixtures live in its test module unless several need them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
YUNET_FILE = SHARED / "weights/yunet/yunet_n_dynamic.onnx"
"""YuNet's pretrained file, which the package does not ship: tests of the plain ``yunet`` detector use this copy."""


@pytest.fixture
def yunet_file(monkeypatch) -> Path:
    """YuNet's own ONNX file, named by ``$MASKWATCH_YUNET`` as a user names it; skips without ``../shared``."""
    if not YUNET_FILE.is_file():
        pytest.skip(f"{YUNET_FILE} not here")
    monkeypatch.setenv("MASKWATCH_YUNET", str(YUNET_FILE))
    return YUNET_FILE


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """``../shared`` beside the checkout (data and weights); tests needing it skip without it."""
    if not (SHARED / "data").is_dir():
        pytest.skip(f"shared data not found at {SHARED}")
    return SHARED


@pytest.fixture(scope="session")
def astronaut_bgr() -> np.ndarray:
    """A real face photo from a PyPI package (scikit-image's public-domain astronaut)."""
    skimage_data = pytest.importorskip("skimage.data")
    return cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR)


@pytest.fixture(scope="module")
def detector():
    """The default pipeline (``maskwatch.pipeline.Detector()``), loaded once per test module."""
    from maskwatch.pipeline import Detector

    return Detector()


@pytest.fixture
def photo(tmp_path, astronaut_bgr) -> Path:
    """The astronaut as a JPEG file: one unmasked face."""
    path = tmp_path / "astronaut.jpg"
    cv2.imwrite(str(path), astronaut_bgr)
    return path


@pytest.fixture
def video(tmp_path, astronaut_bgr) -> Path:
    """A 12-frame MP4 of the astronaut's face sliding across: one person to track."""
    return write_video(tmp_path / "walk.mp4", moving_face_frames(astronaut_bgr, count=12))


def run_cli(*args: str, timeout: float = 180, input_text: str | None = None) -> subprocess.CompletedProcess:
    """Run the real ``maskwatch`` command line in a subprocess, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "maskwatch", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input_text,
    )


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str, code: int | None = None) -> str:
    """A command that failed as users are promised: a non-zero exit (``code`` when given), exactly one line on
    stderr holding every fragment, no traceback. Returns that line."""
    if code is None:
        assert result.returncode != 0, result.stderr
    else:
        assert result.returncode == code, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def write_video(path: Path, frames: list[np.ndarray], fps: float = 10.0) -> Path:
    """Write frames as an MP4 with OpenCV, as a camera recording would be."""
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    assert writer.isOpened(), "OpenCV cannot write MP4 here"
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def moving_face_frames(face_bgr: np.ndarray, count: int = 12, size: tuple[int, int] = (640, 480)) -> list[np.ndarray]:
    """Frames of a face sliding left to right over a plain background: a video for tracking tests."""
    w, h = size
    head = cv2.resize(face_bgr[30:250, 120:330], (180, 188))
    frames = []
    for i in range(count):
        frame = np.full((h, w, 3), 90, np.uint8)
        x = 40 + i * (w - 260) // max(1, count - 1)
        frame[140 : 140 + head.shape[0], x : x + head.shape[1]] = head
        frames.append(frame)
    return frames


@pytest.fixture(scope="session")
def chin_masked_astronaut(astronaut_bgr) -> np.ndarray:
    """The astronaut with a surgical mask pulled down onto the chin, drawn by ``maskwatch synth``'s renderer:
    a mask worn incorrectly, made by our own code (no such photo may be stored in the repository)."""
    from maskwatch.data.synth import find_landmarks, render_mask
    from maskwatch.detectors import create_detector
    from maskwatch.inference.landmarks import FaceMesh

    landmarks = find_landmarks(astronaut_bgr, create_detector("blazeface"), FaceMesh())
    assert landmarks is not None
    return render_mask(astronaut_bgr, landmarks, "chin", "surgical", np.random.default_rng(0)).image
