"""maskface: target encoding and box decoding against hand-computed cases, a tiny real training run,
ONNX export parity and the detector swap through ``--detector``."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import assert_one_line_error, run_cli

from maskwatch.data.annotations import scene_fold, scene_split
from maskwatch.data.provenance import photo_digests
from maskwatch.detectors.maskface import (
    HEAD_CHANNELS,
    STRIDE,
    calibrate,
    decode_maps,
    letterbox,
    local_peaks,
    uncalibrate,
)
from maskwatch.inference.boxes import weighted_nms

pytest.importorskip("maskwatch.training.detector.targets")
from maskwatch.training.detector.targets import TARGET_CHANNELS, encode_targets, gaussian_radius  # noqa: E402


def test_encode_targets_hand_case():
    # a 16×12-px face at (8, 10)-(24, 22) on a 32×32 input: 8×8 map, centre (16, 16) px = cell (4, 4) exactly
    boxes = np.array([[8, 10, 24, 22]], np.float32)
    t = encode_targets(boxes, np.array([1]), np.array([False]), 32, 32)
    assert t.shape == (8, 8, TARGET_CHANNELS)
    assert t[4, 4, 0] == 1.0 and t[4, 4, 5] == 1.0 and t[..., 5].sum() == 1.0
    np.testing.assert_allclose(t[4, 4, 1:5], [math.log(4.0), math.log(3.0), 0.0, 0.0], atol=1e-6)
    assert t[4, 4, 6] == 1.0  # class index without_mask
    # Gaussian falls off away from the centre, and only ignore-free
    assert 0 < t[4, 5, 0] < 1 and t[4, 5, 0] > t[4, 6, 0]
    assert t[..., 7].sum() == 0


def test_encode_targets_offset_and_ignore():
    boxes = np.array([[1, 1, 11, 7], [20, 20, 22, 22]], np.float32)
    t = encode_targets(boxes, np.array([0, 2]), np.array([False, True]), 32, 32)
    # first face: centre (6, 4) px → (1.5, 1.0) cells → cell (col 1, row 1), offset (0.5, 0.0)
    np.testing.assert_allclose(t[1, 1, 1:5], [math.log(2.5), math.log(1.5), 0.5, 0.0], atol=1e-6)
    # ignored face: its cells (5, 5) are ignore, not positive
    assert t[5, 5, 7] == 1.0 and t[5, 5, 5] == 0.0 and t[..., 5].sum() == 1.0


def test_gaussian_radius_grows_with_size():
    assert 0 < gaussian_radius(4, 4) < gaussian_radius(16, 16)


def test_decode_maps_hand_case():
    maps = np.full((8, 8, HEAD_CHANNELS), 0.0, np.float32)
    maps[..., 0] = -10.0
    maps[2, 3, 0] = 3.0  # sigmoid 0.9526
    maps[2, 3, 1:5] = [math.log(2.5), math.log(1.5), 0.5, 0.25]
    maps[2, 3, 5:] = [2.0, 0.0, 0.0]
    boxes, scores, probs = decode_maps(maps, min_score=0.5)
    # centre ((3 + 0.5) × 4, (2 + 0.25) × 4) = (14, 9); size (2.5 × 4, 1.5 × 4) = (10, 6)
    np.testing.assert_allclose(boxes, [[9.0, 6.0, 19.0, 12.0]], atol=1e-5)
    np.testing.assert_allclose(scores, [1 / (1 + math.exp(-3.0))], rtol=1e-5)
    e = math.exp(2.0)
    np.testing.assert_allclose(probs, [[e / (e + 2), 1 / (e + 2), 1 / (e + 2)]], rtol=1e-5)
    assert decode_maps(maps, min_score=0.99)[0].shape == (0, 4)


def test_encode_then_decode_round_trip():
    boxes = np.array([[10, 12, 34, 40], [60, 8, 72, 22], [40, 60, 90, 120]], np.float32)
    t = encode_targets(boxes, np.array([0, 1, 2]), np.zeros(3, bool), 128, 128)
    maps = np.zeros((32, 32, HEAD_CHANNELS), np.float32)
    maps[..., 0] = np.where(t[..., 5] > 0, 5.0, -5.0)
    maps[..., 1:5] = t[..., 1:5]
    for k in range(3):
        maps[..., 5 + k] = np.where(t[..., 6] == k, 4.0, 0.0)
    out, _, probs = decode_maps(maps, 0.5)
    order = np.argsort(out[:, 0])
    np.testing.assert_allclose(out[order], boxes[np.argsort(boxes[:, 0])], atol=1e-4)
    assert sorted(probs.argmax(1).tolist()) == [0, 1, 2]


def test_local_peaks_keeps_only_maxima():
    heat = np.array([[0.1, 0.2, 0.1], [0.2, 0.9, 0.3], [0.1, 0.3, 0.8]], np.float32)
    peaks = local_peaks(heat)
    assert peaks.sum() == 1 and peaks[1, 1]


def test_weighted_nms_hand_case_with_class_probabilities():
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60]], np.float32)
    scores = np.array([0.9, 0.6, 0.7], np.float32)
    probs = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1]], np.float32)
    out, out_scores, out_probs = weighted_nms(boxes, scores, 0.4, probs)
    # cluster {0, 1}: IoU 9/11; averaged with weights 0.9 and 0.6 → x1 = 0.6/1.5 = 0.4
    np.testing.assert_allclose(out[0], [0.4, 0, 10.4, 10], atol=1e-5)
    np.testing.assert_allclose(out_probs[0], [0.6, 0.4, 0.0], atol=1e-5)
    np.testing.assert_allclose(out_scores, [0.9, 0.7])
    np.testing.assert_allclose(out[1], boxes[2])


def test_calibration_maps_threshold_to_one_half():
    assert calibrate(np.array([0.3]), 0.3)[0] == pytest.approx(0.5)
    assert uncalibrate(0.5, 0.3) == pytest.approx(0.3)
    assert uncalibrate(float(calibrate(np.array([0.8]), 0.3)[0]), 0.3) == pytest.approx(0.8, rel=1e-4)


def test_letterbox_pads_to_multiples_of_32():
    tensor, scale = letterbox(np.zeros((480, 640, 3), np.uint8), 320)
    assert tensor.shape == (1, 256, 320, 3) and scale == 0.5


def _write_toy_scenes(root: Path, count: int = 6) -> Path:
    """Photos with bright 'faces' (ellipses with eyes) on noise, annotated in Pascal VOC."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "annotations").mkdir()
    for i in range(count):
        image = rng.integers(0, 80, (120, 160, 3), dtype=np.uint8)
        objects = []
        for _ in range(2):
            s = int(rng.integers(16, 40))
            x, y = int(rng.integers(0, 160 - s)), int(rng.integers(0, 120 - s))
            cv2.ellipse(image, (x + s // 2, y + s // 2), (s // 2, s // 2), 0, 0, 360, (150, 180, 220), -1)
            cv2.circle(image, (x + s // 3, y + s // 3), max(1, s // 10), (0, 0, 0), -1)
            cv2.circle(image, (x + 2 * s // 3, y + s // 3), max(1, s // 10), (0, 0, 0), -1)
            objects.append(
                f"<object><name>without_mask</name><bndbox><xmin>{x}</xmin><ymin>{y}</ymin>"
                f"<xmax>{x + s}</xmax><ymax>{y + s}</ymax></bndbox></object>"
            )
        name = f"toy{i}.jpg"
        cv2.imwrite(str(root / "images" / name), image)
        (root / "annotations" / f"toy{i}.xml").write_text(
            f"<annotation><filename>{name}</filename><size><width>160</width><height>120</height>"
            f"<depth>3</depth></size>{''.join(objects)}</annotation>"
        )
    return root


def test_scenes_split_all_trains_on_both_halves_and_the_test_half_alone_is_refused(tmp_path):
    from maskwatch.training.detector.data import HeldOutFold, load_scenes

    scenes = _write_toy_scenes(tmp_path / "scenes", count=6)  # toy0, 2, 4 train; toy1, 3, 5 test
    assert len(load_scenes(scenes, "train")) == 3
    assert len(load_scenes(scenes, "all")) == 6
    assert len(load_scenes(scenes, "all", held_out=HeldOutFold(0, 3))) == 5  # the fold holds train-half photos only
    result = run_cli("train-detector", "--scenes", str(scenes), "--scenes-split", "test", "--out", str(tmp_path / "r"))
    assert_one_line_error(result, "--scenes-split test: train or all")
    assert not (tmp_path / "r").exists()


def test_anchor_sampling_puts_the_chosen_face_in_the_canvas_at_a_drawn_size(tmp_path):
    """Data-anchor sampling: every scene has one face, so each sample must show it, whole, at 8..0.95·T px."""
    from maskwatch.training.detector.data import SampleMaker, load_scenes

    root = tmp_path / "scenes"
    (root / "images").mkdir(parents=True)
    (root / "annotations").mkdir()
    for i in range(2):  # even numbers: train half
        cv2.imwrite(str(root / "images" / f"s{2 * i}.png"), np.full((300, 400, 3), 90, np.uint8))
        (root / "annotations" / f"s{2 * i}.xml").write_text(
            f"<annotation><filename>s{2 * i}.png</filename><object><name>with_mask</name><bndbox>"
            "<xmin>300</xmin><ymin>200</ymin><xmax>320</xmax><ymax>220</ymax></bndbox></object></annotation>"
        )
    scenes = load_scenes(root, "train")
    maker = SampleMaker(scenes, {0: [], 1: []}, size=128, seed=3, mosaic_prob=0.0, anchor_prob=1.0)
    sides = []
    for _ in range(100):
        sample = maker.single(128)
        assert len(sample.boxes) == 1 and not sample.ignore[0]
        x1, y1, x2, y2 = sample.boxes[0]
        sides.append(x2 - x1)
        assert 0 <= x1 < x2 <= 128 and 0 <= y1 < y2 <= 128
    assert min(sides) >= 7.5 and max(sides) <= 0.95 * 128 + 1
    assert max(sides) / min(sides) > 3  # sizes really vary


def test_closeup_samples_are_one_whole_face_filling_most_of_the_canvas():
    """--closeup-prob: the face crop is the only box, unblended, 0.6–1.0 of the side, inside the canvas."""
    from maskwatch.training.detector.data import CLOSEUP_MIN_SIDE, SampleMaker

    rng = np.random.default_rng(0)
    crops = {0: [rng.integers(0, 255, (60, 50, 3), dtype=np.uint8)], 1: [np.full((40, 40, 3), 200, np.uint8)]}
    maker = SampleMaker([], crops, size=128, seed=1, mosaic_prob=0.0, closeup_prob=1.0)
    sides, labels = [], set()
    for _ in range(60):
        sample = maker.single(128)
        assert len(sample.boxes) == 1 and not sample.ignore[0]
        x1, y1, x2, y2 = (int(v) for v in sample.boxes[0])
        assert 0 <= x1 < x2 <= 128 and 0 <= y1 < y2 <= 128
        sides.append(max(x2 - x1, y2 - y1))
        labels.add(int(sample.labels[0]))
        if sample.labels[0] == 1:  # the bare crop is pasted as it is: a flat 200 patch, no feathered edge
            assert (sample.image[y1:y2, x1:x2] == 200).all()
    assert min(sides) >= CLOSEUP_MIN_SIDE * 128 - 1 and max(sides) <= 128
    assert labels <= {0, 1, 2} and 1 in labels
    assert SampleMaker([], {0: [], 1: []}, closeup_prob=1.0).closeup_prob == 0.0  # no crops: no close-ups


@pytest.mark.slow
def test_negative_samples_hold_distractors_and_only_pasted_faces():
    """--negative-prob: no scene is used; a sample is face-free or holds only the 1–3 pasted faces, and the
    distractors really cover the canvas (it is not the flat synthetic background alone)."""
    from maskwatch.training.detector.data import SampleMaker, distractor_background, synthetic_background

    crops = {0: [np.full((40, 40, 3), 90, np.uint8)], 1: [np.full((40, 40, 3), 200, np.uint8)]}
    maker = SampleMaker([], crops, size=128, seed=4, mosaic_prob=0.0, negative_prob=1.0)
    counts = [len(maker.single(128).boxes) for _ in range(80)]
    assert 0 in counts and max(counts) <= 3 and any(counts)
    assert {
        len(SampleMaker([], crops, seed=5, negative_prob=1.0, paste_prob=0.0).single(64).boxes) for _ in range(20)
    } == {0}
    image = distractor_background(128, np.random.default_rng(0))
    plain = synthetic_background(128, np.random.default_rng(0))  # the same draws, before the distractors
    assert image.shape == (128, 128, 3) and image.dtype == np.uint8
    assert np.mean(np.any(image != plain, axis=2)) > 0.05


def test_anchor_pool_balances_classes_by_the_power_of_their_counts():
    """9 masked + 1 bare face: power 1 draws faces uniformly (bare 10 %), 0 draws classes equally (50 %),
    0.5 gives the classes weights 3 : 1 (bare 25 %); a face's scene and index come back as given."""
    from maskwatch.training.detector.data import Scene, anchor_pool

    image = np.zeros((8, 8, 3), np.uint8)
    boxes = np.tile(np.array([[0, 0, 4, 4]], np.float32), (5, 1))
    scenes = [
        Scene(image, boxes, np.zeros(5, np.int64)),
        Scene(image, boxes[:0], np.zeros(0, np.int64)),
        Scene(image, boxes, np.array([0, 0, 1, 0, 0])),
    ]
    for power, bare_share in ((1.0, 0.1), (0.0, 0.5), (0.5, 0.25)):
        faces, weights = anchor_pool(scenes, power)
        assert len(faces) == 10 and faces[7] == (2, 2)
        assert weights.sum() == pytest.approx(1.0)
        assert weights[7] == pytest.approx(bare_share)
    assert anchor_pool(scenes[1:2], 0.5)[0] == []


def tiny_config(scenes: Path, out: Path, **overrides):
    """A training run of seconds: toy scenes, no pasted faces, a random 8-channel model, 4 steps."""
    from maskwatch.training.detector.train import TrainConfig

    options = dict(backbone_weights=None, face_mask=None, steps=4, batch=2, size=64, width=8, warmup=2)
    options.update(checkpoint_every=2, threads=1, input_size=160)
    return TrainConfig(scenes=str(scenes), out=str(out), **{**options, **overrides})


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A real (tiny) training run: a few steps on toy scenes, exported to ONNX."""
    pytest.importorskip("tensorflow")
    from maskwatch.training.detector.train import train

    root = tmp_path_factory.mktemp("maskface")
    config = tiny_config(_write_toy_scenes(root / "scenes"), root / "run")
    lines: list[str] = []
    onnx_path, losses = train(config, log=lines.append)
    assert onnx_path.is_file() and (root / "run" / "maskface.json").is_file()
    assert all(math.isfinite(v) for v in losses.values()) and "heat" in losses
    assert any(line.startswith("step 4/4") for line in lines)
    return onnx_path


@pytest.mark.slow
def test_onnx_export_matches_keras(trained: Path):
    from maskwatch.inference.onnx_runtime import create_session
    from maskwatch.training.detector.model import build_model

    model = build_model(weights=None, width=8)
    model.load_weights(str(trained.parent / "maskface.weights.h5"))
    image = np.random.default_rng(1).uniform(0, 255, (1, 64, 96, 3)).astype(np.float32)
    expected = model(image, training=False).numpy()
    session = create_session(trained.read_bytes(), threads=1)
    got = session.run(None, {session.get_inputs()[0].name: image})[0]
    assert got.shape == expected.shape == (1, 64 // STRIDE, 96 // STRIDE, HEAD_CHANNELS)
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-4)


@pytest.mark.slow
def test_maskface_loads_by_path_and_by_name(trained: Path, monkeypatch):
    from maskwatch.detectors import create_detector
    from maskwatch.detectors.maskface import ENV_MODEL, MaskFaceDetector

    detector = MaskFaceDetector(model=trained, min_score=0.01)
    assert detector.size == 160  # from the run's metadata
    image = np.zeros((120, 160, 3), np.uint8)
    for d in detector.detect(image):
        assert 0 <= d.box[0] < d.box[2] <= 160 and 0 <= d.box[1] < d.box[3] <= 120
        assert sum(d.class_probabilities.values()) == pytest.approx(1.0, abs=1e-4)
    monkeypatch.setenv(ENV_MODEL, str(trained))
    assert create_detector("maskface", min_score=0.5).name == "maskface"


@pytest.mark.slow
def test_detector_swap_through_the_pipeline(trained: Path, monkeypatch):
    """``--detector maskface`` / ``blazeface-tiled`` reach the pipeline by name."""
    from maskwatch.detectors.maskface import ENV_MODEL
    from maskwatch.pipeline import Detector

    monkeypatch.setenv(ENV_MODEL, str(trained))
    packaged = Path(__file__).resolve().parents[1] / "src" / "maskwatch" / "packaged" / "default"
    if not packaged.is_dir():
        if not Path("/tmp/tmpbundle").is_dir():
            pytest.skip("no classifier bundle in this checkout")
        monkeypatch.setenv("MASKWATCH_MODEL", "/tmp/tmpbundle")
    for name in ("maskface", "blazeface-tiled"):
        pipeline = Detector(detector=name)
        assert pipeline.face_detector.name == name
        assert isinstance(pipeline.detect(np.zeros((120, 160, 3), np.uint8)), list)


@pytest.mark.slow
def test_onnx_export_loads_back_into_keras_for_fine_tuning(trained: Path):
    """``--init``: a fresh model set from the export computes the export's maps, in inference and training mode."""
    from maskwatch.inference.onnx_runtime import create_session
    from maskwatch.training.detector.model import build_model
    from maskwatch.training.detector.onnx_import import load_onnx_weights, onnx_width

    data = trained.read_bytes()
    assert onnx_width(data) == 8
    model = build_model(weights=None, width=8)
    batch = np.random.default_rng(2).uniform(0, 255, (3, 64, 96, 3)).astype(np.float32)
    assert load_onnx_weights(model, data, [batch]) > 20
    session = create_session(data, threads=1)
    expected = session.run(None, {session.get_inputs()[0].name: batch})[0]
    np.testing.assert_allclose(model(batch, training=False).numpy(), expected, atol=1e-3, rtol=1e-3)
    # Batch statistics of the calibration batch are the calibrated ones: training mode starts where the export is.
    np.testing.assert_allclose(model(batch, training=True).numpy(), expected, atol=1e-3, rtol=1e-3)


@pytest.mark.slow
def test_train_from_an_onnx_model_and_its_bad_inputs(trained: Path, tmp_path: Path):
    from maskwatch.errors import InputError
    from maskwatch.training.detector.train import TrainConfig, train

    scenes = trained.parents[1] / "scenes"
    config = TrainConfig(
        scenes=str(scenes),
        face_mask=None,
        backbone_weights="/nonexistent/weights.h5",  # not needed when starting from a model
        out=str(tmp_path / "tuned"),
        steps=2,
        batch=2,
        size=64,
        width=32,  # taken from the model instead
        warmup=1,
        threads=1,
        input_size=160,
        init=str(trained),
    )
    lines: list[str] = []
    onnx_path, losses = train(config, log=lines.append)
    assert onnx_path.is_file() and all(math.isfinite(v) for v in losses.values())
    assert any("using it instead of 32" in line for line in lines)
    assert any(line.startswith(f"started from {trained}") for line in lines)

    with pytest.raises(InputError, match="pick one"):
        train(config, resume=True, log=lines.append)
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    unreadable = "broken.onnx: --init: not a readable ONNX"
    for init, message in ((str(tmp_path / "missing.onnx"), "not found"), (str(broken), unreadable)):
        config.init = init
        with pytest.raises(InputError, match=message):
            train(config, log=lines.append)


@pytest.mark.slow
def test_train_detector_cli_rejects_a_missing_init_model(trained: Path, tmp_path: Path):
    from conftest import assert_one_line_error, run_cli

    scenes = trained.parents[1] / "scenes"
    result = run_cli(
        "train-detector", "--scenes", str(scenes), "--init", str(tmp_path / "x.onnx"), "--out", str(tmp_path)
    )
    assert assert_one_line_error(result, code=2) == f"error: {tmp_path / 'x.onnx'}: --init model not found"
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    result = run_cli("train-detector", "--scenes", str(scenes), "--init", str(broken), "--out", str(tmp_path))
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1
    assert lines[0].startswith(f"error: {broken}: --init: not a readable ONNX model")


@pytest.mark.slow
def test_crowd_samples_paste_many_tiny_faces():
    """--crowd-prob: without scenes a crowd holds only pasted faces, 10–40 of them, 6–28 px wide, none
    overlapping; every face is labelled with a known class."""
    from maskwatch.training.detector.data import CROWD_FACES, CROWD_SIDES, SampleMaker
    from maskwatch.training.detector.targets import LABELS

    crops = {0: [np.full((40, 36, 3), 90, np.uint8)], 1: [np.full((40, 36, 3), 200, np.uint8)]}
    maker = SampleMaker([], crops, size=256, seed=7, mosaic_prob=0.0, crowd_prob=1.0)
    for _ in range(10):
        sample = maker.single(256)
        assert CROWD_FACES[0] * 0.7 <= len(sample.boxes) <= CROWD_FACES[1]
        widths = sample.boxes[:, 2] - sample.boxes[:, 0]
        assert widths.min() >= round(CROWD_SIDES[0]) and widths.max() <= round(CROWD_SIDES[1])
        assert set(sample.labels.tolist()) <= set(LABELS.values())
        for i in range(len(sample.boxes)):
            for j in range(i):
                a, b = sample.boxes[i], sample.boxes[j]
                assert min(a[2], b[2]) <= max(a[0], b[0]) or min(a[3], b[3]) <= max(a[1], b[1])
    assert SampleMaker([], {0: [], 1: []}, crowd_prob=1.0).crowd_prob == 0.0  # no crops: no crowds


def _write_face_mask(root: Path, per_class: int = 2) -> Path:
    """RMFD-named face crops (the names ``load_face_crops`` keeps) for both classes."""
    for cls in ("with_mask", "without_mask"):
        (root / cls).mkdir(parents=True)
        for i in range(per_class):
            cv2.imwrite(str(root / cls / f"0_0_{cls}_{i}.jpg"), np.full((40, 32, 3), 90 + 60 * i, np.uint8))
    return root


@pytest.mark.slow
@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("existing run", "holds a detector run; continue it with --resume or choose another --out"),
        ("out under a file", "cannot create the run folder"),
        ("out is a file", "--out is a file, not a folder"),
        ("garbage weights", "not MobileNetV2 weights (not an HDF5 file)"),
        ("missing weights", "backbone weights not found"),
        ("empty face-mask", "no face crops in with_mask/"),
        ("nothing to resume", "nothing to resume"),
        ("input size under the coarse pass", "--input-size must be over 128 px"),
        ("fold out of range", "--holdout-fold must be 0..2 with --folds 3"),
        ("infinite lr", "--lr must be a positive number, got inf"),
        ("someone's folder", "folder is not empty and holds no detector run"),
    ],
)
def test_train_detector_bad_inputs_fail_in_one_line_before_tensorflow_and_write_nothing(
    tmp_path: Path, case: str, message: str
):
    """One line on stderr (no TensorFlow start-up logs before it), exit 2 or 3, and --out left as it was."""
    pytest.importorskip("tensorflow")
    from conftest import run_cli

    scenes = _write_toy_scenes(tmp_path / "scenes", count=4)
    out = tmp_path / "run"
    options = {"--face-mask": str(_write_face_mask(tmp_path / "fm")), "--backbone-weights": "none"}
    extra: list[str] = []
    if case == "existing run":  # a finished run: its files must survive a repeated command
        out.mkdir()
        for name in ("maskface.weights.h5", "state.json", "maskface.onnx", "maskface.json"):
            (out / name).write_text(f"kept {name}")
    elif case == "out under a file":
        (tmp_path / "plain").write_text("x")
        out = tmp_path / "plain" / "run"
    elif case == "out is a file":
        out.write_text("x")
    elif case == "garbage weights":
        (tmp_path / "garbage.h5").write_bytes(b"not an hdf5!!")
        options["--backbone-weights"] = str(tmp_path / "garbage.h5")
    elif case == "missing weights":
        options["--backbone-weights"] = str(tmp_path / "nope.h5")
    elif case == "empty face-mask":
        (tmp_path / "empty").mkdir()
        options["--face-mask"] = str(tmp_path / "empty")
    elif case == "nothing to resume":
        extra = ["--resume"]
    elif case == "input size under the coarse pass":
        extra = ["--input-size", "128"]
    elif case == "fold out of range":
        extra = ["--holdout-fold", "3"]
    elif case == "infinite lr":
        extra = ["--lr", "inf"]
    elif case == "someone's folder":
        out.mkdir()
        (out / "notes.txt").write_text("not a run")
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    result = run_cli(
        "train-detector",
        "--scenes",
        str(scenes),
        "--out",
        str(out),
        *[x for pair in options.items() for x in pair],
        *["--steps", "2", "--batch", "1", "--size", "64", "--limit-scenes", "2"],
        *["--crops-per-class", "2", "--threads", "1"],
        *extra,
    )
    lines = result.stderr.strip().splitlines()
    assert result.returncode in (2, 3) and len(lines) == 1, result.stderr[-2000:]
    assert lines[0].startswith("error: ") and message in lines[0]
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before
    assert case in ("existing run", "out is a file", "someone's folder") or not out.exists()


@pytest.mark.slow
def test_a_diverging_run_stops_before_saving_broken_weights(tmp_path: Path):
    """A loss that is not finite ends the run with one error; no checkpoint or export of NaN weights is written."""
    pytest.importorskip("tensorflow")
    from maskwatch.errors import ModelError
    from maskwatch.training.detector.train import train

    out = tmp_path / "run"
    config = tiny_config(_write_toy_scenes(tmp_path / "scenes", count=4), out, lr=1e30, steps=6, checkpoint_every=100)
    with pytest.raises(ModelError, match="training diverged: the (loss|weights) (is nan at|are not finite after) step"):
        train(config, log=lambda line: None)
    assert not (out / "maskface.onnx").exists() and not (out / "state.json").exists()
    with pytest.raises(ModelError, match="training diverged: the weights are not finite after step 1"):
        train(tiny_config(config.scenes, tmp_path / "run1", lr=1e39, steps=1), log=lambda line: None)
    assert not (tmp_path / "run1" / "maskface.onnx").exists()  # the last step's update broke them: caught too


def test_leftovers_of_an_unfinished_first_checkpoint_do_not_block_a_new_run(tmp_path: Path):
    from maskwatch.errors import InputError
    from maskwatch.training.detector.train import check_out

    (tmp_path / "partial.maskface.weights.h5").write_bytes(b"left by a crash in the first checkpoint")
    (tmp_path / "state.json.partial").write_text("{")
    check_out(tmp_path, resume=False)  # not refused as someone else's folder
    (tmp_path / "notes.txt").write_text("someone's")
    with pytest.raises(InputError, match="holds no detector run"):
        check_out(tmp_path, resume=False)


@pytest.mark.slow
def test_weights_keras_cannot_load_fail_in_one_line_and_leave_no_run_folder(tmp_path: Path):
    """An HDF5 file that is not the trunk's weights fails inside Keras, after the cheap checks: one ``ModelError``,
    and the --out folder this run made is gone, so the corrected command runs without --resume."""
    pytest.importorskip("tensorflow")
    h5py = pytest.importorskip("h5py")
    from maskwatch.errors import ModelError
    from maskwatch.training.detector.train import TrainConfig, train

    wrong = tmp_path / "wrong.weights.h5"
    with h5py.File(wrong, "w") as f:
        f["x"] = np.zeros(3)
    out = tmp_path / "runs" / "maskface"
    scenes = _write_toy_scenes(tmp_path / "scenes", count=4)
    config = TrainConfig(str(scenes), None, str(wrong), str(out), steps=1, batch=1, size=64, threads=1)
    with pytest.raises(ModelError, match="not MobileNetV2 alpha 0.35 no-top weights"):
        train(config, log=lambda line: None)
    assert not (tmp_path / "runs").exists()


def test_weights_without_state_are_an_unfinished_first_checkpoint(tmp_path):
    """Checkpoints write the weights, then the state: weights alone never recorded a step, so a new run may
    replace them (refusing, with nothing to --resume, would leave the folder stuck); a full run is refused."""
    from maskwatch.errors import InputError
    from maskwatch.training.detector.train import STATE_FILE, WEIGHTS_FILE, check_out

    (tmp_path / WEIGHTS_FILE).write_bytes(b"\x89HDF\r\n\x1a\n")
    check_out(tmp_path, resume=False)
    (tmp_path / STATE_FILE).write_text("{}")
    with pytest.raises(InputError, match="holds a detector run"):
        check_out(tmp_path, resume=False)


@pytest.mark.slow
def test_detector_on_a_keras_network_gives_what_its_onnx_export_gives(trained: Path):
    """Held-out validation runs the model in training through MaskFaceDetector(network=...): it must find what the
    exported ONNX model finds, so validation figures are the shipped model's figures."""
    from maskwatch.detectors.maskface import MaskFaceDetector
    from maskwatch.training.detector.model import build_model

    model = build_model(weights=None, width=8)
    model.load_weights(str(trained.parent / "maskface.weights.h5"))
    image = _toy_image()
    exported = MaskFaceDetector(model=trained, min_score=0.01).detect(image)
    in_training = MaskFaceDetector(
        min_score=0.01, size=160, threshold=0.5, network=lambda t: model(t, training=False).numpy()
    ).detect(image)
    assert len(exported) == len(in_training)
    for a, b in zip(exported, in_training):
        np.testing.assert_allclose(a.box, b.box, atol=1e-2)
        assert a.score == pytest.approx(b.score, abs=1e-3)


def _toy_image() -> np.ndarray:
    rng = np.random.default_rng(7)
    image = rng.integers(0, 80, (120, 160, 3), dtype=np.uint8)
    cv2.ellipse(image, (60, 50), (18, 18), 0, 0, 360, (150, 180, 220), -1)
    return image


def test_face_figures_hand_case():
    """Two photos, one 30-px face each; scores 0.9 (hit), 0.8 (false), 0.3 (hit): the budget of 0.15 false faces
    per image (0.3 in all) stops before the false face, AP is 0.5·1 + 0.5·2/3, conf 0.5 keeps the first two."""
    from maskwatch.data.annotations import GroundTruth
    from maskwatch.evaluation.scene_metrics import ImageResult, Prediction
    from maskwatch.training.detector.validation import face_figures

    face = (0.0, 0.0, 30.0, 30.0)

    def found(box, score):
        return Prediction(box, "face", score, score)

    results = [
        ImageResult(Path("a.jpg"), [GroundTruth("with_mask", face)], [found(face, 0.9)]),
        ImageResult(
            Path("b.jpg"),
            [GroundTruth("without_mask", face)],
            [found((100.0, 100.0, 130.0, 130.0), 0.8), found(face, 0.3)],
        ),
    ]
    figures = face_figures(results)
    assert figures["recall_ge24_at_0.15_fp"] == pytest.approx(0.5)
    assert figures["face_ap"] == pytest.approx(0.5 + 0.5 * 2 / 3)
    assert figures["recall_ge24_at_0.5"] == pytest.approx(0.5)
    assert figures["fp_per_image_at_0.5"] == pytest.approx(0.5)


@pytest.mark.slow
def test_holdout_fold_is_kept_out_of_training_and_validated_at_every_checkpoint(tmp_path: Path):
    """--holdout-fold: the fold's photos never reach the samples, each checkpoint writes a validation line, the
    metadata keeps the last, a resume must name the same fold, and an export-only resume neither repeats the
    last line nor records its own options as the recipe."""
    pytest.importorskip("tensorflow")
    import json

    from maskwatch.errors import InputError
    from maskwatch.training.detector.data import HeldOutFold, load_scenes
    from maskwatch.training.detector.train import TrainConfig, train
    from maskwatch.training.detector.validation import VALIDATION_FILE

    scenes = _write_toy_scenes(tmp_path / "scenes", count=12)  # train half toy0, 2, ..., 10: folds 0 1 2 0 1 2
    assert [scene_fold(f"toy{n}.jpg", 3) for n in range(0, 12, 2)] == [0, 1, 2, 0, 1, 2]
    assert len(load_scenes(scenes, "train")) == 6
    assert len(load_scenes(scenes, "train", held_out=HeldOutFold(0, 3))) == 4
    run = tmp_path / "run"
    config = tiny_config(scenes, run, holdout_fold=0, workers=2)
    lines: list[str] = []
    train(config, log=lines.append)
    assert "2 sample worker processes" in lines
    assert "validation: 2 train-half photos held out, fold 0 of 3" in lines
    assert any(line.startswith("data: 4 train-half scenes") for line in lines)
    curve = [json.loads(line) for line in (run / VALIDATION_FILE).read_text().splitlines()]
    assert [c["step"] for c in curve] == [2, 4]
    for c in curve:
        assert 0.0 <= c["face_ap"] <= 1.0 and c["fp_per_image_at_0.5"] >= 0.0
    meta = json.loads((run / "maskface.json").read_text())
    assert meta["validation"] == {k: v for k, v in curve[-1].items() if k != "step"}
    learnt = [p for p in (scenes / "images").iterdir() if scene_split(p.name) == "train" and scene_fold(p.name, 3)]
    assert len(learnt) == 4 and meta["trained_on_photos"] == photo_digests(learnt)  # never the held-out fold's
    for fold, folds in ((1, 3), (None, 3)):
        other = TrainConfig(**{**config.__dict__, "holdout_fold": fold, "folds": folds, "steps": 6})
        with pytest.raises(InputError, match="started with --holdout-fold 0 --folds 3"):
            train(other, resume=True, log=lines.append)
    with pytest.raises(InputError, match="--holdout-fold must be 0..2"):
        train(TrainConfig(**{**config.__dict__, "holdout_fold": 3, "out": str(tmp_path / "other")}), log=print)
    train(TrainConfig(**{**config.__dict__, "lr": 0.5}), resume=True, log=lines.append)  # only exports
    assert "nothing left to train; exporting the checkpoint" in lines
    assert json.loads((run / "maskface.json").read_text())["config"]["lr"] == config.lr  # the recipe it ran
    assert [json.loads(line)["step"] for line in (run / VALIDATION_FILE).read_text().splitlines()] == [2, 4]


@pytest.mark.slow
def test_batch_feed_thread_is_reproducible_and_workers_draw_their_own_streams(tmp_path: Path):
    """One thread gives exactly SampleMaker's batches (runs stay reproducible); spawned workers each draw from
    their own seed, and closing the feed ends them."""
    from maskwatch.training.detector.data import SampleMaker, load_scenes
    from maskwatch.training.detector.feeding import BatchFeed

    scenes = load_scenes(_write_toy_scenes(tmp_path / "scenes"), "train")
    options = dict(scenes=scenes, crops={0: [], 1: []}, size=64)
    expected = SampleMaker(seed=5, **options).batch(3)
    feed = BatchFeed(options, seed=5, batch=3)
    try:
        images, targets = feed.next()
    finally:
        feed.close()
    assert images.dtype == np.float32
    np.testing.assert_array_equal(images, expected[0])
    np.testing.assert_array_equal(targets, expected[1])

    feed = BatchFeed(options, seed=5, batch=3, workers=2)
    try:
        batches = [feed.next() for _ in range(4)]
    finally:
        feed.close()
    assert all(b[0].shape == (3, 64, 64, 3) and b[0].dtype == np.float32 for b in batches)
    assert len({b[0].tobytes() for b in batches}) == 4  # no two workers repeat each other
    assert not any(p.is_alive() for p in feed.workers)


@pytest.mark.slow
def test_keras_schedule_is_the_learning_rate_curve_from_where_a_run_resumes():
    """The optimiser's schedule (any Keras backend) gives ``learning_rate`` at step + start: warm-up, cosine, floor."""
    pytest.importorskip("keras")
    from maskwatch.training.detector.config import TrainConfig
    from maskwatch.training.detector.loop import learning_rate, warmup_cosine

    config = TrainConfig(steps=1000, warmup=100, lr=2e-3)
    for start in (0, 400):
        schedule = warmup_cosine(config, start)
        for step in (0, 50, 99, 100, 500, 599, 2000):
            expected = learning_rate(step + start, config)
            assert float(schedule(step)) == pytest.approx(expected, rel=1e-5)
    assert learning_rate(999, config) == pytest.approx(2e-3 * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * 899 / 900))))


@pytest.mark.slow
def test_training_runs_on_keras_jax_backend_and_tensorflow_exports_its_checkpoint(tmp_path: Path):
    """Where TensorFlow is missing (a GPU host with JAX only), the loop runs on Keras' JAX backend and leaves a
    checkpoint; ``--resume`` with TensorFlow exports it. Runs only where JAX is installed (not in CI's environment)."""
    pytest.importorskip("jax")
    import importlib.util
    import os
    import subprocess
    import sys

    scenes = _write_toy_scenes(tmp_path / "scenes", count=6)
    common = ["--scenes", str(scenes), "--face-mask", "none", "--backbone-weights", "none", "--steps", "2"]
    common += ["--batch", "2", "--size", "64", "--width", "8", "--input-size", "160", "--out", str(tmp_path / "run")]
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    done = subprocess.run([sys.executable, "-m", "maskwatch", "train-detector", *common], env=env, capture_output=True)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert b"Keras' jax backend" in done.stderr and not (tmp_path / "run" / "maskface.onnx").exists()
    if importlib.util.find_spec("tensorflow") is None:
        return  # the JAX half ran; the export needs TensorFlow (test_train_from_an_onnx_model... covers it there)
    env["KERAS_BACKEND"] = "tensorflow"
    done = subprocess.run(
        [sys.executable, "-m", "maskwatch", "train-detector", *common, "--resume"], env=env, capture_output=True
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert (tmp_path / "run" / "maskface.onnx").is_file()


@pytest.mark.slow
def test_a_dead_worker_pool_is_one_line_not_a_hang():
    """Workers that die (here: an option their SampleMaker refuses) end the feed with a MaskwatchError, which the
    CLI prints as one line, instead of the trainer waiting for a batch forever."""
    from maskwatch.errors import MaskwatchError
    from maskwatch.training.detector.feeding import BatchFeed

    feed = BatchFeed({"scenes": [], "crops": {0: [], 1: []}, "no_such_option": 1}, seed=0, batch=1, workers=1)
    try:
        with pytest.raises(MaskwatchError, match="every sample worker process died"):
            feed.next()
    finally:
        feed.close()


@pytest.mark.slow
def test_export_command_names_every_option_that_shapes_the_model():
    from maskwatch.training.detector.train import TrainConfig, export_command

    config = TrainConfig(steps=3000, width=48, input_size=384, holdout_fold=1, folds=4)
    assert export_command(config, Path("runs/gpu")) == (
        "KERAS_BACKEND=tensorflow maskwatch train-detector --resume --steps 3000 --width 48 --input-size 384 "
        "--holdout-fold 1 --folds 4 --out runs/gpu"
    )
    assert "--holdout-fold" not in export_command(TrainConfig(), Path("r"))
