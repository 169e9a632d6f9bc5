"""End-to-end tests of ``maskwatch detect`` and the ``Detector`` API on real images, videos and streams."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import moving_face_frames, run_cli

from maskwatch import Detector, InputError
from maskwatch.faces import TOO_SMALL
from maskwatch.media.sources import CaptureSource
from maskwatch.schemas import FrameOut


def json_lines(path: Path) -> list[FrameOut]:
    return [FrameOut.model_validate_json(line) for line in path.read_text().splitlines()]


class MjpegServer:
    """A live HTTP MJPEG camera on localhost that drops each connection after ``frames_per_connection``.

    After ``connections`` connections it answers 503, like a camera that went away.
    """

    def __init__(self, jpeg: bytes, frames_per_connection: int = 8, connections: int = 2, delay: float = 0.02):
        self.served = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_GET(self):
                server.served += 1
                if server.served > connections:
                    self.send_error(503)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                try:
                    for _ in range(frames_per_connection):
                        part = b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpeg)
                        self.wfile.write(part + jpeg + b"\r\n")
                        time.sleep(delay)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/camera.mjpg"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def jpeg(astronaut_bgr) -> bytes:
    return cv2.imencode(".jpg", cv2.resize(astronaut_bgr, (320, 320)))[1].tobytes()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- Python API -------------------------------------------------------------------------------


def test_api_classifies_the_unmasked_astronaut(detector, astronaut_bgr):
    (face,) = detector.detect(astronaut_bgr)
    assert face.label == "without_mask"
    assert face.score > 0.8
    assert sum(face.probabilities.values()) == pytest.approx(1.0, abs=1e-4)
    assert set(face.probabilities) == set(detector.classes)


def test_default_pipeline_runs_our_detector_with_the_bundle_cut_by_it(detector):
    """The shipped default: maskface finds the faces, and the default bundle learnt from maskface's crops."""
    from maskwatch.detectors import DEFAULT_DETECTOR

    assert DEFAULT_DETECTOR == "maskface"
    assert detector.face_detector.name == DEFAULT_DETECTOR


def small_faces_photo(astronaut_bgr: np.ndarray) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """A 1280x960 photo (scikit-image's coffee) with the astronaut's face pasted twelve times at 24x30 px."""
    from skimage import data

    face = cv2.resize(astronaut_bgr[40:240, 150:310], (24, 30), interpolation=cv2.INTER_AREA)
    photo = cv2.resize(cv2.cvtColor(data.coffee(), cv2.COLOR_RGB2BGR), (1280, 960))
    corners = [(128 + i * 320, 120 + j * 320) for i in range(4) for j in range(3)]
    for x, y in corners:
        photo[y : y + 30, x : x + 24] = face
    return photo, corners


@pytest.mark.slow
def test_photos_get_the_multiscale_detector_unless_one_is_named(detector, astronaut_bgr):
    """A still photo is searched at three sizes: small faces the fast video detector misses are found."""
    assert detector.photo_detector.name == "maskface-multiscale"
    assert detector.model_info().photo_detector == "maskface-multiscale"
    photo, corners = small_faces_photo(astronaut_bgr)

    def pasted(faces):
        return {c for c in corners for f in faces if abs(f.box[0] - c[0]) < 8 and abs(f.box[1] - c[1]) < 8}

    live, still = pasted(detector.detect(photo)), pasted(detector.detect(photo, photo=True))
    assert len(still) >= 6 and len(still) >= 2 * len(live), (len(live), len(still))
    named = Detector(detector="maskface")
    assert named.photo_detector is named.face_detector  # a detector the user names serves photos too


@pytest.mark.slow
def test_cli_searches_image_files_as_photos(tmp_path, astronaut_bgr):
    photo, corners = small_faces_photo(astronaut_bgr)
    path = tmp_path / "crowd.jpg"
    cv2.imwrite(str(path), photo)
    result = run_cli("detect", str(path), "--json", "-")
    assert result.returncode == 0, result.stderr
    (frame,) = [FrameOut.model_validate_json(line) for line in result.stdout.splitlines()]
    assert len(frame.faces) >= 6


