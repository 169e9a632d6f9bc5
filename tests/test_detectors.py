"""blazeface-tiled: tile layout, cut-face and face-part rules, and a real photo; the detector registry."""

from __future__ import annotations

import re

import numpy as np
import pytest

from maskwatch.detectors import create_detector, detector_names
from maskwatch.detectors.tiled import cut_by_tile_edge, tile_origins
from maskwatch.errors import InputError, ModelError
from maskwatch.inference.boxes import inside_larger


def test_tile_origins_hand_cases():
    assert tile_origins(100, 192, 0.3) == [0]  # frame smaller than a tile: one tile
    assert tile_origins(192, 192, 0.3) == [0]
    # 640 px, 192-px tiles, ≥30 % overlap: step ≤ 134 → ceil(448 / 134) + 1 = 5 tiles, evenly spread
    assert tile_origins(640, 192, 0.3) == [0, 112, 224, 336, 448]
    starts = tile_origins(480, 192, 0.3)
    assert starts[0] == 0 and starts[-1] == 480 - 192
    assert all(b - a <= int(192 * 0.7) for a, b in zip(starts, starts[1:]))


def test_cut_only_at_inner_tile_edges():
    # box touching the tile's left edge: cut when that edge is inside the frame, kept at the frame border
    assert cut_by_tile_edge((1.0, 50, 30, 80), 192, 192, left=True, top=True, right=True, bottom=True)
    assert not cut_by_tile_edge((1.0, 50, 30, 80), 192, 192, left=False, top=True, right=True, bottom=True)
    assert not cut_by_tile_edge((10.0, 50, 30, 80), 192, 192, left=True, top=True, right=True, bottom=True)
    assert cut_by_tile_edge((100.0, 50, 191, 80), 192, 192, left=False, top=False, right=True, bottom=False)


def test_inside_larger_drops_face_parts_only():
    whole = np.array([[100, 100, 200, 200]], np.float32)
    assert inside_larger((120, 120, 160, 150), whole)  # an eye region inside a big face
    assert not inside_larger((300, 300, 320, 320), whole)  # elsewhere
    assert not inside_larger((95, 95, 205, 205), whole)  # the same face, not a part of it
    assert not inside_larger((120, 120, 160, 150), np.zeros((0, 4), np.float32))


def test_tiled_finds_the_astronaut_once(astronaut_bgr):
    faces = create_detector("blazeface-tiled", threads=1).detect(astronaut_bgr)
    assert len(faces) == 1
    x1, y1, x2, y2 = faces[0].box
    assert 150 < (x1 + x2) / 2 < 280 and 40 < (y1 + y2) / 2 < 160


@pytest.mark.slow
def test_tiled_finds_a_small_face_blazeface_misses(astronaut_bgr):
    import cv2

    # the astronaut photo shrunk to 40 px (a face of ~10 px) in a 1024×768 frame
    small = cv2.resize(astronaut_bgr, (40, 40), interpolation=cv2.INTER_AREA)
    frame = np.full((768, 1024, 3), 90, np.uint8)
    frame[300:340, 500:540] = small
    assert create_detector("blazeface", threads=1).detect(frame) == []
    tiled = create_detector("blazeface-tiled", threads=1).detect(frame)
    assert len(tiled) == 1
    cx, cy = (tiled[0].box[0] + tiled[0].box[2]) / 2, (tiled[0].box[1] + tiled[0].box[3]) / 2
    assert 500 <= cx <= 540 and 300 <= cy <= 340


def test_maskface_coarse_pass_finds_a_close_up_the_main_pass_misses(astronaut_bgr, monkeypatch):
    """A face filling the frame is bigger than any face maskface trained on at its 320-px input; the
    coarse pass (128 px) sees it at a trained size. Small faces stay the main pass's job."""
    import cv2

    from maskwatch.detectors.maskface import COARSE_MIN_SIDE, MaskFaceDetector

    monkeypatch.delenv("MASKWATCH_MASKFACE", raising=False)
    close_up = cv2.resize(astronaut_bgr[70:190, 170:290], (400, 400))  # the face fills the frame
    assert MaskFaceDetector(coarse_size=0, threads=1).detect(close_up) == []
    faces = MaskFaceDetector(coarse_size=128, threads=1).detect(close_up)
    assert len(faces) == 1
    x1, y1, x2, y2 = faces[0].box
    assert min(x2 - x1, y2 - y1) >= COARSE_MIN_SIDE * 400 and 120 < (x1 + x2) / 2 < 280
    with pytest.raises(InputError, match="coarse size"):
        MaskFaceDetector(coarse_size=320)


