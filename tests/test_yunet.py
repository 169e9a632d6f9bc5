"""YuNet: our decoding on hand-computed grids and against OpenCV, the Keras network's parity with the ONNX file,
SimOTA targets, and a tiny real fine-tuning run exported and loaded as ``yunet-mask``."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import run_cli

from maskwatch.detectors import create_detector
from maskwatch.detectors.yunet import (
    CLASSES,
    MAP_CHANNELS,
    MASK_CHANNELS,
    YuNetDetector,
    decode,
    pad_input,
    priors,
)
from maskwatch.errors import ModelError


def test_priors_follow_the_network_output_order() -> None:
    cells, strides = priors(64, 96)
    # stride 8: 8 rows × 12 cols, then 16: 4 × 6, then 32: 2 × 3, each row-major
    assert len(cells) == 96 + 24 + 6
    assert strides[0] == 8 and strides[96] == 16 and strides[-1] == 32
    assert cells[1].tolist() == [1, 0] and cells[12].tolist() == [0, 1]
    assert cells[96 + 7].tolist() == [1, 1]
    assert cells[-1].tolist() == [2, 1]


def hand_maps(height: int, width: int) -> np.ndarray:
    maps = np.zeros((len(priors(height, width)[0]), MAP_CHANNELS), np.float32)
    maps[:, :2] = 0.01  # probabilities, as YuNet's own file outputs them: score 0.01
    return maps


def test_decode_one_prior_by_hand() -> None:
    maps = hand_maps(64, 64)
    k = 64 + 1 * 4 + 2  # stride 16, row 1, col 2
    maps[k, :2] = (0.81, 0.64)
    maps[k, 2:6] = (0.5, -0.25, np.log(2.0), 0.0)
    maps[k, 6:8] = (1.0, 2.0)
    maps[k, 8:10] = (-0.5, 0.0)
    boxes, scores, kps, probs = decode(maps, 64, 64, min_score=0.5, scores_are_logits=False)
    assert probs is None
    np.testing.assert_allclose(scores, [0.72], rtol=1e-6)  # sqrt(0.81 · 0.64)
    # centre ((2 + 0.5) · 16, (1 - 0.25) · 16) = (40, 12), size (2 · 16, 1 · 16)
    np.testing.assert_allclose(boxes, [[24.0, 4.0, 56.0, 20.0]], atol=1e-5)
    np.testing.assert_allclose(kps[0, 0], [48.0, 48.0])  # ((2 + 1) · 16, (1 + 2) · 16)
    np.testing.assert_allclose(kps[0, 1], [24.0, 16.0])
    assert len(decode(maps, 64, 64, min_score=0.73, scores_are_logits=False)[0]) == 0


def test_decode_logits_and_class_head() -> None:
    maps = np.zeros((len(priors(32, 32)[0]), MASK_CHANNELS), np.float32)
    maps[:, :2] = -10.0
    maps[3, :2] = (2.0, 2.0)  # stride 8, row 0, col 3: sigmoid(2) both → score sigmoid(2)
    maps[3, MAP_CHANNELS:] = (0.0, np.log(3.0), 0.0)
    boxes, scores, _, probs = decode(maps, 32, 32, min_score=0.5)
    np.testing.assert_allclose(scores, [1 / (1 + np.exp(-2.0))], rtol=1e-5)
    np.testing.assert_allclose(boxes, [[20.0, -4.0, 28.0, 4.0]], atol=1e-5)  # centre (24, 0), 8 × 8
    np.testing.assert_allclose(probs, [[0.2, 0.6, 0.2]], atol=1e-6)


def test_decode_refuses_maps_of_another_size() -> None:
    from maskwatch.errors import ModelError  # noqa: F811

    with pytest.raises(ModelError, match="priors"):
        decode(hand_maps(64, 64), 96, 64, 0.5)


def test_detector_keeps_one_box_per_face_with_network_stand_in() -> None:
    def network(tensor: np.ndarray) -> np.ndarray:
        h, w = tensor.shape[1:3]
        maps = np.zeros((len(priors(h, w)[0]), MASK_CHANNELS), np.float32)
        maps[:, :2] = -10.0
        for k, score in ((9, 3.0), (10, 2.0)):  # stride 8, row 1, cols 1 and 2: the same face seen twice
            maps[k, :2] = score
            maps[k, 2:6] = (0.5 if k == 9 else -0.5, 0.0, np.log(4.0), np.log(4.0))
        maps[9, MAP_CHANNELS:] = (3.0, 0.0, 0.0)
        maps[10, MAP_CHANNELS:] = (0.0, 3.0, 0.0)
        return maps

    detector = YuNetDetector(size=64, mask=True, network=network)
    found = detector.detect(np.zeros((64, 64, 3), np.uint8))
    assert len(found) == 1
    assert found[0].box == pytest.approx((0.0, 0.0, 28.0, 24.0), abs=1e-4)  # centre (12, 8), 32 × 32, clipped
    assert set(found[0].class_probabilities) == set(CLASSES)
    assert found[0].class_probabilities["with_mask"] > found[0].class_probabilities["without_mask"]  # weighted
    assert len(found[0].keypoints) == 5


def test_yunet_is_registered_and_reads_the_users_file(yunet_file: Path, monkeypatch) -> None:
    notice = resources.files("maskwatch").joinpath("NOTICE").read_text()
    assert "yunet_mask.onnx" in notice and "Apache" in notice
    assert create_detector("yunet").name == "yunet"
    monkeypatch.delenv("MASKWATCH_YUNET")
    with pytest.raises(ModelError, match="MASKWATCH_YUNET"):
        create_detector("yunet")


def test_decoder_matches_opencv_on_a_real_photo(astronaut_bgr: np.ndarray, yunet_file: Path) -> None:
    if not hasattr(cv2, "FaceDetectorYN"):
        pytest.skip("this OpenCV has no FaceDetectorYN")
    # two astronauts side by side at different scales: faces of two sizes
    small = cv2.resize(astronaut_bgr, (256, 256))
    image = np.zeros((512, 768, 3), np.uint8)
    image[:, :512] = astronaut_bgr
    image[128:384, 512:] = small
    h, w = image.shape[:2]
    ours = YuNetDetector(size=max(h, w), min_score=0.3, nms_iou=0.3, model=yunet_file).detect(image)
    model = str(yunet_file)
    reference = cv2.FaceDetectorYN.create(model, "", (w, h), 0.3, 0.3, 5000)
    _, faces = reference.detect(image)
    assert faces is not None and len(faces) == len(ours) >= 2
    faces = faces[np.argsort(-faces[:, 14])]
    for mine, theirs in zip(sorted(ours, key=lambda d: -d.score), faces):
        x, y, fw, fh = theirs[:4]
        np.testing.assert_allclose(mine.box, (x, y, x + fw, y + fh), atol=0.05)
        np.testing.assert_allclose(np.array(mine.keypoints).ravel(), theirs[4:14], atol=0.05)
        assert mine.score == pytest.approx(float(theirs[14]), abs=1e-4)


def test_sizes_are_checked() -> None:
    from maskwatch.errors import InputError

    with pytest.raises(InputError, match="between"):
        YuNetDetector(size=16)


def test_pad_input_pads_to_multiples_of_32() -> None:
    canvas, scale = pad_input(np.full((480, 640, 3), 200, np.uint8), 320)
    assert canvas.shape == (256, 320, 3) and scale == 0.5
    assert canvas[240:].max() == 0 and canvas[:240].min() == 200


# --- training side -------------------------------------------------------------------------------------------


def test_assign_takes_priors_near_the_face_and_ignores_cut_faces() -> None:
    from maskwatch.training.detector.yunet import TARGET_CHANNELS, assign

    size = 64
    maps = np.zeros((len(priors(size, size)[0]), MASK_CHANNELS), np.float32)
    maps[:, 4:6] = np.log(2.0)  # every prior predicts a box twice its stride
    boxes = np.array([[16, 16, 40, 40], [0, 48, 10, 60]], np.float32)
    target = assign(maps, boxes, np.array([1, 0]), np.array([False, True]), size, size)
    assert target.shape == (len(maps), TARGET_CHANNELS)
    positive = target[:, 0] > 0
    assert positive.any()
    points = target[positive, 8:10]
    assert np.all(np.abs(points - 28.0) < 2.5 * target[positive, 10:11])  # within 2.5 strides of the centre
    assert np.all(target[positive, 7] == 1) and np.all(target[positive, 3:7] == boxes[0])
    assert np.all((target[positive, 2] > 0) & (target[positive, 2] <= 1))
    inside_ignored = (target[:, 8] <= 10) & (target[:, 9] >= 48)
    assert inside_ignored.any() and np.all(target[inside_ignored, 1] == 0)


@pytest.mark.slow
def test_keras_network_matches_the_onnx_file(astronaut_bgr: np.ndarray, shared_dir: Path) -> None:
    pytest.importorskip("keras")
    pytest.importorskip("onnx")
    from maskwatch.training.detector.yunet import build_model, load_yunet_weights

    source = shared_dir / "weights/yunet/yunet_n_dynamic.onnx"
    if not source.is_file():
        pytest.skip(f"{source} not here")
    model = build_model()
    assert load_yunet_weights(model, source) == 59
    canvas, _ = pad_input(astronaut_bgr, 320)
    tensor = cv2.cvtColor(canvas, cv2.COLOR_BGR2RGB).astype(np.float32)[None]
    ours = np.asarray(model.predict_on_batch(tensor))[0]
    reference = YuNetDetector(model=source)._network(tensor)
    assert ours.shape == (len(reference), MASK_CHANNELS)
    np.testing.assert_allclose(1 / (1 + np.exp(-ours[:, :2])), reference[:, :2], atol=1e-5)
    np.testing.assert_allclose(ours[:, 2:MAP_CHANNELS], reference[:, 2:], atol=1e-4)


@pytest.mark.slow
def test_tiny_fine_tuning_exports_a_yunet_mask_detector(tmp_path: Path, shared_dir: Path) -> None:
    pytest.importorskip("tensorflow")
    scenes = shared_dir / "data/scenes"
    source = shared_dir / "weights/yunet/yunet_n_dynamic.onnx"
    if not scenes.is_dir() or not source.is_file():
        pytest.skip("shared scenes or YuNet weights not here")
    out = tmp_path / "run"
    result = run_cli(
        "train-detector", "--init", str(source), "--scenes", str(scenes), "--face-mask", "none",
        "--steps", "3", "--batch", "2", "--size", "128", "--limit-scenes", "4", "--checkpoint-every", "3",
        "--out", str(out), timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    meta = json.loads((out / "yunet_mask.json").read_text())
    assert meta["classes"] == list(CLASSES) and meta["config"]["steps"] == 3
    assert len(meta["trained_on_photos"]) == 4  # the four scenes it learnt from (YuNet's own data is not a scene)
    detector = create_detector("yunet-mask", model=out / "yunet_mask.onnx", min_score=0.0)
    image = cv2.imread(str(sorted((scenes / "images").glob("*.jpg"))[0]))
    found = detector.detect(image)
    assert found and all(set(d.class_probabilities) == set(CLASSES) for d in found)
    assert sum(found[0].class_probabilities.values()) == pytest.approx(1.0, abs=1e-5)

    weights = next(out.glob("*.weights.h5"))
    weights.write_bytes(b"damaged")  # a checkpoint cut short by a full disk: resuming says so in one line
    resumed = run_cli(
        "train-detector", "--init", str(source), "--scenes", str(scenes), "--face-mask", "none", "--resume",
        "--steps", "4", "--batch", "2", "--size", "128", "--limit-scenes", "4", "--out", str(out), timeout=600,
    )  # fmt: skip
    assert resumed.returncode != 0 and "Traceback" not in resumed.stderr
    assert "cannot resume from its checkpoint" in resumed.stderr
    assert weights.read_bytes() == b"damaged" and (out / "yunet_mask.onnx").is_file()


def test_packaged_yunet_mask_finds_the_face_and_names_three_classes(astronaut_bgr: np.ndarray) -> None:
    from maskwatch.detectors.yunet import MASK_MODEL_FILE

    if not resources.files("maskwatch.packaged").joinpath(MASK_MODEL_FILE).is_file():
        pytest.skip("no yunet-mask model packaged")
    video, photo = create_detector("yunet-mask"), create_detector("yunet-mask-multiscale")
    assert video.threshold != 0.5  # the operating point from its metadata
    for detector in (video, photo):
        # the best box is the face (the suit's round mission patch also scores, lower: a known false face)
        found = sorted(detector.detect(astronaut_bgr), key=lambda d: -d.score)
        assert 1 <= len(found) <= 2, [d.box for d in found]
        x1, y1, x2, y2 = found[0].box
        assert 150 < (x1 + x2) / 2 < 300 and 60 < (y1 + y2) / 2 < 200  # the astronaut's face
        assert set(found[0].class_probabilities) == set(CLASSES)
        assert max(found[0].class_probabilities, key=found[0].class_probabilities.get) == "without_mask"


@pytest.mark.slow
def test_train_detector_refuses_a_file_that_is_not_yunet(tmp_path: Path, shared_dir: Path) -> None:
    scenes = shared_dir / "data/scenes"
    if not scenes.is_dir():
        pytest.skip("shared scenes not here")
    broken = tmp_path / "yunet_broken.onnx"
    broken.write_bytes(b"not a model")
    result = run_cli("train-detector", "--init", str(broken), "--scenes", str(scenes), "--out", str(tmp_path / "r"))
    assert result.returncode != 0
    assert "yunet_broken.onnx: not an ONNX file" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "r").exists()
