"""The web page in a real browser: Debian's chromium driven by Playwright, a fake webcam showing a face.

Needs ``apt-get install chromium`` and ``pip install playwright`` (no ``playwright install``:
the test launches /usr/bin/chromium). Skips with the reason when either is missing.
Screenshots go to the test's tmp dir and, when ``MASKWATCH_ARTIFACTS`` is set, to that folder.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def sync_playwright():
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found: install Debian's chromium (apt-get install -y chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright not installed: pip install playwright (or pip install -e .[dev])")
    return sync_playwright


def face_frames(face_bgr: np.ndarray, count: int = 30, size: tuple[int, int] = (640, 480)) -> list[np.ndarray]:
    """A webcam view: the astronaut photo centred on a grey background, drifting a little."""
    w, h = size
    photo = cv2.resize(face_bgr, (400, 400))
    frames = []
    for i in range(count):
        frame = np.full((h, w, 3), 100, np.uint8)
        x = 100 + (i % 10) * 4
        frame[40:440, x : x + 400] = photo
        frames.append(frame)
    return frames


def write_y4m(path: Path, frames: list[np.ndarray], fps: int = 15) -> Path:
    """Frames as a YUV4MPEG2 (I420) file, the format of Chromium's --use-file-for-fake-video-capture."""
    h, w = frames[0].shape[:2]
    with path.open("wb") as fh:
        fh.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for frame in frames:
            fh.write(b"FRAME\n")
            fh.write(cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420).tobytes())
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    """The real ``maskwatch serve`` on a free port."""
    import httpx

    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "maskwatch", "serve", "--port", str(port), "--workers", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    try:
        while True:
            if process.poll() is not None:
                pytest.skip(f"maskwatch serve did not start: {process.stdout.read().strip()}")
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "maskwatch serve did not answer /healthz within 60 s"
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        process.communicate(timeout=30)


def save_artifact(screenshot: Path) -> None:
    folder = os.environ.get("MASKWATCH_ARTIFACTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        shutil.copy(screenshot, Path(folder) / screenshot.name)


@pytest.fixture
def browser_page(sync_playwright, astronaut_bgr, tmp_path):
    camera = write_y4m(tmp_path / "face.y4m", face_frames(astronaut_bgr))
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[
                "--no-sandbox",
                "--use-fake-device-for-media-stream",
                "--use-fake-ui-for-media-stream",
                f"--use-file-for-fake-video-capture={camera}",
            ],
        )
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 1400})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            yield page
            assert not errors, f"JavaScript errors on the page: {errors}"
        finally:
            browser.close()


@pytest.mark.slow
def test_live_webcam_draws_boxes_and_labels(server, browser_page, tmp_path):
    page = browser_page
    page.goto(server + "/")
    page.wait_for_selector("#model-classes .chip", timeout=15_000)
    classes = page.locator("#model-classes .chip").all_inner_texts()
    assert len(classes) >= 2

    page.click("#live-start")
    page.wait_for_function(
        "Number(document.getElementById('live-count').dataset.faces) >= 1", timeout=60_000, polling=200
    )
    labels = page.locator("#live-labels .live-label")
    assert labels.count() >= 1
    assert page.locator("#live-labels .live-label").first.get_attribute("data-label") in [*classes, "too_small"]
    # the overlay canvas has coloured box pixels on it
    painted = page.evaluate(
        """() => {
        const c = document.getElementById('live-overlay');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
        return {n, w: c.width, h: c.height};
    }"""
    )
    assert (painted["w"], painted["h"]) == (640, 480) and painted["n"] > 500
    page.wait_for_function("document.getElementById('live-fps').dataset.fps > 0", timeout=30_000, polling=200)
    shot = tmp_path / "live_webcam.png"
    page.screenshot(path=str(shot), full_page=True)
    save_artifact(shot)
    page.click("#live-stop")
    assert page.locator("#live-start").is_enabled()


@pytest.mark.slow
def test_upload_image_shows_annotated_result_and_table(server, browser_page, astronaut_bgr, tmp_path):
    photo = tmp_path / "astronaut.jpg"
    cv2.imwrite(str(photo), astronaut_bgr)
    page = browser_page
    page.goto(server + "/")
    page.set_input_files("#file", str(photo))
    page.click("#upload-form button[type=submit]")
    page.wait_for_selector("#result-image[src^='data:image/jpeg']", state="visible", timeout=30_000)
    rows = page.locator("#faces-table tbody tr")
    assert rows.count() >= 1 and "no faces" not in rows.first.inner_text()
    assert page.locator("#upload-status").inner_text() == "done"
    shot = tmp_path / "upload_image.png"
    page.screenshot(path=str(shot), full_page=True)
    save_artifact(shot)


@pytest.mark.slow
def test_upload_video_runs_a_job_and_lists_faces(server, browser_page, astronaut_bgr, tmp_path):
    from conftest import moving_face_frames, write_video

    video = write_video(tmp_path / "walk.mp4", moving_face_frames(astronaut_bgr, count=8))
    page = browser_page
    page.goto(server + "/")
    page.set_input_files("#file", str(video))
    page.click("#upload-form button[type=submit]")
    page.wait_for_function("document.getElementById('upload-status').textContent === 'done'", timeout=60_000)
    assert page.locator("#faces-table tbody tr").count() >= 6
    assert "8 frame(s)" in page.locator("#summary").inner_text()
    keyframe = page.locator("#result-image")
    assert keyframe.is_visible() and keyframe.get_attribute("src").startswith("data:image/jpeg;base64,")
    shot = tmp_path / "upload_video.png"
    page.screenshot(path=str(shot), full_page=True)
    save_artifact(shot)