def test_api_reports_small_faces_instead_of_guessing(astronaut_bgr):
    (face,) = Detector(min_face=400).detect(astronaut_bgr)
    assert face.label == TOO_SMALL and face.score == 0.0 and face.probabilities == {}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"conf": 1.5}, "conf must be a number, 0 to 1; got 1.5"),
        ({"conf": float("nan")}, "conf must be a number, 0 to 1; got nan"),
        ({"conf": "0.5"}, "conf must be a number, 0 to 1; got '0.5'"),
        ({"min_face": 0}, "min_face must be a number, at least 1; got 0"),
        ({"min_face": float("nan")}, "min_face must be a number, at least 1; got nan"),
        ({"threads": 0}, "threads must be a whole number, 1 to 256; got 0"),
        ({"threads": 2**40}, "threads must be a whole number, 1 to 256"),
        ({"head_weight": "x"}, "head_weight must be a number"),
        ({"detector": 123}, "detector must be a name (see `maskwatch info`) or a face detector, got 123"),
    ],
)
def test_api_rejects_settings_out_of_range(options, message):
    with pytest.raises(InputError, match=re.escape(message)):
        Detector(**options)


def test_api_takes_numpy_numbers_as_settings():
    Detector(conf=np.float32(0.4), min_face=np.int64(10), threads=np.int32(1), head_weight=np.float64(0.5))


def test_api_rejects_what_is_not_an_image(detector):
    with pytest.raises(InputError, match="expects a BGR image"):
        detector.detect(np.zeros((10, 10)))
    with pytest.raises(InputError, match="expects a uint8 image .* got float32"):
        detector.detect(np.zeros((10, 10, 3), np.float32), photo=True)
    with pytest.raises(InputError, match=r"empty image \(0x0\)"):  # was a ZeroDivisionError
        detector.detect(np.zeros((0, 0, 3), np.uint8))
    with pytest.raises(InputError, match="process\\(\\) takes an opened source"):
        next(detector.process("photo.jpg"))


@pytest.mark.slow
def test_an_empty_source_is_not_the_current_folder(detector, tmp_path, monkeypatch, photo):
    """Path("") is "."; an empty argument (an unset shell variable) must not process every image in the folder."""
    (tmp_path / "here.jpg").write_bytes(photo.read_bytes())
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError, match="an empty source was given"):
        list(detector.stream(""))
    result = run_cli("detect", "", "--json", "-")
    assert result.returncode == 2 and "an empty source was given" in result.stderr and result.stdout == ""


def test_api_stream_over_a_video_tracks_one_person(detector, video):
    results = list(detector.stream(video))
    assert [r.index for r in results] == list(range(12))
    ids = {f.track_id for r in results for f in r.faces}
    assert ids == {1}
    assert all(f.label == "without_mask" for r in results for f in r.faces)


# --- CLI: images and folders ------------------------------------------------------------------


@pytest.mark.slow
def test_cli_image_writes_annotated_picture_and_json(tmp_path, photo):
    out, js = tmp_path / "out" / "annotated.jpg", tmp_path / "faces.jsonl"
    result = run_cli("detect", str(photo), "--out", str(out), "--json", str(js))
    assert result.returncode == 0, result.stderr
    (frame,) = json_lines(js)
    assert frame.source == str(photo) and frame.width == 512 and len(frame.faces) == 1
    assert frame.faces[0].label == "without_mask" and frame.faces[0].track_id is None
    annotated = cv2.imread(str(out))
    assert annotated.shape == (512, 512, 3)
    assert np.abs(annotated.astype(int) - cv2.imread(str(photo)).astype(int)).sum() > 0  # a box was drawn
    assert "without_mask" in result.stderr  # the summary table


@pytest.mark.slow
def test_cli_json_to_stdout_is_clean(photo):
    result = run_cli("detect", str(photo), "--json", "-")
    assert result.returncode == 0, result.stderr
    (line,) = result.stdout.splitlines()
    assert FrameOut.model_validate_json(line).faces[0].label == "without_mask"


