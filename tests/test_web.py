"""``maskwatch serve``: the REST API and WebSocket with real image and video bytes, and the real server process.

Works with any model bundle (``$MASKWATCH_MODEL`` or the packaged default): tests check
boxes, schemas and that each label is one of the model's classes, never which class.
"""

from __future__ import annotations

import base64
import os
import re
import socket
import subprocess
import sys
import threading
import time
import zlib

import cv2
import numpy as np
import pytest
from conftest import assert_one_line_error, moving_face_frames, run_cli, write_video

from maskwatch.errors import InputError, ModelError
from maskwatch.faces import TOO_SMALL
from maskwatch.schemas import FrameOut, Summary

pytest.importorskip("httpx", reason="FastAPI's TestClient needs httpx (pip install -e .[dev])")
from fastapi.testclient import TestClient  # noqa: E402
from starlette.websockets import WebSocketDisconnect  # noqa: E402

from maskwatch.pipeline import Detector  # noqa: E402
from maskwatch.web import create_app  # noqa: E402


@pytest.fixture(scope="module")
def detector() -> Detector:
    try:
        return Detector(threads=1)
    except ModelError as exc:
        pytest.skip(f"no model bundle to serve: {exc} (set MASKWATCH_MODEL)")


@pytest.fixture(scope="module")
def client(detector):
    with TestClient(create_app(detector=detector, workers=2)) as c:
        yield c


def jpeg(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".jpg", image)
    assert ok
    return data.tobytes()


