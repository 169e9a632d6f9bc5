"""``maskwatch batch`` on a local Ray instance: same results as ``detect``, worker death, ``--resume``, bad inputs.

Works with any model bundle: results are compared with ``detect``'s on the same
inputs, never with fixed classes.
"""

from __future__ import annotations

import csv
import functools
import importlib.util
import json
import logging
import os
import shutil
import socket
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import moving_face_frames, run_cli, write_video

from maskwatch.batch import BatchOptions, run_batch
from maskwatch.batch import run as batch_run
from maskwatch.batch.assemble import COUNTS_FILE, DONE_FILE, FRAMES_FILE, PLOT_FILE, SUMMARY_FILE, UnitAssembler
from maskwatch.batch.plan import Item, Unit, collect_units, plan_chunks, safe_name
from maskwatch.batch.worker import CRASH_ENV, ChunkResult, FrameRecord, read_video_chunk
from maskwatch.errors import InputError, MaskwatchError, ModelError
from maskwatch.inference.bundle import load_bundle
from maskwatch.media.runner import run_sources
from maskwatch.media.sinks import JsonLinesSink
from maskwatch.media.sources import expand_sources
from maskwatch.pipeline import Detector
from maskwatch.settings import PipelineSettings

if importlib.util.find_spec("ray") is None:  # found, not imported: Ray loads in the tests that run it
    pytest.skip("batch needs the [batch] extra (ray)", allow_module_level=True)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, astronaut_bgr) -> dict:
    root = tmp_path_factory.mktemp("batch_in")
    walk = write_video(root / "walk.mp4", moving_face_frames(astronaut_bgr, count=30))
    back = write_video(root / "back.mp4", moving_face_frames(astronaut_bgr[:, ::-1].copy(), count=17))
    photos = root / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "a.jpg"), astronaut_bgr)
    cv2.imwrite(str(photos / "b.png"), cv2.resize(astronaut_bgr, (256, 256)))
    cv2.imwrite(str(photos / "c.jpg"), astronaut_bgr[:, ::-1])
    return {"walk": walk, "back": back, "photos": photos}


def detect_reference(specs: list[str], tmp: Path) -> tuple[dict, dict]:
    """What ``maskwatch detect`` writes for each source (JSON lines by source) and people per class per video."""
    detector = Detector()
    frames: dict[str, list[dict]] = {}
    people: dict[str, dict] = {}
    for spec in specs:
        sources, problems = expand_sources([spec])
        assert not problems
        for source in sources:
            path = tmp / f"ref_{len(frames)}.jsonl"
            summary = run_sources(detector, [source], [JsonLinesSink(str(path))])
            frames[source.name] = [json.loads(line) for line in path.read_text().splitlines()]
            if source.kind == "video":
                people[source.name] = summary.people_per_class
    return frames, people


@pytest.fixture(scope="module")
def reference(inputs, tmp_path_factory) -> tuple[dict, dict]:
    specs = [str(inputs["walk"]), str(inputs["back"]), str(inputs["photos"])]
    return detect_reference(specs, tmp_path_factory.mktemp("ref"))


def batch_frames(out: Path) -> dict[str, list[dict]]:
    frames: dict[str, list[dict]] = {}
    for path in sorted(out.glob(f"*/{FRAMES_FILE}")):
        for line in path.read_text().splitlines():
            record = json.loads(line)
            frames.setdefault(record["source"], []).append(record)
    return frames


def assert_same_as_detect(out: Path, reference: tuple[dict, dict]) -> None:
    ref_frames, ref_people = reference
    got = batch_frames(out)
    assert sorted(got) == sorted(ref_frames)
    for source, records in ref_frames.items():
        assert got[source] == records, source  # faces, boxes, scores, track ids and smoothed labels
    for source, people in ref_people.items():
        summary = json.loads((out / safe_name(source) / SUMMARY_FILE).read_text())
        assert summary["people_per_class"] == dict(sorted(people.items()))


