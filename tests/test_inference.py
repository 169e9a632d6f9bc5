"""Unit tests of the inference building blocks: crops, NMS, image decoding, bundles, tracker."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from maskwatch.detectors import create_detector
from maskwatch.errors import InputError, ModelError
from maskwatch.faces import Face
from maskwatch.inference.boxes import iou_matrix, weighted_nms
from maskwatch.inference.bundle import BundleMeta, load_bundle, save_bundle
from maskwatch.inference.crops import crop_face, square_box
from maskwatch.inference.tracker import FaceTracker
from maskwatch.media.imageio import decode_image


def test_square_box_is_centred_square_with_margin():
    assert square_box((10, 20, 30, 60), margin=0.25) == (-10, 10, 50, 70)  # side 40 * 1.5 around (20, 40)
    assert square_box((0, 0, 10, 10), margin=0.0) == (0, 0, 10, 10)


def test_crop_face_pads_outside_the_image_by_replicating_edges():
    image = np.zeros((50, 50, 3), np.uint8)
    image[:, :25] = (255, 0, 0)  # blue left half in BGR
    crop = crop_face(image, (0, 0, 50, 50), size=32, margin=0.5)
    assert crop.shape == (32, 32, 3)
    assert tuple(crop[16, 0]) == (0, 0, 255)  # left padding replicates the blue edge, returned as RGB


def test_iou_matrix_hand_computed():
    a = np.array([[0, 0, 10, 10], [0, 0, 10, 10]], np.float32)
    b = np.array([[5, 0, 15, 10], [20, 20, 30, 30]], np.float32)
    np.testing.assert_allclose(iou_matrix(a, b), [[50 / 150, 0], [50 / 150, 0]], rtol=1e-6)
    assert iou_matrix(a[:0], b).shape == (0, 2)


def test_weighted_nms_merges_a_cluster_and_keeps_distant_boxes():
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60]], np.float32)
    scores = np.array([0.9, 0.6, 0.8], np.float32)
    out_boxes, out_scores, _ = weighted_nms(boxes, scores, iou_threshold=0.3)
    assert out_scores.tolist() == pytest.approx([0.9, 0.8])
    np.testing.assert_allclose(out_boxes[0], [0.4, 0, 10.4, 10], atol=1e-5)  # score-weighted mean of the pair
    np.testing.assert_allclose(out_boxes[1], [50, 50, 60, 60])
    empty_boxes, empty_scores, _ = weighted_nms(boxes[:0], scores[:0], 0.3)
    assert empty_boxes.shape == (0, 4) and empty_scores.shape == (0,)


def test_blazeface_finds_the_astronaut_face(astronaut_bgr):
    detections = create_detector("blazeface").detect(astronaut_bgr)
    assert len(detections) == 1
    x1, y1, x2, y2 = detections[0].box
    assert 160 < x1 < 190 and 60 < y1 < 90 and 260 < x2 < 290 and 165 < y2 < 195
    assert len(detections[0].keypoints) == 6


def test_unknown_detector_is_a_one_line_error():
    with pytest.raises(ModelError, match="unknown detector 'nope'"):
        create_detector("nope")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty file"),
        (b"not an image at all", "not a readable image"),
        (b"\xff\xd8\xff\xe0" + b"\0" * 50, "not a"),
    ],
)
def test_decode_image_rejects_bad_bytes(data, message):
    with pytest.raises(InputError, match=message):
        decode_image(data, "upload")


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp", ".tiff", "padded.jpg"])
def test_decode_image_rejects_decompression_bombs_before_decoding(suffix, monkeypatch):
    """Every advertised format is sized from its header; a JPEG whose size marker lies beyond 64 KiB of
    metadata segments too (it once slipped through to a full decode)."""
    import maskwatch.media.imageio

    ok, encoded = cv2.imencode(suffix.removeprefix("padded"), np.zeros((3000, 3000, 3), np.uint8))
    data = encoded.tobytes()
    if suffix.startswith("padded"):
        app2 = b"\xff\xe2\xff\xff" + b"\0" * 65533  # two 64 KiB APP2 segments after the start marker
        data = data[:2] + app2 * 2 + data[2:]

    def no_decode(*args):
        raise AssertionError("decoded a bomb")

    monkeypatch.setattr(maskwatch.media.imageio.cv2, "imdecode", no_decode)
    with pytest.raises(InputError, match="3000x3000 pixels is over the limit"):
        decode_image(data, "bomb" + suffix, max_pixels=1_000_000)


def test_decode_image_refuses_formats_whose_size_only_decoding_tells(monkeypatch):
    """Radiance HDR (and other formats only OpenCV reads) is refused unread: a small RLE file can expand to GBs."""
    import maskwatch.media.imageio

    ok, hdr = cv2.imencode(".hdr", np.zeros((3000, 3000, 3), np.float32))
    assert ok and len(hdr) < 1_000_000

    def no_decode(*args):
        raise AssertionError("decoded a format whose size was not read first")

    monkeypatch.setattr(maskwatch.media.imageio.cv2, "imdecode", no_decode)
    with pytest.raises(InputError, match="not a readable image"):
        decode_image(hdr.tobytes(), "bomb.hdr")


def test_bundle_errors_are_one_line(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        load_bundle(tmp_path / "missing")
    with pytest.raises(ModelError, match="lacks bundle.json"):
        load_bundle(tmp_path)
    (tmp_path / "model.onnx").write_bytes(b"garbage")
    (tmp_path / "bundle.json").write_text("{not json")
    with pytest.raises(ModelError, match="not valid JSON"):
        load_bundle(tmp_path)
    (tmp_path / "bundle.json").write_text(json.dumps({"classes": ["only_one"], "input_size": 64}))
    with pytest.raises(ModelError, match="classes"):
        load_bundle(tmp_path)
    with pytest.raises(ModelError, match="no packaged model bundle 'maskwatch:nope'"):
        load_bundle("maskwatch:nope")
    for classes, message in ((["a", "b", "a"], "classes: names class 'a' twice$"), (["a", "too_small"], "is reserved")):
        (tmp_path / "bundle.json").write_text(json.dumps({"classes": classes, "input_size": 64}))
        with pytest.raises(ModelError, match=message):
            load_bundle(tmp_path)


def test_a_class_folder_named_too_small_is_refused(tmp_path):
    from maskwatch.data.dataset import class_folders

    for name in ("with_mask", "too_small"):
        (tmp_path / name).mkdir()
    with pytest.raises(InputError, match=r"is reserved \(faces too small to classify\); rename it"):
        class_folders(tmp_path)


def test_a_bundle_whose_model_takes_other_crops_is_refused_at_load(tmp_path):
    from maskwatch.inference.classifier import MaskClassifier

    source = load_bundle("maskwatch:default")
    save_bundle(tmp_path, source.onnx, source.meta.model_copy(update={"input_size": 64}))
    with pytest.raises(ModelError, match="model takes 128 px crops but bundle.json says 64"):
        MaskClassifier(tmp_path)


def test_corrupt_onnx_in_a_valid_bundle_is_a_one_line_error(tmp_path):
    from maskwatch.inference.classifier import MaskClassifier

    save_bundle(tmp_path, b"garbage", BundleMeta(classes=["a", "b"], input_size=64))
    with pytest.raises(ModelError, match="cannot load ONNX model"):
        MaskClassifier(tmp_path)


def _face(box, p_mask):
    return Face(
        box=box,
        label="x",
        score=0.0,
        detection_score=0.9,
        probabilities={"with_mask": p_mask, "without_mask": 1 - p_mask},
    )


def test_tracker_keeps_ids_across_frames_and_smooths_a_flicker():
    tracker = FaceTracker(["with_mask", "without_mask"], window=5, min_hits=3)
    labels, ids = [], []
    for i, p in enumerate([0.9, 0.95, 0.2, 0.9, 0.92]):  # one flickering frame
        (face,) = tracker.update([_face((10 + i, 10, 60 + i, 60), p)], i)
        labels.append(face.label)
        ids.append(face.track_id)
    assert ids == [1] * 5
    assert labels == ["with_mask"] * 5
    (other,) = tracker.update([_face((300, 300, 350, 350), 0.1)], 5)
    assert other.track_id == 2 and other.label == "without_mask"
    assert tracker.people_per_class() == {"with_mask": 1}  # the second track has too few hits to count


def test_tracker_retires_lost_tracks():
    tracker = FaceTracker(["with_mask", "without_mask"], max_age=2, min_hits=1)
    tracker.update([_face((0, 0, 50, 50), 0.9)], 0)
    (face,) = tracker.update([_face((0, 0, 50, 50), 0.9)], 10)
    assert face.track_id == 2  # the first track aged out; a new person
    assert tracker.people_per_class() == {"with_mask": 2}


def test_tracker_follows_a_fast_face_through_a_missed_frame_by_its_motion():
    """40 px a frame on a 100-px face, not found in frame 2: in frame 3 its box overlaps the last one at IoU 0.11,
    but where its motion puts it at 1.0, so it keeps its id; a face standing where the first one was is new."""
    tracker = FaceTracker(["with_mask", "without_mask"], min_hits=1)
    ids = [tracker.update([_face((x, 0, x + 100, 100), 0.9)], frame)[0].track_id for frame, x in ((0, 0), (1, 40))]
    (moved, still) = tracker.update([_face((120, 0, 220, 100), 0.9), _face((0, 200, 100, 300), 0.1)], 3)
    assert ids == [1, 1] and moved.track_id == 1 and still.track_id == 2
    assert tracker.people_per_class() == {"with_mask": 1, "without_mask": 1}
