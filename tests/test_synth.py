"""``maskwatch synth``: masks drawn where the landmarks say, provenance CSV, names that keep sources and
synthetic images on one side of a split, bad input."""

from __future__ import annotations

import csv
import hashlib
import math
import shutil
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import run_cli

from maskwatch.data.collect import JPEG_QUALITY
from maskwatch.data.synth import (
    CLASS_OF_PLACEMENT,
    CSV_COLUMNS,
    PLACEMENTS,
    STYLES,
    SYNTH_NAME,
    contact_sheet,
    find_landmarks,
    render_mask,
    synthesize,
)
from maskwatch.errors import InputError
from maskwatch.inference.landmarks import CHIN, LOWER_LIP, NOSE_TIP, UPPER_LIP, FaceMesh

EYES = (33, 133, 263, 362, 159, 386)
MOUTH_CENTRE = 13


@pytest.fixture(scope="module")
def detector():
    from maskwatch.detectors import create_detector

    return create_detector("blazeface")


@pytest.fixture(scope="module")
def mesh():
    return FaceMesh()


@pytest.fixture(scope="module")
def sample_faces(tmp_path_factory, astronaut_bgr) -> Path:
    """A handful of faces made from scikit-image's astronaut: framed, mirrored, turned, small and dark."""
    folder = tmp_path_factory.mktemp("faces")
    head = astronaut_bgr[0:300, 90:360]
    turned = cv2.warpAffine(astronaut_bgr, cv2.getRotationMatrix2D((225, 130), 18, 1.0), (512, 512))[0:300, 90:360]
    cv2.imwrite(str(folder / "astronaut.jpg"), head)
    cv2.imwrite(str(folder / "mirrored.jpg"), head[:, ::-1])
    cv2.imwrite(str(folder / "turned.png"), turned)
    cv2.imwrite(str(folder / "small.jpg"), cv2.resize(head, (135, 150), interpolation=cv2.INTER_AREA))
    cv2.imwrite(str(folder / "dark.jpg"), cv2.convertScaleAbs(head, alpha=0.45))
    return folder