def test_registry_lists_our_detectors_and_maskface_needs_a_model(monkeypatch):
    names = detector_names()
    ours = {
        "blazeface",
        "blazeface-short",
        "blazeface-tiled",
        "maskface",
        "maskface-multiscale",
        "maskface-flip",
        "maskface+blazeface",
    }
    assert ours <= set(names)
    from importlib import resources

    monkeypatch.delenv("MASKWATCH_MASKFACE", raising=False)
    if resources.files("maskwatch.packaged").joinpath("maskface.onnx").is_file():
        assert create_detector("maskface").detect(np.zeros((96, 128, 3), np.uint8)) == []  # packaged: loads, runs
        monkeypatch.setenv("MASKWATCH_MASKFACE", "/nonexistent/maskface.onnx")
        with pytest.raises(ModelError, match="no such maskface model"):
            create_detector("maskface")
    else:
        with pytest.raises(ModelError, match="train-detector"):
            create_detector("maskface")


def test_a_bad_maskface_model_or_metadata_is_one_line_naming_it(tmp_path, monkeypatch):
    """A corrupt model or metadata file names itself, and the variable that pointed at it."""
    model = tmp_path / "maskface.onnx"
    model.write_bytes(b"not an onnx model")
    monkeypatch.setenv("MASKWATCH_MASKFACE", str(model))
    with pytest.raises(
        ModelError, match=rf"^{re.escape(str(model))}: cannot load ONNX model: .* \(from MASKWATCH_MASKFACE\)$"
    ):
        create_detector("maskface")
    model.with_suffix(".json").write_text("{not json")
    with pytest.raises(ModelError, match=r"maskface.json: unreadable maskface metadata \(JSONDecodeError\)"):
        create_detector("maskface")


def test_merge_detections_hand_case():
    """Two overlapping boxes from two detectors merge (score-weighted), a lone one stays, keypoints survive."""
    from maskwatch.detectors.ensemble import merge_detections
    from maskwatch.faces import Detection

    blaze = Detection((0.0, 0.0, 10.0, 10.0), 0.6, ((3.0, 4.0), (7.0, 4.0)))
    mask = Detection((0.0, 0.0, 10.0, 12.0), 0.9)  # IoU 10·10 / 10·12 = 0.83 with blaze
    alone = Detection((50.0, 50.0, 60.0, 60.0), 0.55)
    merged = merge_detections([blaze, alone, mask], iou_threshold=0.4)
    assert len(merged) == 2
    first, second = merged
    assert first.score == pytest.approx(0.9) and first.keypoints == blaze.keypoints
    assert first.box[3] == pytest.approx((12 * 0.9 + 10 * 0.6) / 1.5)  # 11.2
    assert second.box == alone.box
    assert merge_detections([], 0.4) == []
    part = Detection((2.0, 5.0, 8.0, 11.0), 0.95)  # mask only: IoU 0.3 with the face, inside it
    assert [d.box for d in merge_detections([mask, part], 0.4)] == [pytest.approx(mask.box)]


def test_ensemble_runs_every_member_and_is_named_after_them():
    from maskwatch.detectors.ensemble import EnsembleDetector
    from maskwatch.faces import Detection

    class Fixed:
        def __init__(self, name, found):
            self.name, self.found, self.calls = name, found, 0

        def detect(self, image):
            self.calls += 1
            return self.found

    a = Fixed("a", [Detection((0.0, 0.0, 10.0, 10.0), 0.7)])
    b = Fixed("b", [Detection((1.0, 0.0, 11.0, 10.0), 0.8), Detection((30.0, 30.0, 40.0, 40.0), 0.6)])
    ensemble = EnsembleDetector([a, b])
    found = ensemble.detect(np.zeros((50, 50, 3), np.uint8))
    assert ensemble.name == "a+b" and a.calls == b.calls == 1
    assert [round(d.score, 2) for d in found] == [0.8, 0.6]