@pytest.mark.slow
def test_plan_groups_and_chunks(inputs, tmp_path):
    listing = tmp_path / "list.txt"
    listing.write_text(f"# archive\n{inputs['walk']}\n\n{inputs['photos'] / 'a.jpg'}\n{inputs['walk']}\n")
    units, problems = collect_units([str(listing), str(inputs["photos"]), str(tmp_path / "missing.mp4")])
    assert [u.kind for u in units] == ["video", "images", "images"]
    assert [len(u.items) for u in units] == [1, 1, 2]  # duplicates named twice are processed once
    assert len(problems) == 1 and "missing.mp4" in problems[0]
    assert len({u.safe_name for u in units}) == 3
    video = units[0]
    video.frame_count, video.fps = 30, 10.0
    plan_chunks(video, chunk_frames=8)
    assert [(c.start, c.stop) for c in video.chunks] == [(0, 8), (8, 16), (16, 24), (24, None)]
    plan_chunks(units[2], photo_batch=1)
    assert len(units[2].chunks) == 2


@pytest.mark.slow
def test_cli_batch_matches_detect_and_reports_corrupt_inputs(inputs, reference, tmp_path):
    """End to end as a user runs it: its own local Ray, a list file, a corrupt video and a corrupt photo."""
    bad_video = tmp_path / "broken.mp4"
    bad_video.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(2000))
    photos = tmp_path / "photos"
    photos.mkdir()
    for p in inputs["photos"].iterdir():
        (photos / p.name).write_bytes(p.read_bytes())
    (photos / "zz_corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    listing = tmp_path / "videos.txt"
    listing.write_text(f"{inputs['walk']}\n{inputs['back']}\n{bad_video}\n")
    out = tmp_path / "out"
    result = run_cli("batch", str(listing), str(photos), "--out", str(out), "--workers", "2", "--chunk-frames", "7")
    assert result.returncode == 2, result.stderr
    assert "broken.mp4" in result.stderr and "zz_corrupt.jpg" in result.stderr
    assert "maskwatch batch" in result.stderr  # the summary table

    ref_frames, ref_people = reference
    renamed = {k.replace(str(inputs["photos"]), str(photos)): v for k, v in ref_frames.items()}
    got = batch_frames(out)
    assert got == {k: [{**r, "source": k} for r in v] for k, v in renamed.items()}
    for video in (inputs["walk"], inputs["back"]):
        folder = out / safe_name(str(video))
        assert {p.name for p in folder.iterdir()} == {FRAMES_FILE, COUNTS_FILE, SUMMARY_FILE, PLOT_FILE, DONE_FILE}
        assert (folder / PLOT_FILE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        summary = json.loads((folder / SUMMARY_FILE).read_text())
        assert summary["people_per_class"] == dict(sorted(ref_people[str(video)].items()))
        rows = list(csv.DictReader((folder / COUNTS_FILE).open()))
        assert [int(r["frame"]) for r in rows] == [r["frame"] for r in ref_frames[str(video)]]
        assert [int(r["faces"]) for r in rows] == [len(r["faces"]) for r in ref_frames[str(video)]]
    photo_summary = json.loads((out / safe_name(str(photos)) / SUMMARY_FILE).read_text())
    assert len(photo_summary["errors"]) == 1 and "zz_corrupt.jpg" in photo_summary["errors"][0]
    assert not (out / safe_name(str(bad_video))).joinpath(DONE_FILE).exists()
    overall = {r["input"]: r for r in csv.DictReader((out / "summary.csv").open())}
    assert overall[str(bad_video)]["status"] == "failed"
    assert overall[str(inputs["walk"])]["status"] == "done"
    assert overall[str(photos)]["status"] == "done"


@pytest.fixture(scope="module")
def local_ray():
    """One small local Ray instance for the in-process tests (no dashboard: starts fast, offline)."""
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    yield
    ray.shutdown()


def specs_of(inputs) -> list[str]:
    return [str(inputs["walk"]), str(inputs["back"]), str(inputs["photos"])]


@pytest.mark.slow
def test_killed_worker_chunk_is_retried(local_ray, inputs, reference, tmp_path, monkeypatch):
    marker = tmp_path / "crashed"
    monkeypatch.setenv(CRASH_ENV, f"0:2:{marker}")  # the worker given chunk 2 of walk.mp4 dies once, hard
    out = tmp_path / "out"
    report = run_batch(specs_of(inputs), BatchOptions(out=out, workers=2, chunk_frames=6, photo_batch=2))
    assert marker.exists(), "the test hook did not fire"
    assert not report.failed and not report.problems
    assert [u.status for u in report.units] == ["done", "done", "done"]
    assert_same_as_detect(out, reference)


@pytest.mark.slow
def test_resume_skips_complete_outputs(local_ray, inputs, reference, tmp_path):
    out = tmp_path / "out"
    options = BatchOptions(out=out, workers=2, chunk_frames=10)
    first = run_batch(specs_of(inputs), options)
    assert [u.status for u in first.units] == ["done", "done", "done"]
    walk_folder = out / safe_name(str(inputs["walk"]))
    back_folder = out / safe_name(str(inputs["back"]))
    stamp = (walk_folder / FRAMES_FILE).stat().st_mtime_ns
    (back_folder / DONE_FILE).unlink()  # as if the run died before finishing back.mp4
    (back_folder / FRAMES_FILE).write_text("half a line")
    again = run_batch(specs_of(inputs), BatchOptions(out=out, workers=2, chunk_frames=10, resume=True))
    status = {Path(u.input).name: u.status for u in again.units}
    assert status == {"walk.mp4": "resumed", "photos": "resumed", "back.mp4": "done"}
    assert again.chunks == 2  # only back.mp4's chunks ran
    assert (walk_folder / FRAMES_FILE).stat().st_mtime_ns == stamp
    assert_same_as_detect(out, reference)
    changed = run_batch(
        specs_of(inputs), BatchOptions(out=out, workers=2, resume=True, pipeline=PipelineSettings(min_face=20))
    )
    assert all(u.status == "done" for u in changed.units)  # other options: nothing is reused


@pytest.mark.slow
def test_poison_chunk_fails_its_input_only(local_ray, inputs, tmp_path, monkeypatch):
    monkeypatch.setenv(CRASH_ENV, "1:0:always")  # back.mp4's first chunk kills every worker that takes it
    out = tmp_path / "out"
    report = run_batch(specs_of(inputs), BatchOptions(out=out, workers=2, chunk_frames=10, retries=1))
    status = {Path(u.input).name: u.status for u in report.units}
    assert status == {"walk.mp4": "done", "back.mp4": "failed", "photos": "done"}
    assert "chunk 0" in report.failed[0].errors[0]
    assert not (out / safe_name(str(inputs["back"])) / DONE_FILE).exists()
    assert (out / safe_name(str(inputs["walk"])) / DONE_FILE).exists()


@pytest.mark.slow
@pytest.mark.parametrize(("suffix", "fourcc"), [(".mp4", "mp4v"), (".webm", "VP90"), (".avi", "XVID")])
def test_chunk_reads_equal_a_sequential_read(tmp_path, suffix, fourcc):
    """Seeking to a chunk's first frame lands on exactly the frames a sequential read gives, for common codecs."""
    path = tmp_path / f"numbers{suffix}"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 10.0, (160, 120))
    if not writer.isOpened():
        pytest.skip(f"OpenCV cannot write {fourcc} here")
    rng = np.random.default_rng(0)
    for i in range(90):
        frame = np.full((120, 160, 3), (i * 3) % 255, np.uint8)
        cv2.putText(frame, str(i), (10, 80), cv2.FONT_HERSHEY_SIMPLEX, 2, (255, 255, 255), 3)
        frame[100:] = rng.integers(0, 255, (20, 160, 3))
        writer.write(frame)
    writer.release()
    sequential = list(read_video_chunk(str(path), 0, None, 10.0))
    assert len(sequential) == 90
    for start in (1, 13, 47, 88):
        chunk = list(read_video_chunk(str(path), start, start + 3, 10.0))
        assert [f.index for f in chunk] == [f.index for f in sequential[start : start + 3]]
        for got, want in zip(chunk, sequential[start : start + 3]):
            assert got.timestamp == want.timestamp
            assert np.array_equal(got.image, want.image), (fourcc, start)


@pytest.mark.slow
def test_photo_urls(local_ray, inputs, tmp_path):
    """Photos listed by URL are downloaded by the workers and give the faces of the same file read from disk."""
    handler = functools.partial(QuietHandler, directory=str(inputs["photos"]))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        listing = tmp_path / "urls.txt"
        listing.write_text(f"{base}/a.jpg\n{base}/missing.jpg\n")
        out = tmp_path / "out"
        report = run_batch([str(listing)], BatchOptions(out=out, workers=1))
    finally:
        server.shutdown()
    assert [u.status for u in report.units] == ["done"]
    assert len(report.units[0].errors) == 1 and "missing.jpg" in report.units[0].errors[0]
    (record,) = batch_frames(out)[f"{base}/a.jpg"]
    expected = [json.loads(r.to_schema().model_dump_json()) for r in Detector().stream(inputs["photos"] / "a.jpg")]
    assert record["faces"] == expected[0]["faces"]


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.mark.slow
def test_bad_model_is_one_clear_error(local_ray, inputs, tmp_path):
    missing = str(tmp_path / "no_bundle")
    with pytest.raises(MaskwatchError, match="model bundle not found"):  # checked on the driver, before Ray
        run_batch([str(inputs["walk"])], BatchOptions(out=tmp_path / "a", pipeline=PipelineSettings(model=missing)))
    with pytest.raises(ModelError, match="^.*no_bundle: model bundle not found$"):  # as a cluster's workers say it
        run_batch(
            [str(inputs["walk"])],
            BatchOptions(out=tmp_path / "b", pipeline=PipelineSettings(model=missing), ray_address="auto", retries=0),
        )


def stderr_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


@pytest.fixture
def no_ray(monkeypatch):
    """Fail the test if the run gets as far as starting or joining Ray."""

    def refuse(*args, **kwargs):
        raise AssertionError("Ray was started: the error should have come before")

    monkeypatch.setattr(batch_run, "connect_ray", refuse)


@pytest.mark.slow
def test_unwritable_output_folder_is_one_error_before_ray(inputs, tmp_path, no_ray):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(InputError, match=r"cannot create the output folder \(.*file is a file\)$"):
        run_batch([str(inputs["walk"])], BatchOptions(out=blocker / "out"))
    with pytest.raises(InputError, match="is a file, not a folder$"):
        run_batch([str(inputs["walk"])], BatchOptions(out=blocker))


@pytest.mark.slow
def test_unwritable_unit_folder_fails_that_unit_only(local_ray, inputs, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / safe_name(str(inputs["back"]))).write_text("a file where back.mp4's folder goes")
    report = run_batch([str(inputs["back"]), str(inputs["photos"])], BatchOptions(out=out, workers=2, chunk_frames=10))
    status = {Path(u.input).name: u.status for u in report.units}
    assert status == {"back.mp4": "failed", "photos": "done"}
    assert "cannot write" in report.failed[0].errors[0]
    rows = {Path(r["input"]).name: r["status"] for r in csv.DictReader((out / "summary.csv").open())}
    assert rows == status  # the other results and the overall summary are still written


@pytest.mark.slow
def test_unreachable_ray_cluster_is_one_line(inputs, tmp_path, monkeypatch):
    monkeypatch.setenv("RAY_CLIENT_INITIAL_CONNECTION_TIMEOUT_S", "1")  # read by the Ray Client: fail in ~3 s
    monkeypatch.setenv("RAY_CLIENT_MAX_CONNECTION_TIMEOUT_S", "1")
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    photo = str(inputs["photos"] / "a.jpg")
    result = run_cli("batch", photo, "--out", str(tmp_path / "out"), "--ray-address", f"ray://127.0.0.1:{port}")
    assert result.returncode == 2, result.stderr
    expected = f"error: cannot connect to Ray at ray://127.0.0.1:{port}: ray client connection timeout"
    assert stderr_lines(result) == [expected]
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_cli_bad_inputs_exit_2_rerun_refused_and_resume(inputs, tmp_path):
    """A corrupt photo in a set: results written, exit 2, one closing line; a rerun into the same --out is refused."""
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(inputs["photos"] / "a.jpg", photos / "a.jpg")
    (photos / "zz_corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    out = tmp_path / "out"
    first = run_cli("batch", str(photos), "--out", str(out), "--workers", "1")
    assert first.returncode == 2, first.stderr
    assert "Traceback" not in first.stderr
    assert first.stderr.count("zz_corrupt.jpg") == 1  # logged once, as it happened
    assert stderr_lines(first)[-1].startswith("problems: 1 with errors")
    (row,) = csv.DictReader((out / "summary.csv").open())
    assert row["status"] == "done" and "zz_corrupt.jpg" in row["errors"]
    assert (out / safe_name(str(photos)) / DONE_FILE).exists()
    written = (out / "summary.csv").read_bytes()

    again = run_cli("batch", str(photos), "--out", str(out), "--conf", "0.9")  # refused before Ray starts
    assert again.returncode == 2
    (line,) = stderr_lines(again)
    assert "earlier batch" in line and "--resume" in line
    assert (out / "summary.csv").read_bytes() == written

    resumed = run_cli("batch", str(photos), "--out", str(out), "--resume")  # all done: no Ray either
    assert resumed.returncode == 2, resumed.stderr  # the corrupt photo is still corrupt
    (row,) = csv.DictReader((out / "summary.csv").open())
    assert row["status"] == "resumed" and "zz_corrupt.jpg" in row["errors"]


@pytest.mark.slow
def test_rerun_into_earlier_results_is_refused(local_ray, inputs, tmp_path):
    out = tmp_path / "out"
    run_batch([str(inputs["photos"])], BatchOptions(out=out, workers=1))
    with pytest.raises(InputError, match="holds an earlier batch's results; use --resume"):
        run_batch([str(inputs["walk"])], BatchOptions(out=out, workers=1))
    (out / "summary.csv").unlink()
    (out / "summary.json").unlink()
    with pytest.raises(InputError, match="holds an earlier batch's results"):  # a finished unit folder is enough
        run_batch([str(inputs["walk"])], BatchOptions(out=out, workers=1))
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("unrelated")
    report = run_batch([str(inputs["photos"])], BatchOptions(out=empty, workers=1))
    assert [u.status for u in report.units] == ["done"]


@pytest.mark.slow
def test_all_inputs_bad_prints_each_error_once(tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(2000))
    missing = tmp_path / "missing.jpg"
    result = run_cli("batch", str(missing), str(tmp_path / "missing2.mp4"), "--out", str(tmp_path / "a"))
    assert result.returncode == 2
    (line,) = stderr_lines(result)
    assert line.count("missing.jpg") == 1 and line.count("missing2.mp4") == 1
    assert not (tmp_path / "a").exists()  # refused before any work: no empty --out left behind
    result = run_cli("batch", str(missing), "--out", str(tmp_path / "new" / "deeper" / "out"))
    assert result.returncode == 2 and not (tmp_path / "new").exists()  # nor the parents it made
    result = run_cli("batch", str(broken), str(missing), "--out", str(tmp_path / "b"))  # a failed unit: no Ray
    assert result.returncode == 2
    assert result.stderr.count("not a readable video") == 1
    assert result.stderr.count("missing.jpg: no such file") == 1
    assert stderr_lines(result)[-1].startswith("problems: 1 input(s) skipped, 1 failed")
    stream = run_cli("batch", "rtsp://127.0.0.1:9/x", "--out", str(tmp_path / "c"))  # nothing listens on port 9
    assert stream.returncode == 2 and "rtsp://127.0.0.1:9/x: stream unreachable or not a video" in stream.stderr


@pytest.mark.slow
def test_bad_detector_or_model_fails_before_ray(inputs, tmp_path, no_ray):
    with pytest.raises(ModelError, match="unknown detector 'nosuch'"):
        run_batch([str(inputs["walk"])], BatchOptions(out=tmp_path / "a", pipeline=PipelineSettings(detector="nosuch")))
    with pytest.raises(ModelError, match="unknown detector 'nosuch'"):  # on a cluster too: names need no files
        run_batch(
            [str(inputs["walk"])],
            BatchOptions(out=tmp_path / "b", pipeline=PipelineSettings(detector="nosuch"), ray_address="auto"),
        )
    bundle = tmp_path / "garbage_bundle"
    bundle.mkdir()
    shutil.copy(Path(load_bundle().source) / "bundle.json", bundle / "bundle.json")
    (bundle / "model.onnx").write_bytes(b"not an onnx model")
    with pytest.raises(ModelError, match="cannot load ONNX model"):
        run_batch([str(inputs["walk"])], BatchOptions(out=tmp_path / "c", pipeline=PipelineSettings(model=str(bundle))))
    assert not any((tmp_path / name).exists() for name in "abc")
    (tmp_path / "kept").mkdir()  # a folder that was there before stays, empty or not
    with pytest.raises(ModelError):
        run_batch(
            [str(inputs["walk"])], BatchOptions(out=tmp_path / "kept", pipeline=PipelineSettings(detector="nosuch"))
        )
    assert (tmp_path / "kept").is_dir()


@pytest.mark.slow
def test_cli_bad_detector_exits_3_in_one_line(inputs, tmp_path):
    result = run_cli("batch", str(inputs["walk"]), "--out", str(tmp_path / "out"), "--detector", "nosuch")
    assert result.returncode == 3, result.stderr
    (line,) = stderr_lines(result)
    assert line.startswith("error: unknown detector 'nosuch'")


def _video_unit(frame_count: int, chunk_frames: int) -> Unit:
    unit = Unit(0, "video", "clip.mp4", [Item("clip.mp4", "clip.mp4")], "clip-0", frame_count=frame_count, fps=10.0)
    plan_chunks(unit, chunk_frames=chunk_frames)
    return unit


def _assemble(unit: Unit, frames_per_chunk: list[range], folder: Path) -> dict:
    assembler = UnitAssembler(unit, folder, ["with_mask", "without_mask"], {})
    for seq, indices in enumerate(frames_per_chunk):
        records = [FrameRecord(unit.name, i, i / 10, 160, 120, []) for i in indices]
        assembler.add(ChunkResult(unit.index, seq, frames=records))
    assert assembler.complete
    return assembler.finish()


@pytest.mark.slow
def test_truncated_or_holed_video_is_reported(tmp_path):
    """Frames that did not decode are an error of the unit, as `detect` warns of a truncated video."""
    holed = _assemble(_video_unit(60, 20), [range(13), range(0), range(40, 60)], tmp_path / "a")
    assert holed["errors"] == ["clip.mp4: frames 13-39 of 60 could not be decoded (corrupt video?)"]
    ended = _assemble(_video_unit(60, 256), [range(13)], tmp_path / "b")
    assert ended["errors"] == ["clip.mp4: video ended after 13 of 60 frames (truncated?)"]
    # A container that overstates its frame count a little is not an error (detect does not warn either).
    assert _assemble(_video_unit(60, 29), [range(29), range(29, 57), range(0)], tmp_path / "c")["errors"] == []


@pytest.mark.slow
def test_corrupt_video_in_a_run_is_a_problem(local_ray, astronaut_bgr, tmp_path):
    clip = write_video(tmp_path / "clip.mp4", moving_face_frames(astronaut_bgr, count=40, size=(480, 360)))
    data = bytearray(clip.read_bytes())
    n = len(data)
    data[int(n * 0.3) : int(n * 0.6)] = bytes(int(n * 0.6) - int(n * 0.3))  # zero the middle of the stream
    clip.write_bytes(bytes(data))
    report = run_batch([str(clip)], BatchOptions(out=tmp_path / "out", workers=1, chunk_frames=10))
    (unit,) = report.units
    if unit.status == "failed":
        pytest.skip("this OpenCV build cannot read the damaged video at all")
    assert unit.frames < 40
    assert unit.errors and report.has_problems
