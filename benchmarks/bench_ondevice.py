"""The page's on-device mode: frames per second in headless Chromium and agreement with the server on the same frames.

Starts the real ``maskwatch serve`` on a free localhost port and Debian's Chromium with a fake camera
playing a video made here (the packaged demo photo — one face bare, one masked — at several places and
sizes, and the packaged astronaut photo), 640×480. Then:

- fps: the on-device loop runs for ``--seconds``; fps is frames shown / seconds (camera, detector,
  classifier, drawing: everything the page does per frame);
- agreement: ``--samples`` times, the page analyses the camera's current frame on the device and returns
  it as PNG; the server's ``/v1/live`` gets that same PNG. Faces are matched by IoU; reported: faces
  found by each side, matched pairs (IoU ≥ 0.5), their mean and lowest IoU, same-class share, and the
  largest score differences.

    python benchmarks/bench_ondevice.py --seconds 20 --samples 60 --out benchmarks/results/ondevice.json

Needs Playwright, /usr/bin/chromium and the vendored runtime (``python -m maskwatch.web.vendor``).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path

import cv2
import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"


def scene(photo: np.ndarray, width: int, left: int, top: int, size: tuple[int, int] = (640, 480)) -> np.ndarray:
    frame = np.full((size[1], size[0], 3), 100, np.uint8)
    h = round(photo.shape[0] * width / photo.shape[1])
    resized = cv2.resize(photo, (width, h), interpolation=cv2.INTER_AREA)
    y2, x2 = min(size[1], top + h), min(size[0], left + width)
    frame[top:y2, left:x2] = resized[: y2 - top, : x2 - left]
    return frame


def camera_frames() -> list[np.ndarray]:
    """24 scenes, each held for 3 frames at 15 fps (the camera loops the file): the demo photo at 4 sizes and
    5 places each, and the astronaut photo at 4 sizes."""
    assets = resources.files("maskwatch.assets")
    demo = cv2.imread(str(assets / "demo.jpg"))
    astronaut = cv2.imread(str(assets / "astronaut.jpg"))
    scenes = []
    for width in (640, 520, 400, 300):
        for k in range(5):
            scenes.append(scene(demo, width, (640 - width) * k // 4, (480 - width // 2) * (4 - k) // 4))
    for width in (480, 360, 240, 160):
        scenes.append(scene(astronaut, width, (640 - width) // 2, (480 - width) // 2))
    return [s for s in scenes for _ in range(3)]


def write_y4m(path: Path, frames: list[np.ndarray], fps: int = 15) -> Path:
    h, w = frames[0].shape[:2]
    with path.open("wb") as fh:
        fh.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for frame in frames:
            fh.write(b"FRAME\n" + cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420).tobytes())
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def iou(a: list[float], b: list[float]) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / union if union > 0 else 0.0


def compare(mine: list[dict], theirs: list[dict]) -> list[dict]:
    pairs = sorted(
        ((iou(a["box"], b["box"]), i, j) for i, a in enumerate(mine) for j, b in enumerate(theirs)), reverse=True
    )
    used_a, used_b, out = set(), set(), []
    for overlap, i, j in pairs:
        if overlap >= 0.5 and i not in used_a and j not in used_b:
            used_a.add(i)
            used_b.add(j)
            a, b = mine[i], theirs[j]
            out.append(
                {
                    "iou": overlap,
                    "same_class": a["label"] == b["label"],
                    "score_diff": abs(a["score"] - b["score"]),
                    "detection_score_diff": abs(a["detection_score"] - b["detection_score"]),
                }
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--samples", type=int, default=60)
    parser.add_argument("--headed", action="store_true", help="a visible window (needs a display)")
    parser.add_argument("--detector", help="the server's face detector (default: the bundle's)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright
    from websockets.sync.client import connect

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "maskwatch", "serve", "--port", str(port), "--workers", "1"]
        + (["--detector", args.detector] if args.detector else []),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(300):
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
            camera = write_y4m(Path(tmp) / "camera.y4m", camera_frames())
            browser = p.chromium.launch(
                executable_path=CHROMIUM,
                headless=not args.headed,
                args=[
                    "--no-sandbox",
                    "--use-fake-device-for-media-stream",
                    "--use-fake-ui-for-media-stream",
                    f"--use-file-for-fake-video-capture={camera}",
                ],
            )
            page = browser.new_page()
            posts: list[str] = []
            page.on("request", lambda r: posts.append(r.url) if r.method != "GET" or "/v1/live" in r.url else None)
            page.goto(base + "/")
            page.wait_for_selector("#ondevice-start:not([disabled])", timeout=30_000)
            detector_name = httpx.get(base + "/v1/ondevice").json()["detector"]["name"]
            t0 = time.perf_counter()
            page.click("#ondevice-start")
            page.wait_for_function(
                "Number(document.getElementById('ondevice-count').dataset.frames) >= 1", timeout=300_000
            )
            load_seconds = time.perf_counter() - t0
            page.wait_for_timeout(2000)  # warm-up
            frames = lambda: int(page.locator("#ondevice-count").get_attribute("data-frames"))  # noqa: E731
            start_frames, start = frames(), time.perf_counter()
            page.wait_for_timeout(args.seconds * 1000)
            fps = (frames() - start_frames) / (time.perf_counter() - start)
            threads = page.evaluate("ort.env.wasm.numThreads")
            # the loop keeps running: each sample waits for the frame in progress, then analyses the camera's next one
            samples, seen, ms, stages, server_ms = [], set(), [], [], []
            for _ in range(args.samples):
                result = page.evaluate("maskwatchDetectFrame()")
                png = base64.b64decode(result["png"].split(",", 1)[1])
                digest = hashlib.sha256(png).hexdigest()
                ms.append(result["ms"])
                stages.append(result["timings"])
                if digest not in seen:
                    seen.add(digest)
                    with connect(base.replace("http://", "ws://") + "/v1/live") as ws:
                        ws.send(png)
                        answer = json.loads(ws.recv(timeout=60))
                    samples.append((result["faces"], answer["faces"]))
                    server_ms.append(answer["ms"])
                page.wait_for_timeout(150)
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)

    pairs = [pair for mine, theirs in samples for pair in compare(mine, theirs)]
    mine_n = sum(len(m) for m, _ in samples)
    theirs_n = sum(len(t) for _, t in samples)
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores (shared; timings contended)",
        "browser": "Debian chromium, headless, fake camera 640x480",
        "detector": detector_name,
        "wasm_threads": threads,
        "first_frame_seconds": round(load_seconds, 2),
        "fps": round(fps, 2),
        "frame_ms_median": round(float(np.median(ms)), 1),
        "detector_ms_median": round(float(np.median([t["detect"] for t in stages])), 1),
        "classifier_ms_median": round(float(np.median([t["classify"] for t in stages])), 1),
        "server_ms_median": round(float(np.median(server_ms)), 1),
        "load_average": [round(v, 1) for v in os.getloadavg()],
        "frames_compared": len(samples),
        "faces_on_device": mine_n,
        "faces_server": theirs_n,
        "matched": len(pairs),
        "iou_mean": round(float(np.mean([p["iou"] for p in pairs])), 4) if pairs else None,
        "iou_min": round(float(np.min([p["iou"] for p in pairs])), 4) if pairs else None,
        "same_class": round(float(np.mean([p["same_class"] for p in pairs])), 4) if pairs else None,
        "score_diff_max": round(float(np.max([p["score_diff"] for p in pairs])), 4) if pairs else None,
        "detection_score_diff_max": round(float(np.max([p["detection_score_diff"] for p in pairs])), 4)
        if pairs
        else None,
        "faces_per_frame": [[len(m), len(t)] for m, t in samples],
        "requests_other_than_get": posts,
    }
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