def png(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", image)
    assert ok
    return data.tobytes()


def post_image(c: TestClient, data: bytes, content_type: str = "image/jpeg", name: str = "photo.jpg", **params):
    return c.post("/v1/detect", params=params, files={"file": (name, data, content_type)})


def check_frame(body: dict, classes: list[str], width: int, height: int) -> FrameOut:
    """The body is one CLI JSON line (FrameOut) whose faces lie inside the image and use the model's classes."""
    frame = FrameOut.model_validate(body)
    assert (frame.width, frame.height) == (width, height)
    for face in frame.faces:
        x1, y1, x2, y2 = face.box
        assert -1 <= x1 < x2 <= width + 1 and -1 <= y1 < y2 <= height + 1
        assert face.label in [*classes, TOO_SMALL]
        if face.label != TOO_SMALL:
            assert set(face.probabilities) == set(classes)
            assert face.score == pytest.approx(max(face.probabilities.values()), abs=1e-3)
    return frame


def minimal_png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` × ``height`` pixels: a decompression bomb's calling card."""
    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    chunk = b"IHDR" + ihdr
    crc = zlib.crc32(chunk).to_bytes(4, "big")
    idat = zlib.compress(b"\x00" * 1024)
    idat_chunk = b"IDAT" + idat
    return (
        b"\x89PNG\r\n\x1a\n"
        + len(ihdr).to_bytes(4, "big")
        + chunk
        + crc
        + len(idat).to_bytes(4, "big")
        + idat_chunk
        + zlib.crc32(idat_chunk).to_bytes(4, "big")
    )


# ---- service endpoints ----


def test_healthz_model_and_docs(client, detector):
    health = client.get("/healthz")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    model = client.get("/v1/model").json()
    assert model["classes"] == detector.classes and len(model["classes"]) >= 2
    assert isinstance(model["metrics"], dict) and model["max_upload_mb"] == 20.0
    docs = client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    for page in ("/docs", "/redoc"):  # offline: every script and style comes from this server, none from a CDN
        html = client.get(page).text
        assert "http://" not in html and "https://" not in html, page
        for asset in re.findall(r'(?:src|href)="(/[^"]+)"', html):
            assert client.get(asset).status_code == 200, asset
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/detect", "/v1/detect/video", "/v1/jobs/{job_id}", "/v1/model", "/healthz"} <= set(paths)


@pytest.mark.slow  # two servers, each loading its model
def test_clients_see_the_bundle_name_not_the_install_path(detector, tmp_path):
    """/healthz is open to anyone: neither it, /v1/model nor the page tells where the server keeps its files."""
    import shutil

    from maskwatch.inference.bundle import resolve_bundle_dir

    packaged = resolve_bundle_dir("maskwatch:default")
    own = shutil.copytree(packaged, tmp_path / "secret-place" / "my-bundle")
    for model, name, hidden in (("maskwatch:default", "maskwatch:default", packaged), (own, "my-bundle", own)):
        with TestClient(create_app(detector=Detector(model=str(model), threads=1), workers=1)) as c:
            bodies = [c.get(path).text for path in ("/healthz", "/v1/model", "/", "/openapi.json")]
            assert c.get("/healthz").json()["model"] == name
            assert c.get("/v1/model").json()["source"] == name
        for body in bodies:
            assert str(hidden) not in body and str(hidden.parent) not in body and "site-packages" not in body


def test_page_and_static_files(client):
    page = client.get("/")
    assert page.status_code == 200 and "live-start" in page.text and "/static/app.js" in page.text
    script = client.get("/static/app.js")
    assert script.status_code == 200 and "getUserMedia" in script.text and "/v1/live" in script.text


# ---- POST /v1/detect ----


def test_detect_astronaut_jpeg(client, detector, astronaut_bgr):
    response = post_image(client, jpeg(astronaut_bgr))
    assert response.status_code == 200, response.text
    body = response.json()
    frame = check_frame(body, detector.classes, 512, 512)
    assert len(frame.faces) >= 1
    x1, y1, x2, y2 = frame.faces[0].box
    assert 120 < (x1 + x2) / 2 < 330 and 30 < (y1 + y2) / 2 < 250  # the astronaut's head
    assert body["annotated_jpeg"] is None and body["ms"] > 0


def test_detect_matches_library_call(client, detector, astronaut_bgr):
    """The API answers exactly what ``Detector.detect`` gives on the same decoded pixels."""
    data = png(astronaut_bgr)
    body = post_image(client, data, "image/png", "photo.png").json()
    expected = [f.to_dict() for f in detector.detect(astronaut_bgr, photo=True)]  # an upload is a photo
    assert body["faces"] == expected


def test_detect_annotate_returns_jpeg(client, detector, astronaut_bgr):
    body = post_image(client, jpeg(astronaut_bgr), annotate="true").json()
    check_frame(body, detector.classes, 512, 512)
    picture = cv2.imdecode(np.frombuffer(base64.b64decode(body["annotated_jpeg"]), np.uint8), cv2.IMREAD_COLOR)
    assert picture.shape == (512, 512, 3)


def test_detect_no_face_and_octet_stream(client, detector):
    blank = np.full((240, 320, 3), 128, np.uint8)
    response = post_image(client, png(blank), "application/octet-stream", "blank.png")
    assert response.status_code == 200
    assert check_frame(response.json(), detector.classes, 320, 240).faces == []


@pytest.mark.parametrize(
    ("data", "content_type", "status", "words"),
    [
        (b"plain text, not a picture", "text/plain", 415, "content type"),
        (b"%PDF-1.4 not an image", "application/pdf", 415, "content type"),
        (b"\xff\xd8\xff\xe0 this is not really a JPEG", "image/jpeg", 422, "not a readable image"),
        (b"", "image/jpeg", 400, "empty"),
    ],
    ids=["text", "pdf", "corrupt-jpeg", "empty"],
)
def test_detect_bad_inputs(client, data, content_type, status, words):
    response = post_image(client, data, content_type)
    assert response.status_code == status, response.text
    assert words in response.json()["detail"]


def test_detect_truncated_jpeg(client, astronaut_bgr):
    data = jpeg(astronaut_bgr)
    response = post_image(client, data[: len(data) // 3])
    # OpenCV decodes a truncated JPEG's first rows (200, grey below) or refuses it (422): never a 500
    assert response.status_code in (200, 422)


def test_detect_missing_file_field(client):
    response = client.post("/v1/detect", data={"other": "x"})
    assert response.status_code == 422 and response.json() == {"detail": "file: Field required"}  # one line


def test_detect_unknown_or_bad_query_parameter(client, astronaut_bgr):
    """A per-request conf is not a feature: saying so beats silently answering with the server's threshold."""
    response = post_image(client, jpeg(astronaut_bgr), conf=0.9)
    assert response.status_code == 422 and "unknown query parameter 'conf'" in response.json()["detail"]
    response = post_image(client, jpeg(astronaut_bgr), annotate="maybe")
    assert response.status_code == 422 and response.json()["detail"].startswith("annotate: ")


def test_two_file_fields_or_a_text_field_refused(client, astronaut_bgr):
    """Which of two files would be used is not the client's guess to make: refused, as a file field without a file."""
    two = [("file", (name, jpeg(astronaut_bgr), "image/jpeg")) for name in ("a.jpg", "b.jpg")]
    response = client.post("/v1/detect", files=two)
    assert response.status_code == 422 and response.json() == {"detail": "file: send one file per request, not 2"}
    response = client.post("/v1/detect", files={"file": ("", jpeg(astronaut_bgr), "image/jpeg")})  # no file picked
    assert response.status_code == 422 and response.json()["detail"].startswith("file: not a file upload")


def test_side_over_jpeg_limit_read_but_not_annotated(client):
    strip = np.full((2, 70_000, 3), 128, np.uint8)  # a valid PNG panorama: read, but no JPEG can hold it
    assert post_image(client, png(strip), "image/png", "strip.png").status_code == 200
    response = post_image(client, png(strip), "image/png", "strip.png", annotate="true")
    assert response.status_code == 422 and "over JPEG's 65500 px a side" in response.json()["detail"]


def test_decompression_bomb_header_refused(client):
    response = post_image(client, minimal_png_header(100_000, 100_000), "image/png", "bomb.png")
    assert response.status_code == 413
    assert "over the limit" in response.json()["detail"]


def test_pixel_limit_of_the_app(detector, astronaut_bgr):
    with TestClient(create_app(detector=detector, max_pixels=100_000)) as c:
        response = post_image(c, png(astronaut_bgr), "image/png", "big.png")
        assert response.status_code == 413 and "pixels" in response.json()["detail"]
        small = cv2.resize(astronaut_bgr, (256, 256))
        assert post_image(c, png(small), "image/png").status_code == 200


def test_upload_limit_413(detector, astronaut_bgr):
    with TestClient(create_app(detector=detector, max_upload_mb=0.01)) as c:
        response = post_image(c, png(astronaut_bgr), "image/png")
        assert response.status_code == 413 and "--max-upload-mb" in response.json()["detail"]


def test_upload_limit_413_chunked(detector):
    """A body without Content-Length is counted as it arrives and refused past the limit."""
    boundary = "maskwatchboundary"
    payload = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="x.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode() + b"\xff" * 60_000

    def chunks():
        for i in range(0, len(payload), 4096):
            yield payload[i : i + 4096]

    with TestClient(create_app(detector=detector, max_upload_mb=0.01)) as c:
        response = c.post(
            "/v1/detect", content=chunks(), headers={"content-type": f"multipart/form-data; boundary={boundary}"}
        )
        assert response.status_code == 413


def test_inference_runs_in_worker_pool(detector, astronaut_bgr):
    threads: list[str] = []

    class Recording(Detector):
        def __init__(self, inner: Detector) -> None:
            self.__dict__.update(inner.__dict__)

        def detect(self, image_bgr, *, photo=False):
            threads.append(threading.current_thread().name)
            return super().detect(image_bgr, photo=photo)

    with TestClient(create_app(detector=Recording(detector), workers=1)) as c:
        assert post_image(c, jpeg(astronaut_bgr)).status_code == 200
    assert threads and all(name.startswith("maskwatch-infer") for name in threads)


# ---- token ----


def test_token_required(detector, astronaut_bgr):
    with TestClient(create_app(detector=detector, token="s3cret")) as c:
        assert c.get("/healthz").status_code == 200
        assert c.get("/").status_code == 200
        refused = c.get("/v1/model")
        assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
        assert c.get("/v1/model", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert post_image(c, jpeg(astronaut_bgr)).status_code == 401
        assert c.get("/v1/model", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert c.get("/v1/model", headers={"X-Maskwatch-Token": "s3cret"}).status_code == 200
        assert c.get("/v1/model?token=s3cret").json()["token_required"] is True
        with pytest.raises(WebSocketDisconnect), c.websocket_connect("/v1/live") as ws:
            ws.receive_json()
        with c.websocket_connect("/v1/live?token=s3cret") as ws:
            ws.send_bytes(jpeg(astronaut_bgr))
            assert "faces" in ws.receive_json()
        with c.websocket_connect("/v1/live", headers={"Authorization": "Bearer s3cret"}) as ws:
            ws.send_bytes(jpeg(astronaut_bgr))
            assert "faces" in ws.receive_json()


def test_token_refused_before_the_body_is_read():
    """Without the token the middleware answers 401 from the headers: the upload is never received."""
    import asyncio

    from maskwatch.web.auth import TokenMiddleware

    async def inner_app(scope, receive, send):
        raise AssertionError("a request without the token reached the app")

    async def receive():
        raise AssertionError("the body of a request without the token was read")

    sent = []

    async def send(message):
        sent.append(message)

    headers = [(b"authorization", b"Bearer wrong")]
    scope = {"type": "http", "path": "/v1/detect", "headers": headers, "query_string": b""}
    asyncio.run(TokenMiddleware(inner_app, token="s3cret")(scope, receive, send))
    assert sent[0]["status"] == 401 and (b"www-authenticate", b"Bearer") in sent[0]["headers"]
    assert b"missing or wrong token" in sent[1]["body"]
    sent.clear()  # served under a prefix (uvicorn --root-path, a Mount): the route path still counts
    scope = {**scope, "path": "/api/v1/model", "root_path": "/api", "headers": []}
    asyncio.run(TokenMiddleware(inner_app, token="s3cret")(scope, receive, send))
    assert sent[0]["status"] == 401


def test_token_under_a_mount_and_non_ascii(detector):
    from starlette.applications import Starlette
    from starlette.routing import Mount

    outer = Starlette(routes=[Mount("/mw", app=create_app(detector=detector, token="sécret"))])
    with TestClient(outer) as c:
        assert c.get("/mw/v1/model").status_code == 401
        assert c.get("/mw/v1/model", headers={"Authorization": "Bearer sécret".encode()}).status_code == 200
        assert c.get("/mw/v1/model", params={"token": "sécret"}).status_code == 200
        assert c.get("/mw/healthz").status_code == 200


# ---- live WebSocket ----


def test_live_websocket_tracks_faces(client, detector, astronaut_bgr):
    frames = moving_face_frames(astronaut_bgr, count=12)[:5]  # small steps: one track
    with client.websocket_connect("/v1/live") as ws:
        answers = []
        for frame in frames:
            ws.send_bytes(jpeg(frame))
            answers.append(ws.receive_json())
        ws.send_bytes(b"garbage")
        error = ws.receive_json()
        ws.send_text("hello")  # a text message: an error answer, not a dropped connection
        text_error = ws.receive_json()
        ws.send_bytes(jpeg(frames[0]))
        after = ws.receive_json()
    for i, body in enumerate(answers):
        frame = check_frame(body, detector.classes, 640, 480)
        assert frame.frame == i and len(frame.faces) >= 1
    ids = {f["track_id"] for body in answers for f in body["faces"]}
    assert None not in ids and len(ids) == 1  # one person, one track
    assert "not a readable image" in error["error"] and "binary message" in text_error["error"]
    assert "faces" in after  # the connection survives a bad frame
    assert "timestamp" in answers[0]  # the same keys as the CLI's JSON lines
    with pytest.raises(WebSocketDisconnect), client.websocket_connect("/v1/live?conf=0.9") as ws:
        ws.receive_json()  # refused at the handshake, as the REST endpoints refuse unknown parameters


# ---- video jobs ----


def wait_for_job(c: TestClient, url: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = c.get(url).json()
        assert 0 <= body["progress"] <= 1
        if body["status"] in ("done", "failed"):
            return body
        time.sleep(0.1)
    raise AssertionError(f"job {url} did not finish")


def test_video_job(client, detector, astronaut_bgr, tmp_path):
    video = write_video(tmp_path / "walk.mp4", moving_face_frames(astronaut_bgr, count=10))
    response = client.post("/v1/detect/video", files={"file": ("walk.mp4", video.read_bytes(), "video/mp4")})
    assert response.status_code == 202, response.text
    created = response.json()
    assert created["url"] == f"/v1/jobs/{created['id']}"
    job = wait_for_job(client, created["url"])
    assert job["status"] == "done", job
    assert job["progress"] == 1 and job["frames_done"] == 10 and job["source"] == "walk.mp4"
    summary = Summary.model_validate(job["summary"])
    assert summary.frames == 10 and summary.faces >= 8
    assert sum(summary.people_per_class.values()) == 1
    frames = [check_frame(f, detector.classes, 640, 480) for f in job["frames"]]
    assert [f.frame for f in frames] == list(range(10))
    # one row per person: the one face track, with the class people_per_class counts and when it was seen
    [person] = job["people"]
    assert {person["label"]: 1} == summary.people_per_class
    track_frames = [fr for fr in frames if any(f.track_id == person["track_id"] for f in fr.faces)]
    assert person["frames"] == len(track_frames) >= 3
    assert (person["first_frame"], person["last_frame"]) == (track_frames[0].frame, track_frames[-1].frame)
    assert person["first_seen"] == track_frames[0].timestamp and person["last_seen"] == track_frames[-1].timestamp
    tid = person["track_id"]
    combined = [f.detection_score * f.score for fr in track_frames for f in fr.faces if f.track_id == tid]
    assert person["confidence"] == pytest.approx(max(combined), abs=1e-4)
    assert frames[-1].timestamp == pytest.approx(0.9, abs=0.01)
    assert all(f.track_id is not None for fr in frames for f in fr.faces)
    keyframe = base64.b64decode(job["keyframe_jpeg"])
    assert keyframe[:2] == b"\xff\xd8"
    assert list(client.app.state.temp_root.iterdir()) == []  # the upload is gone once the job ends


def test_video_without_a_frame_count_is_unknown_not_negative(astronaut_bgr, tmp_path):
    """Concatenated JPEGs (an MJPEG stream) report a negative frame count through OpenCV: it means unknown."""
    from maskwatch.web.jobs import Job, probe_video

    path = tmp_path / "stream.mp4"
    path.write_bytes(jpeg(astronaut_bgr) * 3)
    total = probe_video(path, "stream.mp4", 50_000_000, 100)
    assert total is None
    out = Job(id="x", source="stream.mp4", frames_total=total, status="running", frames_done=2).to_out()
    assert out.frames_total is None and out.progress == 0.0
    assert out.model_dump(exclude_unset=True)["frames_total"] is None  # shown as null, not left out


def test_video_bad_inputs(client, tmp_path):
    bad = client.post("/v1/detect/video", files={"file": ("clip.mp4", b"\x00\x00\x00\x18ftypmp42 broken", "video/mp4")})
    assert bad.status_code == 422 and "not a readable video" in bad.json()["detail"]
    wrong = client.post("/v1/detect/video", files={"file": ("clip.txt", b"hello", "text/plain")})
    assert wrong.status_code == 415
    empty = client.post("/v1/detect/video", files={"file": ("clip.mp4", b"", "video/mp4")})
    assert empty.status_code == 400
    assert client.get("/v1/jobs/doesnotexist").status_code == 404
    assert list(client.app.state.temp_root.iterdir()) == []


def test_video_frame_size_checked_before_decoding(astronaut_bgr, tmp_path, monkeypatch):
    """The size the container declares is refused before a frame is decoded (one huge MJPEG frame is 1 GB)."""
    from maskwatch.web import jobs as jobs_module

    real_capture = cv2.VideoCapture

    class NoDecode:  # OpenCV's capture without read()
        def __init__(self, path):
            self.capture = real_capture(path)
            self.isOpened, self.get, self.release = self.capture.isOpened, self.capture.get, self.capture.release

        def read(self):
            raise AssertionError("a frame was decoded before the size check")

    video = write_video(tmp_path / "clip.mp4", moving_face_frames(astronaut_bgr, count=3))
    monkeypatch.setattr(jobs_module.cv2, "VideoCapture", NoDecode)
    with pytest.raises(InputError, match="640x480 pixels is over the limit of 1000"):
        jobs_module.probe_video(video, "clip.mp4", 1000, 100)


def test_video_refused_when_jobs_are_full(detector, astronaut_bgr, tmp_path, monkeypatch):
    """Refused before the upload is copied to disk (no upload folder is even made)."""
    import tempfile

    video = write_video(tmp_path / "clip.mp4", moving_face_frames(astronaut_bgr, count=3))
    with TestClient(create_app(detector=detector, max_jobs=0)) as c:
        monkeypatch.setattr(tempfile, "mkdtemp", lambda **_: pytest.fail("the upload was saved before the refusal"))
        response = c.post("/v1/detect/video", files={"file": ("clip.mp4", video.read_bytes(), "video/mp4")})
        monkeypatch.undo()
        assert response.status_code == 429 and response.headers["retry-after"] == "5"
        assert list(c.app.state.temp_root.iterdir()) == []


def test_video_too_long(detector, astronaut_bgr, tmp_path):
    video = write_video(tmp_path / "long.mp4", moving_face_frames(astronaut_bgr, count=6))
    with TestClient(create_app(detector=detector, max_video_frames=3)) as c:
        response = c.post("/v1/detect/video", files={"file": ("long.mp4", video.read_bytes(), "video/mp4")})
        assert response.status_code == 413 and "frames" in response.json()["detail"]
        temp_root = c.app.state.temp_root
        assert list(temp_root.iterdir()) == []
    assert not temp_root.exists()  # the server's temp folder goes at shutdown


# ---- the real command ----


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_serve_subprocess(detector, astronaut_bgr):
    import httpx

    port = free_port()
    env = {**os.environ, "MASKWATCH_TOKEN": "tok"}
    process = subprocess.Popen(
        [sys.executable, "-m", "maskwatch", "serve", "--port", str(port), "--workers", "1", "--max-upload-mb", "1"]
        + ["--detector", "maskface-multiscale", "--conf", "0.4"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.stdout.read()
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.2)
        files = {"file": ("a.jpg", jpeg(astronaut_bgr), "image/jpeg")}
        assert httpx.post(f"{base}/v1/detect", files=files).status_code == 401
        response = httpx.post(f"{base}/v1/detect", files=files, headers={"Authorization": "Bearer tok"}, timeout=30)
        assert response.status_code == 200
        check_frame(response.json(), detector.classes, 512, 512)
        model = httpx.get(f"{base}/v1/model", headers={"Authorization": "Bearer tok"}, timeout=30).json()
        assert model["detector"] == "maskface-multiscale"
        big = {"file": ("big.png", os.urandom(2_000_000), "image/png")}
        assert httpx.post(f"{base}/v1/detect", files=big, headers={"Authorization": "Bearer tok"}).status_code == 413
    finally:
        process.terminate()
        output = process.communicate(timeout=30)[0]
    assert f"http://127.0.0.1:{port}" in output
    assert "Traceback" not in output


def test_port_zero_means_a_free_port_that_is_printed():
    from maskwatch.cli.serve import check_port_free

    assert check_port_free("127.0.0.1", 0) > 0  # the real port, for the start-up line (it printed :0)


@pytest.mark.slow
def test_serve_cli_errors_are_one_line(tmp_path):
    missing = run_cli("serve", "--model", str(tmp_path / "nope"), "--port", str(free_port()))
    assert missing.returncode == 3
    assert "model bundle not found" in missing.stderr and "Traceback" not in missing.stderr
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        taken = run_cli("serve", "--port", str(port))
    assert taken.returncode == 2 and "cannot listen" in taken.stderr and "Traceback" not in taken.stderr
    unknown = run_cli("serve", "--detector", "nope", "--port", str(free_port()))
    assert_one_line_error(unknown, "unknown detector 'nope'")


@pytest.mark.slow
def test_serve_help_mentions_options():
    result = run_cli("serve", "--help")
    assert result.returncode == 0
    for option in ("--host", "--port", "--model", "--token", "--max-upload-mb", "--workers", "--detector", "--conf"):
        assert option in result.stdout


def test_detect_reports_a_mask_worn_incorrectly(client, detector, chin_masked_astronaut):
    """The web API speaks the default's three classes: a mask on the chin comes back as incorrect_mask."""
    body = post_image(client, png(chin_masked_astronaut), "image/png", "chin.png").json()
    frame = check_frame(body, detector.classes, 512, 512)
    assert [f.label for f in frame.faces] == ["incorrect_mask"]
    assert set(frame.faces[0].probabilities) == {"with_mask", "without_mask", "incorrect_mask"}
