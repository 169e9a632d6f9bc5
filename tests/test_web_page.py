"""The web page in a real browser: Debian's chromium driven by Playwright, a fake webcam showing a face.

Needs ``apt-get install chromium`` and ``pip install playwright`` (no ``playwright install``:
the test launches /usr/bin/chromium). Skips with the reason when either is missing.
Screenshots go to the test's tmp dir and, when ``MASKWATCH_ARTIFACTS`` is set, to that folder.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")


def fake_camera_args(camera: Path) -> list[str]:
    """Chromium's flags for a fake webcam that plays ``camera`` (a y4m file) without asking the user."""
    return [
        "--no-sandbox",
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",
        f"--use-file-for-fake-video-capture={camera}",
    ]


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
            args=fake_camera_args(camera),
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
    # Stop leaves no boxes over a black frame, not even from an answer still in flight
    page.wait_for_timeout(1500)
    after = page.evaluate(
        """() => {
        const c = document.getElementById('live-overlay');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
        return {n, stream: document.getElementById('live-video').srcObject !== null};
    }"""
    )
    assert after == {"n": 0, "stream": False}
    assert page.locator("#live-labels li").count() == 0
    assert page.locator("#live-count").inner_text() == "0 faces"


def upload(page, path: Path, timeout: float = 60_000) -> str:
    """Choose a file, press Detect and wait until the page says done or shows an error; returns the status."""
    page.set_input_files("#file", str(path))
    page.click("#upload-form button[type=submit]")
    page.wait_for_function(
        "(() => { const s = document.getElementById('upload-status'); return s.textContent === 'done' "
        "|| s.className === 'error'; })()",
        timeout=timeout,
    )
    return page.locator("#upload-status").inner_text()


@pytest.mark.slow
def test_upload_image_shows_annotated_result_and_table(server, browser_page, astronaut_bgr, tmp_path):
    photo = tmp_path / "astronaut.jpg"
    cv2.imwrite(str(photo), astronaut_bgr)
    page = browser_page
    page.goto(server + "/")
    assert upload(page, photo) == "done"
    assert page.locator("#photo").is_visible() and page.locator("#photo-overlay").is_visible()
    assert len(page.evaluate("JSON.parse(document.getElementById('photo-overlay').dataset.labels)")) >= 1
    rows = page.locator("#faces-table tbody tr")
    assert rows.count() >= 1 and "no faces" not in rows.first.inner_text()
    # the number shown is the combined confidence: face score x class probability, both also shown
    for i in range(rows.count()):
        cells = {c: rows.nth(i).locator(f"td.{c}").inner_text() for c in ("confidence", "probability", "detection")}
        if cells["confidence"]:
            expected = float(cells["probability"]) * float(cells["detection"])
            assert float(cells["confidence"]) == pytest.approx(expected, abs=2e-3)
    shot = tmp_path / "upload_image.png"
    page.screenshot(path=str(shot), full_page=True)
    save_artifact(shot)


@pytest.mark.slow
def test_upload_video_runs_a_job_and_lists_faces(server, browser_page, astronaut_bgr, tmp_path):
    from conftest import moving_face_frames, write_video

    video = write_video(tmp_path / "walk.mp4", moving_face_frames(astronaut_bgr, count=12))
    page = browser_page
    page.goto(server + "/")
    assert upload(page, video) == "done"
    # one row per person (the one face walking through), not one per frame
    rows = page.locator("#faces-table tbody tr")
    assert rows.count() == 1
    cells = rows.first.locator("td").all_inner_texts()
    assert cells[0].startswith("#") and "(frame 0)" in cells[2] and "frame" in cells[3] and int(cells[4]) >= 3
    headers = page.locator("#faces-table thead th").all_inner_texts()
    assert headers[:4] == ["person", "class", "first seen", "last seen"]
    assert "12 frame(s)" in page.locator("#summary").inner_text()
    keyframe = page.locator("#result-image")
    assert keyframe.is_visible() and keyframe.get_attribute("src").startswith("data:image/jpeg;base64,")
    shot = tmp_path / "upload_video.png"
    page.screenshot(path=str(shot), full_page=True)
    save_artifact(shot)


