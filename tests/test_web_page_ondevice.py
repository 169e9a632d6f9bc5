"""The page's on-device mode in a real browser: detection runs in Chromium, the server's detection is blocked.

Chromium's fake camera plays a video made here from the packaged demo photo (one face bare, one masked).
The test blocks ``/v1/detect*`` and the ``/v1/live`` WebSocket for the page, lets the page find and
classify the faces itself (ONNX Runtime Web), then sends the very frame the page analysed to the
server's live endpoint and checks that both found the same faces with the same classes.
Needs Debian's chromium, Playwright and the vendored runtime (``python -m maskwatch.web.vendor``).
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from test_web_page import CHROMIUM, fake_camera_args, save_artifact, server, sync_playwright, write_y4m  # noqa: F401 (fixtures)

from maskwatch.web import vendor

pytestmark = [pytest.mark.browser, pytest.mark.slow]

DEMO = Path(__file__).resolve().parents[1] / "src" / "maskwatch" / "assets" / "demo.jpg"
KEPT_PATHS = "async () => (await (await caches.open('maskwatch-v1')).keys()).map((r) => new URL(r.url).pathname)"
"""Paths the page's service worker keeps (``page.evaluate`` awaits it; ``wait_for_function`` would not)."""
MIN_IOU = 0.9
"""Browser and server boxes of one face: the same model on the same pixels; resizing and float rounding differ."""


def demo_frame(size: tuple[int, int] = (640, 480)) -> np.ndarray:
    """The packaged demo photo, shrunk into a webcam frame on a grey background."""
    photo = cv2.imread(str(DEMO))
    w, h = size
    scale = min(w / photo.shape[1], h / photo.shape[0])
    photo = cv2.resize(
        photo, (round(photo.shape[1] * scale), round(photo.shape[0] * scale)), interpolation=cv2.INTER_AREA
    )
    frame = np.full((h, w, 3), 100, np.uint8)
    top, left = (h - photo.shape[0]) // 2, (w - photo.shape[1]) // 2
    frame[top : top + photo.shape[0], left : left + photo.shape[1]] = photo
    return frame


def box_iou(a: list[float], b: list[float]) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / union if union > 0 else 0.0


def match_faces(browser: list[dict], answer: list[dict]) -> list[tuple[dict, dict, float]]:
    """Each browser face with the server face it overlaps most (greedy, best IoU first)."""
    pairs = sorted(
        ((box_iou(b["box"], s["box"]), i, j) for i, b in enumerate(browser) for j, s in enumerate(answer)),
        reverse=True,
    )
    used_b, used_s, out = set(), set(), []
    for iou, i, j in pairs:
        if i not in used_b and j not in used_s:
            used_b.add(i)
            used_s.add(j)
            out.append((browser[i], answer[j], iou))
    return out


def server_live_answer(base: str, frame_png: bytes) -> dict:
    """The server's ``/v1/live`` answer for one frame (the webcam path: the same detector as the page's)."""
    from websockets.sync.client import connect

    with connect(base.replace("http://", "ws://") + "/v1/live") as ws:
        ws.send(frame_png)
        return json.loads(ws.recv(timeout=60))


@pytest.fixture
def camera(tmp_path) -> Path:
    return write_y4m(tmp_path / "demo.y4m", [demo_frame()] * 10)