@pytest.mark.slow
def test_cli_folder_lists_bad_files_and_processes_the_rest(tmp_path, photo):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "good.jpg").write_bytes(photo.read_bytes())
    (folder / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    (folder / "empty.png").write_bytes(b"")
    (folder / "notes.txt").write_text("hello")
    js, out = tmp_path / "f.jsonl", tmp_path / "annotated"
    result = run_cli("detect", str(folder), "--json", str(js), "--out", str(out))
    assert result.returncode == 2
    for name in ("corrupt.jpg", "empty.png", "notes.txt"):
        assert name in result.stderr
    assert "Traceback" not in result.stderr
    assert any(line.startswith("error: ") and "corrupt.jpg" in line for line in result.stderr.splitlines())
    assert [Path(f.source).name for f in json_lines(js)] == ["good.jpg"]
    assert (out / "good_annotated.jpg").is_file()
    warning = "1 file(s) that are not images or videos skipped (notes.txt)"
    assert any(line.startswith("warning: ") and warning in line for line in result.stderr.splitlines())
    (folder / "corrupt.jpg").unlink()
    (folder / "empty.png").unlink()
    (folder / "Thumbs.db").write_bytes(b"\x00" * 16)
    clean = run_cli("detect", str(folder), "--json", "-")  # files nobody asked for are not failures
    assert clean.returncode == 0, clean.stderr
    assert "2 file(s) that are not images or videos skipped (Thumbs.db, notes.txt)" in clean.stderr


@pytest.mark.slow
def test_cli_outputs_never_replace_inputs_or_each_other(tmp_path, photo):
    """--out naming the input is refused before any work; two inputs named alike get two outputs."""
    before = photo.read_bytes()
    result = run_cli("detect", str(photo), "--out", str(photo))
    assert result.returncode == 2 and "would overwrite an input" in result.stderr
    assert photo.read_bytes() == before
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "x.jpg").write_bytes(before)
    out = tmp_path / "out"
    result = run_cli("detect", str(tmp_path / "a" / "x.jpg"), str(tmp_path / "b" / "x.jpg"), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["x_2_annotated.jpg", "x_annotated.jpg"]
    assert (out / "x_annotated.jpg").stat().st_mode & 0o044 == 0o044  # readable by others, as a plain open() makes it


@pytest.mark.slow
def test_cli_empty_or_file_like_outputs_for_many_sources_are_refused(tmp_path, photo):
    """An empty --out/--json wrote nothing without a word; a file name for several sources made a folder of it."""
    for option, message in (("--out", "--out: empty path"), ("--json", "--json: empty path")):
        result = run_cli("detect", str(photo), option, "")
        assert result.returncode == 2 and message in result.stderr
    out = tmp_path / "both.jpg"
    result = run_cli("detect", str(photo), str(photo), "--out", str(out))
    assert result.returncode == 2 and "2 sources need a folder for --out" in result.stderr and not out.exists()


@pytest.mark.slow
def test_cli_json_never_lands_in_an_input_or_an_annotated_output(tmp_path, photo):
    before = photo.read_bytes()
    into_input = run_cli("detect", str(photo), "--json", str(photo))
    same = tmp_path / "same.jpg"
    into_output = run_cli("detect", str(photo), "--json", str(same), "--out", str(same))
    for result in (into_input, into_output):
        assert result.returncode == 2 and "is an input or an annotated output" in result.stderr
    assert photo.read_bytes() == before and not same.exists()


@pytest.mark.slow
def test_cli_json_appends_only_to_json_lines(tmp_path, photo):
    """A second run appends to its JSON lines (a line cut short by a crash stays on its own line); a file that
    is not maskwatch JSON lines is refused and left as it was."""
    js = tmp_path / "faces.jsonl"
    assert run_cli("detect", str(photo), "--json", str(js)).returncode == 0
    js.write_bytes(js.read_bytes() + b'{"source": "cut sho')
    assert run_cli("detect", str(photo), "--json", str(js)).returncode == 0
    lines = js.read_text().splitlines()
    assert len(lines) == 3 and lines[1] == '{"source": "cut sho'
    assert FrameOut.model_validate_json(lines[2]).faces[0].label == "without_mask"
    config = tmp_path / "config.json"
    config.write_text('{\n  "epochs": 3\n}\n')
    out = tmp_path / "annotated"
    result = run_cli("detect", str(photo), "--json", str(config), "--out", str(out))
    assert result.returncode == 2 and "is not maskwatch JSON lines" in result.stderr
    assert config.read_text() == '{\n  "epochs": 3\n}\n' and not out.exists()  # refused before --out was made
    cut = tmp_path / "cut.jsonl"
    cut.write_text('{"source":"photo.jpg","fra')  # a first run killed mid-line: still ours
    assert run_cli("detect", str(photo), "--json", str(cut)).returncode == 0
    assert cut.read_text().splitlines()[0] == '{"source":"photo.jpg","fra' and len(cut.read_text().splitlines()) == 2


@pytest.mark.slow
def test_cli_a_file_named_like_a_glob_is_a_file(tmp_path, photo):
    """Brackets in a real file name ("photo [1].jpg") must not turn it into a pattern that matches nothing."""
    folder = tmp_path / "shots [x]"
    folder.mkdir()
    named = folder / "a [b] c.jpg"
    named.write_bytes(photo.read_bytes())
    for spec in (named, folder):
        result = run_cli("detect", str(spec), "--json", "-")
        assert result.returncode == 0, result.stderr
        assert FrameOut.model_validate_json(result.stdout.splitlines()[0]).source == str(named)
    out = tmp_path / "out [1]" / (("a very long name " * 8).strip().replace(" ", "_") + ".jpg")
    result = run_cli("detect", str(named), "--out", str(out))
    assert result.returncode == 0 and out.is_file()
    assert f"wrote {out}" in result.stderr.splitlines()  # printed as it is, on one line however long


@pytest.mark.slow
@pytest.mark.parametrize(
    ("out", "message"),
    [
        ("v.mp4", "an image source needs an image file name"),
        ("o.xyz", "an image source needs an image file name"),
        ("file/out.jpg", "file: is a file, not a folder"),
    ],
)
def test_cli_bad_out_fails_before_any_work(tmp_path, photo, out, message):
    (tmp_path / "file").write_text("a plain file")
    result = run_cli("detect", str(photo), "--out", str(tmp_path / out))
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
    assert "frame(s)" not in result.stderr  # refused up front, not after the run


@pytest.mark.slow
def test_cli_video_into_an_image_name_is_refused(tmp_path, video):
    result = run_cli("detect", str(video), "--out", str(tmp_path / "v.jpg"))
    assert result.returncode == 2 and "a video source needs a video file name" in result.stderr
    assert not (tmp_path / "v.jpg").exists()


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.slow
@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "missing.jpg", "no such file"),
        (lambda d: _write(d / "empty.jpg", b""), "empty file"),
        (lambda d: _write(d / "bad.jpg", b"garbage" * 20), "not a readable image"),
        (lambda d: _write(d / "bad.mp4", b"\0garbage" * 500), "not a readable video"),
    ],
)
def test_cli_bad_single_inputs_fail_in_one_line(tmp_path, make, message):
    result = run_cli("detect", str(make(tmp_path)))
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_cli_missing_camera_and_unreachable_stream_fail_cleanly():
    for source, message in (
        ("7", "camera:7: camera not found"),
        (f"http://127.0.0.1:{free_port()}/x.mjpg", "unreachable"),
    ):
        result = run_cli("detect", source, timeout=60)
        assert result.returncode != 0, source
        assert message in result.stderr
        assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_cli_malformed_bundle_fails_in_one_line(tmp_path, photo):
    (tmp_path / "bundle.json").write_text("{}")
    (tmp_path / "model.onnx").write_bytes(b"x")
    result = run_cli("detect", str(photo), "--model", str(tmp_path))
    assert result.returncode == 3
    assert "bundle.json: classes: Field required" in result.stderr
    assert "Traceback" not in result.stderr


