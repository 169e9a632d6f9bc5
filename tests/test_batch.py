"""``maskwatch batch`` on a local Ray instance: same results as ``detect``, worker death, ``--resume``, bad inputs.

Works with any model bundle: results are compared with ``detect``'s on the same
inputs, never with fixed classes.
"""

from __future__ import annotations

import csv
import functools
import json
import logging
import os
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import moving_face_frames, run_cli, write_video

from maskwatch.batch import BatchOptions, run_batch
from maskwatch.batch.assemble import COUNTS_FILE, DONE_FILE, FRAMES_FILE, PLOT_FILE, SUMMARY_FILE
from maskwatch.batch.plan import collect_units, plan_chunks, safe_name
from maskwatch.batch.worker import CRASH_ENV, read_video_chunk
from maskwatch.errors import MaskwatchError
from maskwatch.pipeline import Detector
from maskwatch.runner import run_sources
from maskwatch.sinks import JsonLinesSink
from maskwatch.sources import expand_sources

ray = pytest.importorskip("ray")


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
            summary = run_sources(detector, [source], JsonLinesSink(str(path)))
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
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    yield
    ray.shutdown()


def specs_of(inputs) -> list[str]:
    return [str(inputs["walk"]), str(inputs["back"]), str(inputs["photos"])]


def test_killed_worker_chunk_is_retried(local_ray, inputs, reference, tmp_path, monkeypatch):
    marker = tmp_path / "crashed"
    monkeypatch.setenv(CRASH_ENV, f"0:2:{marker}")  # the worker given chunk 2 of walk.mp4 dies once, hard
    out = tmp_path / "out"
    report = run_batch(specs_of(inputs), BatchOptions(out=out, workers=2, chunk_frames=6, photo_batch=2))
    assert marker.exists(), "the test hook did not fire"
    assert not report.failed and not report.problems
    assert [u.status for u in report.units] == ["done", "done", "done"]
    assert_same_as_detect(out, reference)


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
    changed = run_batch(specs_of(inputs), BatchOptions(out=out, workers=2, resume=True, min_face=20))
    assert all(u.status == "done" for u in changed.units)  # other options: nothing is reused


def test_poison_chunk_fails_its_input_only(local_ray, inputs, tmp_path, monkeypatch):
    monkeypatch.setenv(CRASH_ENV, "1:0:always")  # back.mp4's first chunk kills every worker that takes it
    out = tmp_path / "out"
    report = run_batch(specs_of(inputs), BatchOptions(out=out, workers=2, chunk_frames=10, retries=1))
    status = {Path(u.input).name: u.status for u in report.units}
    assert status == {"walk.mp4": "done", "back.mp4": "failed", "photos": "done"}
    assert "chunk 0" in report.failed[0].errors[0]
    assert not (out / safe_name(str(inputs["back"])) / DONE_FILE).exists()
    assert (out / safe_name(str(inputs["walk"])) / DONE_FILE).exists()


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


def test_bad_model_is_one_clear_error(local_ray, inputs, tmp_path):
    missing = str(tmp_path / "no_bundle")
    with pytest.raises(MaskwatchError, match="model bundle not found"):  # checked on the driver, before Ray
        run_batch([str(inputs["walk"])], BatchOptions(out=tmp_path / "a", model=missing))
    with pytest.raises(MaskwatchError, match="^.*no_bundle: model bundle not found$"):  # as a cluster's workers say it
        run_batch([str(inputs["walk"])], BatchOptions(out=tmp_path / "b", model=missing, ray_address="auto", retries=0))