def test_crop_cache_folder_follows_the_detector_model(tmp_path, monkeypatch):
    """Training crops cut by one maskface model must not be reused for another: the cache folder carries
    the detector's version (hash of its model bytes and settings)."""
    import json
    from importlib import resources

    from maskwatch.data.facecache import FaceCache

    monkeypatch.delenv("MASKWATCH_MASKFACE", raising=False)
    packaged = FaceCache(tmp_path, 128, detector="maskface").folder
    models = resources.files("maskwatch.packaged")
    copy = tmp_path / "model" / "maskface.onnx"
    copy.parent.mkdir()
    copy.write_bytes(models.joinpath("maskface.onnx").read_bytes())
    meta = json.loads(models.joinpath("maskface.json").read_text())
    (copy.parent / "maskface.json").write_text(json.dumps(meta))
    monkeypatch.setenv("MASKWATCH_MASKFACE", str(copy))
    assert FaceCache(tmp_path, 128, detector="maskface").folder == packaged  # same model and settings
    meta["threshold"] = 0.25
    (copy.parent / "maskface.json").write_text(json.dumps(meta))
    other = FaceCache(tmp_path, 128, detector="maskface").folder
    assert other != packaged and other.name.startswith("maskface-")
    monkeypatch.delenv("MASKWATCH_MASKFACE")
    blaze = FaceCache(tmp_path, 128, detector="blazeface").folder
    assert blaze.name.startswith("blazeface-") and blaze != FaceCache(tmp_path, 128, detector="blazeface-tiled").folder
    assert FaceCache(None, 128).folder is None


def test_fuse_scales_averages_over_the_passes_that_can_see_a_face():
    """Hand cases: agreement keeps the mean score, a one-pass face is halved, a face too big for the
    upscaled pass is judged by the other pass alone; boxes and classes are score-weighted means."""
    from maskwatch.detectors.maskface import IN_RANGE_SIDE, fuse_scales

    def one(box, score, probs):
        return np.array([box], np.float32), np.array([score], np.float32), np.array([probs], np.float32)

    small_a = one((0, 0, 20, 20), 0.8, (1.0, 0.0, 0.0))
    small_b = one((2, 0, 22, 20), 0.4, (0.0, 1.0, 0.0))  # IoU 18·20 / 22·20 = 0.82 with small_a
    lone = one((100, 100, 120, 120), 0.6, (0.0, 0.0, 1.0))
    big = one((200, 0, 400, 200), 0.9, (1.0, 0.0, 0.0))  # side 200: 400 px in a 2× pass > IN_RANGE_SIDE
    assert 200 * 2 > IN_RANGE_SIDE >= 200

    def cat(*parts):
        return tuple(np.concatenate(p) for p in zip(*parts))

    boxes, scores, probs = fuse_scales([cat(small_a, lone, big), small_b], [1.0, 2.0], 0.4)
    order = np.argsort(boxes[:, 0])
    boxes, scores, probs = boxes[order], scores[order], probs[order]
    np.testing.assert_allclose(scores, [(0.8 + 0.4) / 2, 0.6 / 2, 0.9], rtol=1e-6)
    np.testing.assert_allclose(boxes[0], [(0 * 0.8 + 2 * 0.4) / 1.2, 0, (20 * 0.8 + 22 * 0.4) / 1.2, 20], rtol=1e-6)
    np.testing.assert_allclose(probs[0], [0.8 / 1.2, 0.4 / 1.2, 0.0], rtol=1e-6)
    np.testing.assert_allclose(boxes[2], [200, 0, 400, 200])
    empty = (np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 3), np.float32))
    boxes, scores, probs = fuse_scales([empty, empty], [1.0, 2.0], 0.4)
    assert boxes.shape == (0, 4) and scores.shape == (0,) and probs.shape == (0, 3)


def test_maskface_multiscale_finds_a_face_too_small_for_one_pass(astronaut_bgr, monkeypatch):
    """A 400-px photo with a ~16-px face: the 320-px pass shrinks it below what maskface finds; the
    multi-scale passes (up to 640 px) enlarge it. It is a separate detector with its own version."""
    import cv2

    from maskwatch.detectors.maskface import MULTISCALE_SIZES

    monkeypatch.delenv("MASKWATCH_MASKFACE", raising=False)
    canvas = np.full((300, 400, 3), 90, np.uint8)
    canvas[100:180, 150:230] = cv2.resize(astronaut_bgr, (80, 80), interpolation=cv2.INTER_AREA)
    single, multi = create_detector("maskface", threads=1), create_detector("maskface-multiscale", threads=1)
    assert multi.sizes == MULTISCALE_SIZES and multi.version != single.version
    assert single.detect(canvas) == []
    faces = multi.detect(canvas)
    assert len(faces) == 1
    x1, y1, x2, y2 = faces[0].box
    assert 165 < (x1 + x2) / 2 < 200 and 100 < (y1 + y2) / 2 < 135 and 10 < x2 - x1 < 30
    assert set(faces[0].class_probabilities) == {"with_mask", "without_mask", "incorrect_mask"}
    with pytest.raises(InputError, match="sizes"):
        create_detector("maskface", sizes=(16, 320))


