"""``maskwatch export``: int8 copies of a bundle and of a detector that keep parity and run in the pipeline."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import run_cli

from maskwatch.errors import InputError, MaskwatchError, ModelError

pytest.importorskip("onnx")

SIZE = 32


def tiny_bundle(folder: Path) -> Path:
    """A real convolutional classifier (conv → relu → pointwise conv → pool → dense → softmax) with seeded random
    weights, built with onnx.helper: small enough to export in seconds, the same ops as the packaged models."""
    from onnx import TensorProto, helper, numpy_helper

    from maskwatch.inference.bundle import BundleMeta, CropSpec, save_bundle

    rng = np.random.default_rng(0)

    def const(name: str, array: np.ndarray):
        return numpy_helper.from_array(array.astype(np.float32), name)

    graph = helper.make_graph(
        [
            helper.make_node("Transpose", ["pixels"], ["nchw"], perm=[0, 3, 1, 2]),
            helper.make_node("Mul", ["nchw", "scale"], ["x"]),
            helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], strides=[2, 2]),
            helper.make_node("Relu", ["c1"], ["r1"]),
            helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"]),
            helper.make_node("Relu", ["c2"], ["r2"]),
            helper.make_node("GlobalAveragePool", ["r2"], ["pool"]),
            helper.make_node("Flatten", ["pool"], ["flat"]),
            helper.make_node("Gemm", ["flat", "w3", "b3"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
        ],
        "tiny",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["n", SIZE, SIZE, 3])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["n", 2])],
        initializer=[
            const("scale", np.array(1 / 255.0)),
            const("w1", rng.normal(0, 0.5, (8, 3, 3, 3))),
            const("b1", rng.normal(0, 0.1, 8)),
            const("w2", rng.normal(0, 0.5, (8, 8, 1, 1))),
            const("b2", rng.normal(0, 0.1, 8)),
            const("w3", rng.normal(0, 2.0, (8, 2))),
            const("b3", np.zeros(2)),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    meta = BundleMeta(classes=["with_mask", "without_mask"], input_size=SIZE, crop=CropSpec(detector="maskface"))
    return save_bundle(folder, model.SerializeToString(), meta)


def tiny_dataset(root: Path, per_class: int = 15) -> Path:
    """Noise images whose colour leans by class (red: with_mask, blue: without_mask)."""
    rng = np.random.default_rng(1)
    for k, cls in enumerate(("with_mask", "without_mask")):
        (root / cls).mkdir(parents=True)
        for i in range(per_class):
            image = rng.integers(0, 160, (48, 48, 3)).astype(np.uint8)
            image[..., 2 if k == 0 else 0] += 90
            cv2.imwrite(str(root / cls / f"{cls}_{i:02d}.png"), image)
    return root


def tiny_scenes(root: Path, astronaut_bgr: np.ndarray) -> Path:
    """Four annotated photos of the astronaut at different sizes: img0, img2 train half, img1, img3 test half."""
    (root / "images").mkdir(parents=True)
    (root / "annotations").mkdir()
    face = (170, 40, 290, 180)  # her face in the 512 × 512 picture
    for i, side in enumerate((512, 400, 320, 448)):
        image = cv2.resize(astronaut_bgr, (side, side))
        cv2.imwrite(str(root / "images" / f"img{i}.jpg"), image)
        x1, y1, x2, y2 = (round(v * side / 512) for v in face)
        (root / "annotations" / f"img{i}.xml").write_text(
            f"<annotation><filename>img{i}.jpg</filename><size><width>{side}</width><height>{side}</height></size>"
            f"<object><name>without_mask</name><bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin><xmax>{x2}</xmax>"
            f"<ymax>{y2}</ymax></bndbox></object></annotation>",
            encoding="utf-8",
        )
    return root


@pytest.mark.slow
def test_int8_bundle_keeps_parity_and_detect_runs_it(tmp_path: Path, astronaut_bgr: np.ndarray):
    source = tiny_bundle(tmp_path / "tiny")
    data = tiny_dataset(tmp_path / "data")
    out = tmp_path / "tiny-int8"
    result = run_cli(
        "export", str(source), "--format", "onnx-int8", "--out", str(out), "--dataset", str(data),
        "--cache", "none", "--calibration-images", "16", "--rounds", "1",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "accuracy" in result.stdout and "max abs diff" in result.stdout
    meta = json.loads((out / "bundle.json").read_text())
    assert meta["export"]["format"] == "onnx-int8" and meta["export"]["source_bundle"] == str(source)
    assert "train split" in meta["export"]["calibration"]["calibration"]
    report = json.loads((out / "export.json").read_text())
    parity = report["parity"]
    assert parity["n"] >= 2 and parity["max_abs_diff"] < 0.05, parity
    assert report["speed_ms"]["onnx-int8"]["ms_per_crop"] > 0
    assert report["end_to_end_fps"]["onnx-int8"]["fps_1_faces"] > 0

    from maskwatch.inference.classifier import MaskClassifier

    quantised, original = MaskClassifier(out), MaskClassifier(source)
    assert any(node.op_type.startswith("QLinear") for node in _graph(out / "model.onnx").node)
    crops = np.random.default_rng(2).integers(0, 255, (6, SIZE, SIZE, 3)).astype(np.uint8)
    assert np.abs(quantised.predict(crops) - original.predict(crops)).max() < 0.05

    photo = tmp_path / "astronaut.jpg"
    cv2.imwrite(str(photo), astronaut_bgr)
    detected = run_cli("detect", str(photo), "--model", str(out), "--json", "-")
    assert detected.returncode == 0, detected.stderr[-2000:]
    faces = json.loads(detected.stdout.splitlines()[0])["faces"]
    assert len(faces) == 1 and faces[0]["label"] in ("with_mask", "without_mask")
    shown = run_cli("info", "--model", str(out))
    assert shown.returncode == 0, shown.stderr
    assert f"export:onnx-int8of{source}" in "".join(shown.stdout.split())  # Rich wraps long paths anywhere


def _graph(path: Path):
    import onnx

    return onnx.load(str(path)).graph


@pytest.mark.slow
def test_int8_detector_export_finds_the_same_faces_and_runs_by_folder(tmp_path: Path, astronaut_bgr: np.ndarray):
    scenes = tiny_scenes(tmp_path / "scenes", astronaut_bgr)
    out = tmp_path / "maskface-int8"
    result = run_cli(
        "export", "--detector", "maskface", "--format", "onnx-int8", "--out", str(out), "--scenes", str(scenes),
        "--calibration-images", "2", "--rounds", "1",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    meta = json.loads((out / "detector.json").read_text())
    assert meta["detector"] == "maskface" and meta["name"] == "maskface-int8"
    assert meta["export"]["calibration"]["calibration"].startswith("2 photos of the train half")
    parity = json.loads((out / "export.json").read_text())["parity"]
    assert parity["n_photos"] == 2 and parity["face_ap_float"] == 1.0 and parity["face_ap_export"] == 1.0, parity
    assert parity["faces_found_by_one_only_at_0.5"] == 0 and parity["score_max_abs_diff"] < 0.1, parity

    from maskwatch.detectors import create_detector

    detector = create_detector(str(out))
    assert detector.name == "maskface-int8"
    assert len(detector.detect(astronaut_bgr)) == 1
    photo = tmp_path / "astronaut.jpg"
    cv2.imwrite(str(photo), astronaut_bgr)
    detected = run_cli("detect", str(photo), "--detector", str(out), "--json", "-")
    assert detected.returncode == 0, detected.stderr[-2000:]
    assert len(json.loads(detected.stdout.splitlines()[0])["faces"]) == 1


def test_packaged_int8_detector_matches_the_float_one(astronaut_bgr: np.ndarray):
    from maskwatch.detectors import create_detector, detector_names
    from maskwatch.inference.boxes import iou_matrix

    assert "maskface-int8" in detector_names()
    int8, base = create_detector("maskface-int8"), create_detector("maskface")
    assert int8.name == "maskface-int8" and int8.version != base.version  # the crop cache keeps them apart
    found, expected = int8.detect(astronaut_bgr), base.detect(astronaut_bgr)
    assert len(found) == len(expected) == 1
    assert iou_matrix(np.array([found[0].box]), np.array([expected[0].box]))[0, 0] > 0.9
    assert abs(found[0].score - expected[0].score) < 0.05


def test_an_export_whose_float_model_is_gone_is_refused(tmp_path: Path):
    """An export folder replaces one float model by hash: a detector that loads another model would silently run
    in float, so loading says so instead."""
    import shutil
    from importlib import resources

    from maskwatch.detectors import create_detector

    folder = tmp_path / "stale"
    shutil.copytree(Path(str(resources.files("maskwatch.packaged").joinpath("maskface-int8"))), folder)
    meta = json.loads((folder / "detector.json").read_text())
    meta["models"][0]["replaces_sha256"] = "0" * 64
    (folder / "detector.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="no longer loads the model this export was made from"):
        create_detector(str(folder))
    (folder / "detector.json").write_text("{")
    with pytest.raises(ModelError, match="unreadable exported detector"):
        create_detector(str(folder))


def test_bad_export_input_is_one_clear_error(tmp_path: Path):
    from maskwatch.export import export_bundle, export_detector

    data = tiny_dataset(tmp_path / "data", per_class=2)
    with pytest.raises(ModelError, match="model bundle not found"):
        export_bundle(tmp_path / "nothing", "onnx-int8", tmp_path / "out", data)
    with pytest.raises(ModelError, match="model bundle is a folder"):
        export_bundle(data / "with_mask" / "with_mask_00.png", "onnx-int8", tmp_path / "out", data)
    with pytest.raises(InputError, match="unknown export format 'coreml'; choose onnx-int8 or tflite"):
        export_bundle("maskwatch:default", "coreml", tmp_path / "out", data)
    with pytest.raises(InputError, match="calibration dataset not found"):
        export_bundle("maskwatch:default", "onnx-int8", tmp_path / "out", tmp_path / "no-data")
    with pytest.raises(ModelError, match="TFLite export needs the Keras weights of the training run"):
        export_bundle("maskwatch:default", "tflite", tmp_path / "out", data)
    with pytest.raises(InputError, match="calibration photos not found"):
        export_detector("maskface", "onnx-int8", tmp_path / "out", tmp_path / "no-scenes")
    with pytest.raises(ModelError, match="unknown detector 'nope'"):
        export_detector("nope", "onnx-int8", tmp_path / "out", tmp_path / "no-scenes")
    with pytest.raises(InputError, match="tflite export is for classifier bundles"):
        export_detector("maskface", "tflite", tmp_path / "out", tmp_path / "no-scenes")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(InputError, match="folder is not empty"):
        export_bundle("maskwatch:default", "onnx-int8", tmp_path / "full", data)
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"
    assert not (tmp_path / "out").exists()  # no export folder is left behind by a refused export
    assert issubclass(InputError, MaskwatchError)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["export", "no-such-bundle", "--format", "onnx-int8", "--out", "x"], "no-such-bundle: model bundle not found"),
        (["export", "maskwatch:default", "--format", "int4", "--out", "x"], "unknown export format 'int4'"),
    ],
)
def test_export_command_refuses_bad_input_in_one_line(args: list[str], message: str, tmp_path: Path):
    args = [str(tmp_path / a) if a == "x" else a for a in args]
    result = run_cli(*args)
    assert result.returncode != 0
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_tflite_export_of_a_training_run_matches_its_onnx_bundle(tmp_path: Path):
    """The route for TFLite: a ``maskwatch train`` run keeps its Keras weights beside its bundle."""
    pytest.importorskip("tensorflow")
    from dataclasses import asdict

    from maskwatch.export import export_bundle
    from maskwatch.inference.bundle import BundleMeta, CropSpec, save_bundle
    from maskwatch.training.classifier.backbones import backbone_spec
    from maskwatch.training.classifier.export import onnx_bytes as to_onnx
    from maskwatch.training.classifier.model import build_classifier
    from maskwatch.training.classifier.trainer import TrainConfig

    data = tiny_dataset(tmp_path / "data")
    run = tmp_path / "run"
    (run / "checkpoint").mkdir(parents=True)
    config = TrainConfig(str(data), str(run), backbone="smallcnn", weights=None, size=SIZE, cache=str(tmp_path / "c"))
    (run / "config.json").write_text(json.dumps(asdict(config)), encoding="utf-8")
    model = build_classifier(backbone_spec("smallcnn"), SIZE, None, 2).model
    model.predict(np.zeros((1, SIZE, SIZE, 3), np.float32), verbose=0)  # Keras exports only a model once called
    model.save_weights(run / "checkpoint" / "best.weights.h5")
    onnx_bytes = to_onnx(model)
    meta = BundleMeta(classes=["with_mask", "without_mask"], input_size=SIZE, crop=CropSpec(detector="maskface"))
    save_bundle(run / "bundle", onnx_bytes, meta)

    out = tmp_path / "lite"
    report = export_bundle(run / "bundle", "tflite", out, data, cache="none", calibration_images=8, rounds=1)
    assert report["parity"]["max_abs_diff"] < 1e-4 and report["parity"]["class_changed"] == 0, report["parity"]
    assert report["speed_ms"]["tflite"]["ms_per_crop"] > 0
    assert (out / "model.tflite").stat().st_size > 1000
    written = json.loads((out / "bundle.json").read_text())
    assert written["export"]["format"] == "tflite" and written["export"]["source_run"] == str(run)
    assert json.loads((out / "export.json").read_text())["parity"] == report["parity"]


def test_an_export_that_loses_accuracy_is_named():
    from maskwatch.cli.export import accuracy_loss

    assert accuracy_loss({"face_ap_float": 0.534, "face_ap_export": 0.115}) == "face ap 0.534 → 0.115"
    assert accuracy_loss({"accuracy_float": 0.99, "accuracy_export": 0.986}) is None  # within half a point
    assert accuracy_loss({"accuracy_float": 0.99, "accuracy_export": 0.98}) == "accuracy 0.990 → 0.980"