@pytest.fixture(scope="module")
def shared_faces(shared_dir, tmp_path_factory) -> Path:
    """Six unmasked faces from the shared face-mask data, linked (not copied into the repository)."""
    source = shared_dir / "data" / "face-mask" / "without_mask"
    files = sorted(p for p in source.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[::97][:6]
    folder = tmp_path_factory.mktemp("shared_faces")
    for path in files:
        (folder / path.name).symlink_to(path)
    return folder


def _upright(points: np.ndarray, landmarks) -> np.ndarray:
    """Points turned into the face's upright frame (eyes level), so 'below' means towards the chin."""
    a, b = landmarks.points[33, :2], landmarks.points[263, :2]
    roll = math.atan2(b[1] - a[1], b[0] - a[0])
    c, s = math.cos(-roll), math.sin(-roll)
    return points @ np.array([[c, -s], [s, c]]).T


def check_placement(original: np.ndarray, result: np.ndarray, landmarks, placement: str) -> None:
    """The changed pixels cover the lower face as ``placement`` says and leave the rest alone."""
    diff = np.abs(result.astype(int) - original.astype(int)).max(axis=2)
    touched = diff > 15  # above JPEG noise: a dark mask on a dark chin still counts
    changed = diff > 40  # clearly drawn over

    def changed_at(index: int) -> bool:
        x, y = np.round(landmarks.points[index, :2]).astype(int)
        return bool(touched[y - 1 : y + 2, x - 1 : x + 2].any())

    assert not any(changed_at(i) for i in EYES), "eyes must stay visible"
    assert changed_at(CHIN) or changed_at(199), "the chin is covered in every placement"
    ys, xs = np.nonzero(changed)
    assert len(ys) > 0.03 * original.shape[0] * original.shape[1] * 0.1
    pts = _upright(np.stack([xs, ys], axis=1).astype(float), landmarks)
    marks = _upright(landmarks.points[:, :2].astype(float), landmarks)
    left, right = sorted((marks[33, 0], marks[263, 0]))
    within = (pts[:, 0] > left) & (pts[:, 0] < right)  # between the eye corners: no ear loops there
    top_of_change = np.percentile(pts[within, 1], 1)
    face_h = marks[CHIN, 1] - marks[10, 1]
    eye_y = marks[[33, 263], 1].mean()
    if placement == "correct":
        assert changed_at(NOSE_TIP) and changed_at(MOUTH_CENTRE)
        assert eye_y < top_of_change < marks[NOSE_TIP, 1], "from the nose bridge, below the eyes"
    elif placement == "below_nose":
        assert not changed_at(NOSE_TIP) and changed_at(MOUTH_CENTRE)
        assert top_of_change > marks[NOSE_TIP, 1] - 0.02 * face_h, "the nose stays uncovered"
    else:
        assert not changed_at(NOSE_TIP) and not changed_at(UPPER_LIP)
        assert top_of_change > marks[LOWER_LIP, 1] - 0.03 * face_h, "on the chin only"
    bottom_of_change = np.percentile(pts[within, 1], 99)
    assert bottom_of_change > marks[CHIN, 1], "down to under the chin"


@pytest.mark.slow
def test_every_style_and_placement_lands_on_the_lower_face(sample_faces, detector, mesh):
    for path in sorted(sample_faces.iterdir()):
        image = cv2.imread(str(path))
        landmarks = find_landmarks(image, detector, mesh)
        assert landmarks is not None, path.name
        for i, placement in enumerate(PLACEMENTS):
            for j, style in enumerate(STYLES):
                rendered = render_mask(image, landmarks, placement, style, np.random.default_rng(10 * i + j))
                assert rendered.image.shape == image.shape and rendered.image.dtype == np.uint8
                check_placement(image, rendered.image, landmarks, placement)


@pytest.mark.slow
def test_masks_follow_exposure_and_vary(sample_faces, detector, mesh):
    bright = cv2.imread(str(sample_faces / "astronaut.jpg"))
    dark = cv2.imread(str(sample_faces / "dark.jpg"))
    means = []
    for image in (bright, dark):
        lm = find_landmarks(image, detector, mesh)
        rendered = render_mask(image, lm, "correct", "surgical", np.random.default_rng(3))
        means.append(rendered.image[rendered.alpha > 0.9].mean())
    assert means[1] < 0.75 * means[0], "a mask in a dark photo is dark too"
    lm = find_landmarks(bright, detector, mesh)
    looks = {
        hashlib.sha256(render_mask(bright, lm, "correct", "cloth", np.random.default_rng(s)).image).hexdigest()
        for s in range(6)
    }
    assert len(looks) == 6
    same = [render_mask(bright, lm, "chin", "n95", np.random.default_rng(7)).image for _ in range(2)]
    assert np.array_equal(*same), "one seed, one image"


def _rows(out: Path) -> list[dict[str, str]]:
    with (out / "synth.csv").open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.slow
def test_dataset_from_skimage_faces_with_provenance(tmp_path, sample_faces, detector, mesh):
    out = tmp_path / "ds"
    summary = synthesize(sample_faces, out, correct=1, incorrect=2, seed=5, detector=detector, mesh=mesh)
    assert summary.sources == 5 and not summary.no_landmarks and len(summary.written) == 15
    assert summary.by_class["with_mask"] == 5 and summary.by_class["incorrect_mask"] == 10
    rows = _rows(out)
    assert tuple(rows[0]) == CSV_COLUMNS and len(rows) == 15
    for row in rows:
        file = out / row["file"]
        match = SYNTH_NAME.match(file.stem)
        assert file.is_file() and match and match["placement"] == row["placement"]
        assert file.parent.name == CLASS_OF_PLACEMENT[row["placement"]]
        assert Path(row["source"]).stem == match["stem"] and Path(row["source"]).is_file()
        assert row["style"] in STYLES and row["details"].startswith(row["style"]) and int(row["seed"]) >= 0
    # the recorded seed, style and placement make the same picture again
    row = rows[-1]
    source = cv2.imread(row["source"])
    again = render_mask(
        source,
        find_landmarks(source, detector, mesh),
        row["placement"],
        row["style"],
        np.random.default_rng(int(row["seed"])),
    )
    encoded = cv2.imencode(".jpg", again.image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])[1].tobytes()
    assert (out / row["file"]).read_bytes() == encoded

    # a second run adds new names and rows, never overwriting
    before = {p: p.read_bytes() for p in out.rglob("*.jpg")}
    second = synthesize(sample_faces, out, correct=1, incorrect=0, seed=6, limit=2, detector=detector, mesh=mesh)
    assert len(second.written) == 2 and all(p.stem.endswith("-2") for p in second.written)
    assert all(p.read_bytes() == data for p, data in before.items())
    assert len(_rows(out)) == 17
    # the same run again (same seed) makes nothing twice: its outputs are in synth.csv already
    again_run = synthesize(sample_faces, out, correct=1, incorrect=2, seed=5, detector=detector, mesh=mesh)
    assert again_run.written == [] and again_run.already == 15 and len(_rows(out)) == 17
    other = tmp_path / "other"  # the same file names in another folder are other sources
    shutil.copytree(sample_faces, other)
    from_other = synthesize(other, out, correct=1, incorrect=0, seed=5, limit=1, detector=detector, mesh=mesh)
    assert len(from_other.written) == 1 and from_other.already == 0

    sheet = contact_sheet(out, summary.written, max_sources=3, cell=96)
    assert sheet.shape == (3 * 96, 4 * 96, 3)  # per source: the source and its three masked versions