def test_on_device_mode_finds_and_classifies_faces_with_the_server_blocked(server, sync_playwright, camera, tmp_path):  # noqa: F811
    if not vendor.is_vendored():
        pytest.skip("onnxruntime-web not vendored: run python -m maskwatch.web.vendor (needs the npm registry)")
    blocked: list[str] = []
    requests: list[tuple[str, str]] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=fake_camera_args(camera),
        )
        try:
            context = browser.new_context(viewport={"width": 1100, "height": 1600})

            def refuse(route):
                blocked.append(route.request.url)
                route.abort()

            def refuse_socket(ws):
                blocked.append(ws.url)
                ws.close(code=1011, reason="blocked by the test")

            context.route("**/v1/detect**", refuse)
            context.route("**/v1/jobs**", refuse)
            context.route_web_socket("**/v1/live**", refuse_socket)
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("request", lambda r: requests.append((r.method, r.url)))
            page.goto(server + "/")
            # the blocks hold: the server's detection cannot be reached from this page
            reached = page.evaluate(
                """async () => {
                let http = true, socket = true;
                try { await fetch('/v1/detect', {method: 'POST', body: new FormData()}); } catch (e) { http = false; }
                socket = await new Promise((resolve) => {
                    const ws = new WebSocket(`ws://${location.host}/v1/live`);
                    ws.onopen = () => resolve(true);
                    ws.onerror = () => resolve(false);
                    ws.onclose = () => resolve(false);
                });
                return {http, socket};
            }"""
            )
            assert reached == {"http": False, "socket": False}
            requests.clear()

            page.wait_for_selector("#ondevice-start:not([disabled])", timeout=30_000)
            page.click("#ondevice-start")
            page.wait_for_function(
                "Number(document.getElementById('ondevice-count').dataset.frames) >= 3",
                timeout=180_000,
                polling=250,
            )
            assert page.locator("#ondevice-count").get_attribute("data-faces") == "2"
            labels = sorted(
                page.locator("#ondevice-labels .ondevice-label").evaluate_all(
                    "nodes => nodes.map((n) => n.dataset.label)"
                )
            )
            assert labels == ["with_mask", "without_mask"]
            fps = float(
                page.wait_for_function(
                    "document.getElementById('ondevice-fps').dataset.fps", timeout=30_000
                ).json_value()
            )
            assert fps > 0

            result = page.evaluate("maskwatchDetectFrame()")
            shot = tmp_path / "on_device.png"
            page.screenshot(path=str(shot), full_page=True)
            save_artifact(shot)
            page.click("#ondevice-stop")
            page.wait_for_function("document.getElementById('ondevice-count').dataset.faces === '0'", timeout=30_000)
            assert page.locator("#ondevice-labels li").count() == 0
            assert not errors, f"JavaScript errors on the page: {errors}"
        finally:
            browser.close()

    # nothing of the frames left the page: no POST, no detection endpoint, only GETs of the page and the models
    assert not [r for r in requests if r[0] != "GET"], requests
    assert not [u for _, u in requests if "/v1/detect" in u or "/v1/live" in u or "/v1/jobs" in u]
    assert not [u for u in blocked if "/v1/live" in u or "/v1/detect" in u][2:], blocked  # only the two probes

    frame_png = base64.b64decode(result["png"].split(",", 1)[1])
    answer = server_live_answer(server, frame_png)
    on_device = result["faces"]
    assert len(on_device) == len(answer["faces"]) == 2, (on_device, answer["faces"])
    pairs = match_faces(on_device, answer["faces"])
    assert len(pairs) == 2
    for mine, theirs, iou in pairs:
        assert mine["label"] == theirs["label"], (mine, theirs)
        assert iou >= MIN_IOU, (mine["box"], theirs["box"], iou)
        assert abs(mine["detection_score"] - theirs["detection_score"]) < 0.05
        assert abs(mine["score"] - theirs["score"]) < 0.05
    assert sorted(f["label"] for f in on_device) == ["with_mask", "without_mask"]


def test_page_installs_and_runs_on_device_offline(server, sync_playwright, camera, tmp_path):  # noqa: F811
    if not vendor.is_vendored():
        pytest.skip("onnxruntime-web not vendored: run python -m maskwatch.web.vendor (needs the npm registry)")
    with sync_playwright() as p:
        # Chromium's own verdict on installing the page as an app (in a profile: incognito windows install nothing)
        profile = p.chromium.launch_persistent_context(
            tmp_path / "profile", executable_path=str(CHROMIUM), args=["--no-sandbox"]
        )
        try:
            page = profile.new_page()
            page.goto(server + "/")
            page.wait_for_function("navigator.serviceWorker.controller !== null", timeout=60_000)
            cdp = profile.new_cdp_session(page)
            assert cdp.send("Page.getAppManifest")["errors"] == []
            assert cdp.send("Page.getInstallabilityErrors")["installabilityErrors"] == []
        finally:
            profile.close()
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=fake_camera_args(camera),
        )
        try:
            context = browser.new_context()
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(server + "/")
            manifest = page.evaluate(
                "async () => (await fetch(document.querySelector('link[rel=manifest]').href)).json()"
            )
            assert manifest["display"] == "standalone" and manifest["start_url"] == "/"
            sizes = {icon["sizes"] for icon in manifest["icons"]}
            assert {"192x192", "512x512"} <= sizes
            for icon in manifest["icons"]:
                assert page.evaluate(f"async () => (await fetch('{icon['src']}')).ok"), icon
            # the service worker controls the page and has kept the page, the runtime and the models
            page.wait_for_function("navigator.serviceWorker.controller !== null", timeout=60_000)
            wanted = {"/", "/static/vendor/ort-wasm-simd-threaded.wasm", "/v1/ondevice", "/v1/ondevice/detector.onnx"}
            wanted |= {"/v1/ondevice/classifier.onnx"}
            deadline = time.monotonic() + 60
            while not wanted <= set(page.evaluate(KEPT_PATHS)):
                assert time.monotonic() < deadline, f"not kept: {wanted - set(page.evaluate(KEPT_PATHS))}"
                page.wait_for_timeout(250)
            context.set_offline(True)
            page.reload()
            assert not page.evaluate(
                "async () => { try { await fetch('/healthz'); return true; } catch (e) { return false; } }"
            )
            page.wait_for_selector("#ondevice-start:not([disabled])", timeout=30_000)
            page.click("#ondevice-start")
            page.wait_for_function(
                "Number(document.getElementById('ondevice-count').dataset.frames) >= 2", timeout=180_000, polling=250
            )
            assert page.locator("#ondevice-count").get_attribute("data-faces") == "2"
            assert page.evaluate("self.crossOriginIsolated")  # kept with the page: threads work offline too
            shot = tmp_path / "on_device_offline.png"
            page.screenshot(path=str(shot), full_page=True)
            save_artifact(shot)
            assert not errors, f"JavaScript errors on the page: {errors}"
        finally:
            browser.close()