def test_maskface_flip_is_mirror_symmetric_and_a_separate_version(astronaut_bgr, monkeypatch):
    """maskface-flip runs each pass on the image and its mirror and merges them, so a mirrored photo gives the
    mirrored faces (640 px wide: the letterbox pads only the bottom, so the two passes see exact mirrors)."""
    import cv2

    monkeypatch.delenv("MASKWATCH_MASKFACE", raising=False)
    canvas = np.full((480, 640, 3), 90, np.uint8)
    head = astronaut_bgr[40:240, 130:330]
    canvas[100:300, 60:260] = cv2.resize(head, (200, 200), interpolation=cv2.INTER_AREA)
    canvas[250:400, 420:570] = cv2.resize(head[:, ::-1], (150, 150), interpolation=cv2.INTER_AREA)
    plain, flipped = create_detector("maskface", threads=1), create_detector("maskface-flip", threads=1)
    assert flipped.name == "maskface-flip" and flipped.version != plain.version
    faces = sorted(flipped.detect(canvas), key=lambda f: f.box[0])
    mirrored = sorted(flipped.detect(cv2.flip(canvas, 1)), key=lambda f: -f.box[0])
    assert len(faces) == 2 and len(mirrored) == 2
    for face, twin in zip(faces, mirrored):
        x1, y1, x2, y2 = twin.box
        np.testing.assert_allclose(face.box, (640 - x2, y1, 640 - x1, y2), atol=0.01)
        assert face.score == pytest.approx(twin.score, abs=1e-5)
    assert len(plain.detect(canvas)) == 2


@pytest.mark.slow
def test_maskface_multiscale_passes_grow_with_a_large_photo(astronaut_bgr, monkeypatch):
    """A ~30-px face in a 1800-px photo: fixed passes (up to 640 px) shrink it below what maskface finds;
    passes grown with the photo (the largest at its own resolution, capped) keep it at its size."""
    import cv2

    from maskwatch.detectors.maskface import MULTISCALE_LARGE_MAX, MULTISCALE_SIZES

    monkeypatch.delenv("MASKWATCH_MASKFACE", raising=False)
    multi = create_detector("maskface-multiscale", threads=1)
    assert multi.pass_sizes(400) == MULTISCALE_SIZES == multi.pass_sizes(640)
    assert multi.pass_sizes(1280) == (768, 1024, 1280)
    assert multi.pass_sizes(8000) == (MULTISCALE_LARGE_MAX,)
    fixed = create_detector("maskface-multiscale", large_max=0, threads=1)
    assert fixed.pass_sizes(1280) == MULTISCALE_SIZES and fixed.version != multi.version
    frame = np.full((1350, 1800, 3), 90, np.uint8)
    frame[900:1060, 1200:1360] = cv2.resize(astronaut_bgr, (160, 160), interpolation=cv2.INTER_AREA)
    assert fixed.detect(frame) == []
    faces = multi.detect(frame)
    assert len(faces) == 1
    x1, y1, x2, y2 = faces[0].box
    assert 1250 < (x1 + x2) / 2 < 1290 and 920 < (y1 + y2) / 2 < 955 and 20 < x2 - x1 < 45
    # Big faces in a large photo (the demo enlarged 5.2 times): the regular passes still find them.
    from importlib import resources

    demo = cv2.imread(str(resources.files("maskwatch.assets").joinpath("demo.jpg")))
    found = multi.detect(cv2.resize(demo, (4000, 2000)))
    centres = [((f.box[0] + f.box[2]) / 2, (f.box[1] + f.box[3]) / 2) for f in found]
    for x, y in ((1005, 667), (3016, 677)):
        assert any(abs(cx - x) < 150 and abs(cy - y) < 150 for cx, cy in centres), centres
    with pytest.raises(InputError, match="large_max"):
        create_detector("maskface-multiscale", large_max=100)


def test_maskface_640_is_one_bigger_pass(astronaut_bgr, monkeypatch):
    """maskface-640 runs one main pass at 640 px (HD streams; its gain on large frames is measured by
    benchmarks/bench_large_photos.py), plus the coarse pass, and still finds an ordinary face."""
    monkeypatch.delenv("MASKWATCH_MASKFACE", raising=False)
    default, hd = create_detector("maskface", threads=1), create_detector("maskface-640", threads=1)
    assert hd.name == "maskface-640" and hd.sizes == (640,) and hd.version != default.version
    assert hd.pass_sizes(1920) == (640,) and 0 < hd.coarse_size < 640  # one main pass, plus the coarse one
    frame = np.full((1080, 1920, 3), 90, np.uint8)
    frame[400:912, 700:1212] = astronaut_bgr
    faces = hd.detect(frame)
    assert len(faces) == 1
    x1, y1, x2, y2 = faces[0].box
    assert 850 < (x1 + x2) / 2 < 980 and 440 < (y1 + y2) / 2 < 560