@pytest.mark.slow
def test_shared_faces_get_masks_in_the_right_place(tmp_path, shared_faces, detector, mesh):
    out = tmp_path / "ds"
    summary = synthesize(shared_faces, out, correct=1, incorrect=1, seed=1, detector=detector, mesh=mesh)
    assert len(summary.written) + 2 * len(summary.no_landmarks) == 12
    assert len(summary.written) >= 8
    for row in _rows(out):
        source = cv2.imread(row["source"])
        result = cv2.imread(str(out / row["file"]))
        check_placement(source, result, find_landmarks(source, detector, mesh), row["placement"])


@pytest.mark.slow
def test_split_keeps_source_and_synthetic_images_together(tmp_path, sample_faces, detector, mesh):
    from maskwatch.data.dataset import make_split, scan_dataset, split_leaks

    out = tmp_path / "ds"
    synthesize(sample_faces, out, correct=2, incorrect=2, seed=2, copy_originals=True, detector=detector, mesh=mesh)
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["incorrect_mask", "with_mask", "without_mask"]
    dataset, mirrored = scan_dataset(out)
    assert len(dataset.records) == 25
    split = make_split(dataset, mirrored, fractions=(0.6, 0.2, 0.2), seed=0, max_bits=-1)  # names alone
    sides: dict[str, set[str]] = defaultdict(set)
    groups: dict[str, set[str]] = defaultdict(set)
    for r in split.records:
        stem = Path(r.path).stem
        match = SYNTH_NAME.match(stem)
        face = match["stem"] if match else stem
        sides[face].add(r.split)
        groups[face].add(r.group)
    assert len(sides) == 5
    assert all(len(s) == 1 for s in sides.values()), sides
    assert all(len(g) == 1 for g in groups.values())
    assert len({r.split for r in split.records}) >= 2  # the faces do spread over the splits
    assert not [pair for pair in split_leaks(split.records, max_bits=-1)]


@pytest.mark.slow
def test_faces_without_landmarks_are_skipped_and_counted(tmp_path, sample_faces, detector, mesh):
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    (mixed / "face.jpg").write_bytes((sample_faces / "astronaut.jpg").read_bytes())
    cv2.imwrite(str(mixed / "wall.png"), np.full((160, 160, 3), 128, np.uint8))
    (mixed / "broken.jpg").write_bytes(b"not an image")
    summary = synthesize(mixed, tmp_path / "out", correct=1, incorrect=1, detector=detector, mesh=mesh)
    assert len(summary.written) == 2 and summary.no_landmarks == ["wall.png"] and len(summary.unreadable) == 1

    blank = tmp_path / "blank"
    blank.mkdir()
    cv2.imwrite(str(blank / "a.png"), np.full((120, 120, 3), 200, np.uint8))
    with pytest.raises(InputError, match="no face landmarks found"):
        synthesize(blank, tmp_path / "none", detector=detector, mesh=mesh)
    assert not (tmp_path / "none").exists()  # nothing half-made left behind
    with pytest.raises(InputError):
        synthesize(blank, tmp_path / "x", styles=("paper-bag",), detector=detector, mesh=mesh)
    with pytest.raises(InputError):
        synthesize(blank, tmp_path / "x", correct=0, incorrect=0, detector=detector, mesh=mesh)


@pytest.mark.slow
def test_cli(tmp_path, sample_faces):
    out = tmp_path / "ds"
    sheet = tmp_path / "sheet.png"
    result = run_cli(
        "synth", "--from", str(sample_faces), "--out", str(out), "--limit", "2", "--seed", "3", "--sheet", str(sheet)
    )
    assert result.returncode == 0, result.stderr
    assert "wrote 4 image(s)" in result.stderr
    assert cv2.imread(str(sheet)).shape[:2] == (2 * 144, 3 * 144)
    assert len(list((out / "with_mask").glob("*.jpg"))) == 2 and len(_rows(out)) == 4
    blocker = tmp_path / "file"
    blocker.write_text("x")
    blank = tmp_path / "blank"
    blank.mkdir()
    cv2.imwrite(str(blank / "a.png"), np.full((120, 120, 3), 200, np.uint8))
    for args, message in [
        (("--from", str(tmp_path / "missing"), "--out", str(out)), "no such folder"),
        (("--from", str(sample_faces), "--out", str(blocker / "ds")), "not writable"),
        (("--from", str(blank), "--out", str(tmp_path / "o")), "no face landmarks found"),
        (("--from", str(sample_faces), "--out", str(out), "--styles", "bag"), "unknown mask style"),
    ]:
        bad = run_cli("synth", *args)
        errors = [line for line in bad.stderr.splitlines() if line.startswith("error:")]
        assert bad.returncode == 2 and len(errors) == 1 and message in errors[0], (args, bad.stderr)
        assert "Traceback" not in bad.stderr
    assert len(_rows(out)) == 4
