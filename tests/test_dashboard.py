"""``maskwatch serve --watch``: the dashboard in Chromium (Playwright) and Prometheus ``/metrics``, on a live MJPEG
camera served on 127.0.0.1 showing one person without a mask."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import cv2
import pytest
from conftest import moving_face_frames
from monitor_helpers import WebhookReceiver, free_port, wait_for
from scripted_stream import MjpegServer

CHROMIUM = Path("/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.browser
def test_dashboard_shows_live_view_counts_chart_events_and_downloads(tmp_path, astronaut_bgr):
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found: install Debian's chromium (apt-get install -y chromium)")
    playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed")
    import httpx

    walk = [cv2.imencode(".jpg", f)[1].tobytes() for f in moving_face_frames(astronaut_bgr, count=30)]
    receiver = WebhookReceiver().start()
    port = free_port()
    with MjpegServer((walk + walk[::-1]) * 40, fps=10, speed=1.0) as camera:
        config = tmp_path / "watch.toml"
        config.write_text(
            f"""
[[source]]
name = "door"
url = "{camera.url}"
detector = "maskface"

[rules]
no_mask_seconds = 1
no_mask_classes = ["without_mask", "with_mask"]  # whichever class the astronaut reads as

[report]
interval = 2

[storage]
folder = "events"
blur_faces = true

[webhook]
url = "{receiver.url}"
"""
        )
        server = subprocess.Popen(
            [sys.executable, "-m", "maskwatch", "serve", "--port", str(port), "--workers", "1", "--watch", str(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            wait_for(lambda: _up(httpx, base), 60, "the server")
            with playwright_api.sync_playwright() as p:
                browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
                page = browser.new_page()
                errors: list[str] = []
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                page.goto(base + "/dashboard")
                page.wait_for_function(
                    "() => { const i = document.querySelector('.camera img'); return i && i.naturalWidth === 640; }",
                    timeout=60000,
                )
                page.wait_for_function("() => document.querySelectorAll('#event-rows tr').length >= 1", timeout=60000)
                page.wait_for_function(
                    "() => { const i = document.querySelector('#event-rows img'); return i && i.naturalWidth > 0; }",
                    timeout=30000,
                )
                page.wait_for_function(
                    "() => document.querySelectorAll('#chart circle.point').length >= 2", timeout=60000
                )
                camera_text = page.inner_text(".camera .counts")
                assert "running" in camera_text and re.search(r"in view: \w+_mask 1", camera_text), camera_text
                assert page.inner_text("#event-rows tr td:nth-child(3)") == "no_mask"
                wait_for(
                    lambda: re.search(r"webhook: [1-9]\d* delivered", page.inner_text("#alert-state")),
                    30,
                    "the delivery count",
                )
                page.click("text=last day")
                page.wait_for_function("() => document.querySelectorAll('#chart circle.point').length >= 2")
                assert "hours=24" in page.get_attribute("#history-csv", "href")
                page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
                history = page.request.get(base + "/v1/watch/history?format=csv&hours=1").text()
                events = page.request.get(base + "/v1/watch/events?format=json").json()
                browser.close()
            assert errors == []
            assert history.splitlines()[0].startswith("time,source,start,end,frames,faces_")
            assert len(history.splitlines()) >= 3 and history.splitlines()[1].split(",")[1] == "door"
            assert events[0]["rule"] == "no_mask" and events[0]["delivered"] is True
            assert receiver.received and receiver.received[0][1]["id"] == events[-1]["id"]
            metrics = httpx.get(base + "/metrics").text
            frames = float(re.search(r'^maskwatch_frames_total\{source="door"\} (\S+)$', metrics, re.M).group(1))
            assert frames > 10
            assert re.search(r'^maskwatch_alert_deliveries_total\{sink="webhook"\} [1-9]', metrics, re.M)
            assert re.search(r'^maskwatch_faces_total\{class="\w+_mask",source="door"\} [1-9]', metrics, re.M)
            assert re.search(r'^maskwatch_compliance\{source="door"\} [01]\.0$', metrics, re.M)
            for name in (
                "maskwatch_fps",
                "maskwatch_people",
                "maskwatch_dropped_frames_total",
                "maskwatch_alert_delivery_failures_total",
            ):
                assert name in metrics
        finally:
            server.terminate()
            out, _ = server.communicate(timeout=30)
            receiver.stop()
    assert server.returncode in (0, -15), out


def _up(httpx, base: str) -> bool:
    try:
        return httpx.get(base + "/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
