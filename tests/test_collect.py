"""``maskwatch collect``: crops from videos and photo folders, unique names, no overwrite, atomic writes, bad input."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import assert_one_line_error, moving_face_frames, run_cli, write_video

from maskwatch.data import collect as collect_mod
from maskwatch.data.collect import STORED_SIZE, collect_faces, validate_label, write_new_image
from maskwatch.errors import InputError
from maskwatch.inference.crops import crop_face
from maskwatch.media.sources import expand_sources


@pytest.fixture(scope="module")
def detector():
    from maskwatch.detectors import create_detector

    return create_detector("blazeface")


@pytest.fixture(scope="module")
def face_video(tmp_path_factory, astronaut_bgr) -> Path:
    """12 frames of the same face sliding across a plain background: every crop is a near-duplicate."""
    return write_video(tmp_path_factory.mktemp("video") / "walk.mp4", moving_face_frames(astronaut_bgr, 12))


@pytest.fixture(scope="module")
def varied_video(tmp_path_factory, astronaut_bgr) -> Path:
    """10 frames in which the head turns, grows and is mirrored: no two crops are near-duplicates."""
    head = astronaut_bgr[20:260, 110:340]
    frames = []
    for i in range(10):
        frame = np.full((480, 640, 3), 90, np.uint8)
        side = 170 + 8 * i
        face = cv2.resize(head, (side, int(side * 1.04)))
        if i % 2:
            face = face[:, ::-1]
        turn = cv2.getRotationMatrix2D((side / 2, side / 2), -36 + 8 * i, 1.0)
        face = cv2.warpAffine(face, turn, (face.shape[1], face.shape[0]), borderMode=cv2.BORDER_REPLICATE)
        frame[60 : 60 + face.shape[0], 100 : 100 + face.shape[1]] = face
        frames.append(frame)
    return write_video(tmp_path_factory.mktemp("varied") / "varied.mp4", frames)


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory, astronaut_bgr) -> Path:
    """Three photos with one face each and one without any face."""
    folder = tmp_path_factory.mktemp("photos")
    cv2.imwrite(str(folder / "a.jpg"), astronaut_bgr)
    cv2.imwrite(str(folder / "b.png"), astronaut_bgr[:, ::-1])
    turned = cv2.warpAffine(astronaut_bgr, cv2.getRotationMatrix2D((225, 130), 20, 0.8), (512, 512))
    cv2.imwrite(str(folder / "c.jpg"), cv2.resize(turned, (300, 300)))
    cv2.imwrite(str(folder / "empty.png"), np.full((200, 200, 3), 128, np.uint8))
    return folder


def _sources(*specs: str):
    sources, problems = expand_sources(list(specs))
    assert not problems
    return sources


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_photo_folder_saves_one_crop_per_face(tmp_path, photo_folder, detector, astronaut_bgr):
    summary = collect_faces(_sources(str(photo_folder)), tmp_path / "ds", "without_mask", detector=detector)
    assert len(summary.saved) == 3 and summary.frames == 4 and not summary.failed_sources
    files = sorted((tmp_path / "ds" / "without_mask").iterdir())
    assert files == sorted(summary.saved)
    assert [p.name for p in summary.saved] == sorted(p.name for p in summary.saved)  # names sort in save order
    first = cv2.imread(str(files[0]))
    assert first.shape == (STORED_SIZE, STORED_SIZE, 3)
    # the same crop training and inference cut: same detector, crop_face, default margin
    expected = cv2.cvtColor(
        crop_face(astronaut_bgr, detector.detect(astronaut_bgr)[0].box, STORED_SIZE), cv2.COLOR_RGB2BGR
    )
    assert np.abs(first.astype(int) - expected.astype(int)).mean() < 3  # JPEG noise only


@pytest.mark.slow
def test_video_near_duplicates_every_and_count(tmp_path, face_video, varied_video, detector):
    deduped = collect_faces(_sources(str(face_video)), tmp_path / "a", "x", detector=detector)
    assert deduped.frames == 12 and len(deduped.saved) <= 2 and deduped.duplicates == 12 - len(deduped.saved)
    everything = collect_faces(_sources(str(face_video)), tmp_path / "b", "x", detector=detector, dedupe_bits=None)
    assert len(everything.saved) == 12 and everything.duplicates == 0
    sparse = collect_faces(_sources(str(varied_video)), tmp_path / "c", "x", every=3, detector=detector)
    assert sparse.frames_processed == 4 and len(sparse.saved) == 4  # frames 0, 3, 6, 9
    capped = collect_faces(_sources(str(varied_video)), tmp_path / "d", "x", count=3, detector=detector)
    assert len(capped.saved) == 3 and capped.frames == 3
    small = collect_faces(_sources(str(varied_video)), tmp_path / "e", "x", min_face=1000, detector=detector)
    assert small.too_small == 10 and not small.saved


def test_second_run_never_overwrites(tmp_path, photo_folder, detector):
    out = tmp_path / "ds"
    first = collect_faces(_sources(str(photo_folder)), out, "me", detector=detector)
    before = _digests(out / "me")
    second = collect_faces(_sources(str(photo_folder)), out, "me", detector=detector)  # same second: same prefix
    after = _digests(out / "me")
    assert len(after) == len(first.saved) + len(second.saved) == 6
    assert all(after[name] == digest for name, digest in before.items())
    assert not set(p.name for p in second.saved) & set(before)


def test_write_is_atomic_and_exclusive(tmp_path, monkeypatch):
    image = np.full((32, 32, 3), 200, np.uint8)
    target = tmp_path / "face.jpg"
    assert write_new_image(target, image)
    original = target.read_bytes()
    assert not write_new_image(target, np.zeros_like(image))  # the name is taken: refused, not overwritten
    assert target.read_bytes() == original

    def interrupted(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(collect_mod.os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_new_image(tmp_path / "half.jpg", image)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["face.jpg"]  # no half file, no temporary left


def test_ctrl_c_keeps_every_saved_face_whole(tmp_path, varied_video, detector):
    class StopAfter:
        name = "stop"

        def __init__(self, n: int) -> None:
            self.calls, self.n = 0, n

        def detect(self, image):
            self.calls += 1
            if self.calls > self.n:
                raise KeyboardInterrupt
            return detector.detect(image)

    summary = collect_faces(_sources(str(varied_video)), tmp_path / "ds", "x", detector=StopAfter(4))
    assert summary.interrupted and len(summary.saved) == 4
    files = sorted((tmp_path / "ds" / "x").iterdir())
    assert files == sorted(summary.saved)  # no temporary or partial file
    assert all(cv2.imread(str(p)) is not None for p in files)


@pytest.mark.parametrize("label", ["../x", "a/b", "/abs", "", ".hidden", "a\\b"])
def test_label_with_path_characters_is_refused(label):
    with pytest.raises(InputError):
        validate_label(label)


@pytest.mark.slow
def test_cli_collects_and_reports(tmp_path, varied_video):
    out = tmp_path / "ds"
    result = run_cli("collect", "--label", "with_mask", "--out", str(out), "--count", "4", str(varied_video))
    assert result.returncode == 0, result.stderr
    assert "saved 4 face(s)" in result.stderr
    assert len(list((out / "with_mask").glob("*.jpg"))) == 4
    typo = run_cli("collect", "-l", "With-mask", "-o", str(out), "-n", "1", str(varied_video))
    assert typo.returncode == 0 and f"warning: new class 'With-mask' in {out}, close to 'with_mask'" in typo.stderr
    second = run_cli("collect", "-l", "without_mask", "-o", str(out), "-n", "1", str(varied_video))
    assert second.returncode == 0 and "warning" not in second.stderr  # another class is not a typo
    again = run_cli("collect", "-l", "with_mask", "-o", str(out), "-n", "2", "--preview", str(varied_video))
    assert again.returncode == 0, again.stderr
    assert len(list((out / "with_mask").glob("*.jpg"))) == 6
    if not os.environ.get("DISPLAY"):
        assert "--preview: no display found" in again.stderr


@pytest.mark.slow
def test_cli_bad_inputs_are_one_line_errors_and_keep_collected_faces(tmp_path, photo_folder):
    out = tmp_path / "ds"
    assert run_cli("collect", "-l", "keep", "-o", str(out), str(photo_folder)).returncode == 0
    kept = _digests(out / "keep")
    corrupt = tmp_path / "broken.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video")
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    cases = [
        (("-l", "../escape", "-o", str(out), str(photo_folder)), "plain folder name"),
        (("-l", "a/b", "-o", str(out), str(photo_folder)), "plain folder name"),
        (("-l", "keep", "-o", str(out), "9"), "camera not found"),
        (("-l", "keep", "-o", str(out), str(corrupt)), "not a readable video"),
        (("-l", "keep", "-o", str(out), str(tmp_path / "missing.mp4")), "no such file"),
        (("-l", "new", "-o", str(out), str(tmp_path / "missing.mp4")), "no such file"),  # fails before a frame
        (("-l", "x", "-o", str(blocker), str(photo_folder)), "file.txt is a file"),
        (("-l", "x", "-o", str(blocker / "ds"), str(photo_folder)), "cannot create the output folder"),
    ]
    for args, message in cases:
        result = run_cli("collect", *args)
        lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert result.returncode == 2, (args, result.stderr)
        assert len(lines) == 1 and message in lines[0], (args, result.stderr)
        assert "Traceback" not in result.stderr
    unknown = run_cli("collect", "-l", "new", "-o", str(out), "--detector", "nosuch", str(photo_folder))
    assert unknown.returncode == 3 and "nosuch" in unknown.stderr and "Traceback" not in unknown.stderr
    assert _digests(out / "keep") == kept
    assert sorted(p.name for p in out.iterdir()) == ["keep"]  # failed runs leave no empty class folder
    assert not (tmp_path / "escape").exists()


@pytest.mark.slow
def test_cli_ctrl_c_exits_130_with_whole_files(tmp_path, varied_video):
    import signal
    import subprocess
    import sys
    import time

    long_video = tmp_path / "long.mp4"
    capture = cv2.VideoCapture(str(varied_video))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    write_video(long_video, frames * 30)  # 300 frames: still collecting when the signal comes
    out = tmp_path / "ds"
    process = subprocess.Popen(
        [sys.executable, "-m", "maskwatch", "collect", "-l", "x", "-o", str(out), "--no-dedupe", str(long_video)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(list((out / "x").glob("*.jpg")) if (out / "x").is_dir() else []) < 3:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    files = sorted((out / "x").iterdir())
    assert len(files) >= 3 and all(p.suffix == ".jpg" for p in files)  # no temporary left behind
    assert all(cv2.imread(str(p)) is not None for p in files)


def _annotated_photos(root: Path, astronaut_bgr: np.ndarray) -> tuple[Path, Path]:
    """Two photos (numbers 0 and 2: train half, 1: test half) with VOC boxes, one face too small."""
    images, annotations = root / "images", root / "annotations"
    images.mkdir(parents=True)
    annotations.mkdir()
    photo = cv2.resize(astronaut_bgr, (256, 256))
    boxes = [
        ("with_mask", (90, 40, 150, 110)),
        ("mask_weared_incorrect", (10, 10, 40, 40)),
        ("without_mask", (5, 200, 9, 204)),
    ]
    for number in (0, 1, 2):
        cv2.imwrite(str(images / f"scene{number}.png"), photo)
        objects = "".join(
            f"<object><name>{name}</name><bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin><xmax>{x2}</xmax>"
            f"<ymax>{y2}</ymax></bndbox></object>"
            for name, (x1, y1, x2, y2) in boxes
        )
        (annotations / f"scene{number}.xml").write_text(
            f"<annotation><filename>scene{number}.png</filename>{objects}</annotation>"
        )
    return images, annotations


def test_collect_boxes_cuts_like_inference_and_never_overwrites(tmp_path, astronaut_bgr):
    from maskwatch.data.annotations import load_voc_dir
    from maskwatch.data.collect import collect_boxes
    from maskwatch.data.provenance import crop_photo_digest, photo_digest

    images, annotations = _annotated_photos(tmp_path, astronaut_bgr)
    photos = load_voc_dir(annotations, images)
    summary = collect_boxes(photos, tmp_path / "ds", {"mask_weared_incorrect": "incorrect_mask"}, min_face=8)
    saved = summary.saved
    assert sorted(saved) == ["incorrect_mask", "with_mask"] and len(saved["with_mask"]) == 3
    assert summary.too_small == 3  # the 4-px face of each photo
    first = tmp_path / "ds" / "with_mask" / "scene0__box-00.jpg"
    assert first in saved["with_mask"]
    expected = crop_face(cv2.imread(str(images / "scene0.png")), (90, 40, 150, 110), STORED_SIZE)
    stored = cv2.cvtColor(cv2.imread(str(first)), cv2.COLOR_BGR2RGB)
    assert np.abs(stored.astype(int) - expected.astype(int)).mean() < 3  # JPEG only
    before = first.read_bytes()
    records = (tmp_path / "ds" / "photos.csv").read_text()
    assert records.count("\n") == 1 + 6  # a header and each crop written, with its photo's digest
    assert crop_photo_digest(first) == photo_digest(images / "scene0.png")
    again = collect_boxes(photos, tmp_path / "ds", {"mask_weared_incorrect": "-"})
    assert again.saved == {} and again.existing == 3 and again.ignored_classes == {"mask_weared_incorrect": 3}
    assert first.read_bytes() == before
    assert (tmp_path / "ds" / "photos.csv").read_text() == records  # nothing written, nothing recorded twice


def test_collect_boxes_clips_a_box_beyond_a_photo_of_unannotated_size(tmp_path, astronaut_bgr):
    """No <size> in the XML: the loader cannot clip, so the box is clipped to the decoded photo (it asked
    OpenCV for 171 GB once)."""
    from maskwatch.data.annotations import AnnotatedImage, GroundTruth
    from maskwatch.data.collect import collect_boxes

    path = tmp_path / "scene0.png"
    cv2.imwrite(str(path), cv2.resize(astronaut_bgr, (256, 256)))
    photo = AnnotatedImage(path, 0, 0, [GroundTruth("with_mask", (90.0, 40.0, 99999.0, 110.0))])
    summary = collect_boxes([photo], tmp_path / "ds", {}, min_face=8)
    (crop,) = summary.saved["with_mask"]
    assert cv2.imread(str(crop)).shape[:2] == (STORED_SIZE, STORED_SIZE)


def test_collect_boxes_crops_of_one_photo_share_a_split_group():
    from maskwatch.data.dataset import ImageRecord, name_group

    groups = {name_group(ImageRecord(f"with_mask/scene7__box-0{k}.jpg", "with_mask", "0", "0")) for k in range(3)}
    assert groups == {"photo:scene7"}


@pytest.mark.slow
def test_collect_boxes_cli_counts_only_photos_it_read(tmp_path, astronaut_bgr):
    images, annotations = _annotated_photos(tmp_path, astronaut_bgr)
    (images / "scene2.png").unlink()
    result = run_cli("collect-boxes", str(images), str(annotations), "--out", str(tmp_path / "ds"))
    assert result.returncode == 2 and "from 1 photo(s)" in result.stderr
    assert "scene2.png: image named by its annotation not found" in result.stderr


@pytest.mark.slow
def test_collect_boxes_cli_train_half_and_errors(tmp_path, astronaut_bgr):
    images, annotations = _annotated_photos(tmp_path, astronaut_bgr)
    result = run_cli("collect-boxes", str(images), str(annotations), "--out", str(tmp_path / "ds"))
    assert result.returncode == 0, result.stderr
    assert "saved 4 face(s)" in result.stderr and "Traceback" not in result.stderr
    names = sorted(p.name for p in (tmp_path / "ds").rglob("*.jpg"))
    assert all(n.startswith(("scene0__", "scene2__")) for n in names) and len(names) == 4  # odd = test half
    bad = run_cli("collect-boxes", str(images), str(annotations), "--out", str(tmp_path / "x"), "--split", "both")
    assert bad.returncode != 0 and "--split" in bad.stderr and "Traceback" not in bad.stderr
    missing = run_cli("collect-boxes", str(tmp_path / "nope"), str(annotations), "--out", str(tmp_path / "y"))
    assert missing.returncode != 0 and "no such folder" in missing.stderr and "Traceback" not in missing.stderr
    for class_map, message in [
        ("with_mask=../evil", "--class-map: label '../evil' must be a plain folder name"),
        ("bogus=with_mask", "--class-map: the annotations have no class 'bogus' (their classes: mask_weared"),
    ]:
        out = str(tmp_path / "z")
        refused = run_cli("collect-boxes", str(images), str(annotations), "-o", out, "--class-map", class_map)
        assert_one_line_error(refused, message, code=2)
        assert not (tmp_path / "z").exists()  # refused before the first crop was written