def test_model_panel_shows_test_figures_and_no_install_path(server, browser_page):
    from maskwatch.inference.bundle import resolve_bundle_dir

    page = browser_page
    page.goto(server + "/")
    page.wait_for_selector("#model-metrics", timeout=15_000)
    rows = dict(tuple(r.locator("td").all_inner_texts()) for r in page.locator("#model-metrics tbody tr").all())
    classes = page.locator("#model-classes .chip").all_inner_texts()
    assert re.fullmatch(r"0\.\d+ \(95% CI 0\.\d+–[01](\.\d+)?\), \d+ images", rows["test accuracy"])
    for cls in classes:
        assert re.fullmatch(r"[01](\.\d+)?|n/a \(no images\)", rows[f"test recall {cls}"])
    assert float(rows["test calibration error (ECE)"]) < 1
    text = page.locator("body").inner_text()
    assert "maskwatch:default" in text
    assert str(resolve_bundle_dir("maskwatch:default").parent) not in page.content() and "site-packages" not in text


def test_a_failed_upload_clears_the_previous_result(server, browser_page, astronaut_bgr, tmp_path):
    photo = tmp_path / "astronaut.jpg"
    cv2.imwrite(str(photo), astronaut_bgr)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image at all")
    page = browser_page
    page.goto(server + "/")
    assert upload(page, photo) == "done"
    assert page.locator("#result").is_visible()
    status = upload(page, broken)
    assert status.startswith("422: broken.jpg"), status
    assert not page.locator("#result").is_visible()
    assert page.locator("#faces-table tbody tr").count() == 0
    assert page.locator("#summary").inner_text() == "" and page.locator("#photo").get_attribute("src") is None


def test_captions_on_a_small_picture_neither_overlap_nor_leave_it(server, browser_page, tmp_path):
    """Crowded faces on a 160 x 120 photo, some at its edges: every caption inside the picture, none on another."""
    page = browser_page
    page.goto(server + "/")
    layouts = page.evaluate(
        """() => {
        const stage = document.createElement('div');
        stage.className = 'stage';
        stage.style.width = '320px';
        stage.style.height = '240px';
        const canvas = document.createElement('canvas');
        canvas.className = 'overlay';
        stage.appendChild(canvas);
        document.body.appendChild(stage);
        const face = (box, label, track) => ({box, label, score: 0.97, detection_score: 0.8, track_id: track});
        const crowds = [
          [face([2, 2, 40, 40], 'with_mask', 1), face([30, 5, 70, 45], 'without_mask', 2),
           face([60, 0, 100, 38], 'incorrect_mask', 3), face([120, 4, 160, 44], 'without_mask', 14),
           face([0, 80, 40, 120], 'with_mask', 5), face([125, 85, 160, 120], 'without_mask', 6),
           face([70, 60, 100, 90], 'too_small', null)],
          [face([140, 100, 159, 119], 'with_mask', 7)],
        ];
        return crowds.map((faces) => {
          drawFaces(canvas, faces, 160, 120);
          return {labels: JSON.parse(canvas.dataset.labels), w: canvas.width, h: canvas.height};
        });
    }"""
    )
    for layout in layouts:
        w, h = layout["w"], layout["h"]
        assert w >= 320  # drawn at the size shown, not 160 px wide with outsized letters
        rects = layout["labels"]
        for i, (x, y, rw, rh) in enumerate(rects):
            assert x >= 0 and y >= 0 and x + rw <= w + 0.5 and y + rh <= h + 0.5, (x, y, rw, rh)
            for ox, oy, ow, oh in rects[i + 1 :]:
                assert x >= ox + ow or ox >= x + rw or y >= oy + oh or oy >= y + rh, "captions overlap"