# --- CLI: videos and streams ------------------------------------------------------------------


@pytest.mark.slow
def test_cli_video_writes_playable_annotated_video_and_tracks(tmp_path, video):
    js, out = tmp_path / "v.jsonl", tmp_path / "annotated.mp4"
    result = run_cli("detect", str(video), "--json", str(js), "--out", str(out))
    assert result.returncode == 0, result.stderr
    frames = json_lines(js)
    assert len(frames) == 12
    assert [f.timestamp for f in frames[:3]] == [0.0, 0.1, 0.2]
    assert {face.track_id for f in frames for face in f.faces} == {1}
    capture = cv2.VideoCapture(str(out))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 12
    capture.release()
    assert "12 frame(s)" in result.stderr


@pytest.mark.slow
def test_cli_video_to_webm_plays_in_browsers_and_a_bad_suffix_fails_in_one_line(tmp_path, video):
    """A .webm output is VP8 (browsers play it; MPEG-4 Part 2 in .mp4 they do not), written without FFmpeg noise."""
    out = tmp_path / "annotated.webm"
    result = run_cli("detect", str(video), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "FFMPEG" not in result.stderr
    capture = cv2.VideoCapture(str(out))
    frames = 0
    while capture.read()[0]:
        frames += 1
    codec = int(capture.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little").decode("ascii", "replace")
    capture.release()
    assert frames == 12 and codec.upper().startswith("VP8")
    bad = run_cli("detect", str(video), "--out", str(tmp_path / "annotated.txt"))
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert [line for line in bad.stderr.splitlines() if "needs a video file name" in line][0].startswith("error: ")


@pytest.mark.slow
def test_cli_truncated_video_keeps_what_it_could_read(tmp_path, astronaut_bgr):
    """An AVI cut short still plays its first frames (a cut MP4 loses its index and is unreadable as a whole)."""
    path = tmp_path / "long.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (640, 480))
    for frame in moving_face_frames(astronaut_bgr, count=30):
        writer.write(frame)
    writer.release()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    js = tmp_path / "t.jsonl"
    result = run_cli("detect", str(path), "--json", str(js))
    assert "Traceback" not in result.stderr
    assert 0 < len(json_lines(js)) < 30  # the frames it could read are written
    assert result.returncode == 2 and "long.avi: video ended after" in result.stderr  # cut short is not a success


def test_stream_drop_reconnects_and_goes_on(jpeg):
    server = MjpegServer(jpeg, frames_per_connection=6, connections=2)
    try:
        source = CaptureSource(server.url, reconnects=2, base_delay=0.05)
        frames = []
        with pytest.raises(InputError, match="gave up after 2 reconnection attempts"):
            for frame in source.frames():  # the server's two connections, then it is gone for good
                frames.append(frame)
    finally:
        server.close()
    assert len(frames) == 12  # both connections' frames: the drop did not end the run
    assert source.reconnections == 1
    assert [f.index for f in frames] == list(range(12))


@pytest.mark.slow
def test_cli_stream_with_a_drop(tmp_path, jpeg):
    """One drop is bridged; when the stream is gone for good the run keeps what it wrote and exits 2."""
    server = MjpegServer(jpeg, frames_per_connection=5, connections=2)
    js = tmp_path / "s.jsonl"
    try:
        result = run_cli("detect", server.url, "--json", str(js), "--reconnects", "1", timeout=120)
    finally:
        server.close()
    assert result.returncode == 2, result.stderr
    frames = json_lines(js)
    assert len(frames) == 10
    assert all(f.faces and f.faces[0].label == "without_mask" for f in frames)
    assert "reconnecting" in result.stderr and "reconnected" in result.stderr
    assert "error: " + server.url + ": stream lost; gave up after 1 reconnection attempts" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_ctrl_c_closes_every_output(tmp_path, jpeg):
    server = MjpegServer(jpeg, frames_per_connection=10_000, connections=1, delay=0.03)
    js, out = tmp_path / "live.jsonl", tmp_path / "live.mp4"
    process = subprocess.Popen(
        [sys.executable, "-m", "maskwatch", "detect", server.url, "--json", str(js), "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (not js.exists() or len(js.read_text().splitlines()) < 5):
            time.sleep(0.2)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
        server.close()
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    lines = js.read_text().splitlines()
    assert len(lines) >= 5
    for line in lines:
        json.loads(line)  # every line complete
    capture = cv2.VideoCapture(str(out))
    readable = 0
    while capture.read()[0]:
        readable += 1
    capture.release()
    assert readable >= len(lines) - 1  # the video was finalised and plays


def test_packaged_demo_has_one_face_of_each_class():
    """The README's demo: the default model finds both faces and tells the masked one from the other."""
    from maskwatch.media.imageio import read_image

    demo = Path(__file__).resolve().parents[1] / "src" / "maskwatch" / "assets" / "demo.jpg"
    faces = sorted(Detector().detect(read_image(demo)), key=lambda f: f.box[0])
    assert [f.label for f in faces] == ["without_mask", "with_mask"]


@pytest.mark.parametrize(
    "detector, conf, min_face", [("maskface-multiscale", 0.2, 4), ("maskface", 0.3, 8), ("maskface+blazeface", 0.3, 8)]
)
def test_demo_with_our_detector_and_the_scenes_bundle(detector, conf, min_face):
    """The crowd-photo setting of the README (maskface-multiscale, maskwatch:scenes) and the one-pass ones
    get the demo's two faces right too. At these low thresholds low-scored boxes may appear (maskface makes
    1.5-2.5 false faces per scene photo there, docs/results-log.md): the suit patch, which the demo shows twice,
    and the like, so only the two real faces are checked and any other box must score under 0.5."""
    from maskwatch.media.imageio import read_image

    demo = Path(__file__).resolve().parents[1] / "src" / "maskwatch" / "assets" / "demo.jpg"
    pipeline = Detector(model="maskwatch:scenes", detector=detector, conf=conf, min_face=min_face)
    faces = pipeline.detect(read_image(demo))
    bare = [f for f in faces if 120 < (f.box[0] + f.box[2]) / 2 < 260]
    masked = [f for f in faces if 510 < (f.box[0] + f.box[2]) / 2 < 650]
    assert [f.label for f in bare] == ["without_mask"] and [f.label for f in masked] == ["with_mask"]
    others = [f for f in faces if f not in bare + masked]
    assert all(f.detection_score < 0.5 for f in others) and len(others) <= 3
    found = pipeline.face_detector.detect(read_image(demo))
    assert found and all(set(d.class_probabilities or {}) >= {"with_mask", "without_mask"} for d in found)


def test_fuse_probabilities_hand_cases():
    from maskwatch.pipeline import fuse_probabilities

    classes = ["with_mask", "without_mask"]
    head = {"with_mask": 0.2, "without_mask": 0.6, "incorrect_mask": 0.2}  # → 0.25 / 0.75 on the bundle's classes
    fused = fuse_probabilities(np.array([0.9, 0.1]), classes, head, 0.5)
    assert fused == pytest.approx([0.575, 0.425])
    assert fuse_probabilities(np.array([0.9, 0.1]), classes, head, 0.0) == pytest.approx([0.9, 0.1])
    assert fuse_probabilities(np.array([0.9, 0.1]), classes, None, 0.5) == pytest.approx([0.9, 0.1])
    # a bundle class the head does not know (e.g. age groups): the classifier alone decides
    other = ["mask_adult", "mask_child"]
    assert fuse_probabilities(np.array([0.9, 0.1]), other, head, 0.5) == pytest.approx([0.9, 0.1])


def test_pipeline_blends_the_detector_heads_class_guess(astronaut_bgr):
    from maskwatch.faces import Detection

    class HeadDetector:
        name = "fake-maskface"

        def detect(self, image):
            head = {"with_mask": 1.0, "without_mask": 0.0, "incorrect_mask": 0.0}  # maskface's three classes
            return [Detection((180.0, 80.0, 280.0, 190.0), 0.9, (), head)]

    classifier_only = Detector(detector=HeadDetector(), head_weight=0.0).detect(astronaut_bgr)[0]
    blended = Detector(detector=HeadDetector(), head_weight=0.5).detect(astronaut_bgr)[0]
    p = classifier_only.probabilities["with_mask"]
    assert blended.probabilities["with_mask"] == pytest.approx(0.5 * p + 0.5, abs=1e-5)
    assert hash(Detection((0.0, 0.0, 1.0, 1.0), 0.5, (), {"with_mask": 1.0}))  # still hashable
    with pytest.raises(InputError, match="head_weight must be a number, 0 to 1"):
        Detector(detector=HeadDetector(), head_weight=1.5)


@pytest.mark.slow
def test_default_pipeline_says_a_mask_is_worn_incorrectly(chin_masked_astronaut, astronaut_bgr, tmp_path):
    """Three classes by default: a mask on the chin is incorrect_mask, through the API and `detect --json`."""
    pipeline = Detector()
    assert set(pipeline.classes) == {"with_mask", "without_mask", "incorrect_mask"}
    (face,) = pipeline.detect(chin_masked_astronaut, photo=True)
    assert face.label == "incorrect_mask" and face.probabilities["incorrect_mask"] > 0.5
    (bare,) = pipeline.detect(astronaut_bgr, photo=True)
    assert bare.label == "without_mask"
    path = tmp_path / "chin.png"
    cv2.imwrite(str(path), chin_masked_astronaut)
    result = run_cli("detect", str(path), "--json", "-")
    assert result.returncode == 0, result.stderr
    (frame,) = [FrameOut.model_validate_json(line) for line in result.stdout.splitlines()]
    (out,) = frame.faces
    assert out.label == "incorrect_mask" and set(out.probabilities) == set(pipeline.classes)
