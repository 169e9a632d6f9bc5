"""``maskwatch evaluate-scenes`` end to end on a few real scene photos, and its one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import maskwatch.cli.scenes  # noqa: F401  (registers the command even before cli/__init__ lists it)
from maskwatch.cli import app
from maskwatch.cli.scenes import parse_class_map, resolve_class_map
from maskwatch.errors import InputError
from maskwatch.settings import CURVE_CONF, DEFAULT_CONF

SCENES = Path(__file__).parents[1].parent / "shared" / "data" / "scenes"
CLASSES = ["incorrect_mask", "with_mask", "without_mask"]


def make_bundle(folder: Path) -> Path:
    """A real (if naive) ONNX classifier: mean colour of the crop → linear → softmax.

    Built with onnx.helper so the test needs no TensorFlow; it exercises the whole
    pipeline (detector, crops, batched ONNX Runtime call) for real.
    """
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    from maskwatch.inference.bundle import BundleMeta, save_bundle

    weights = numpy_helper.from_array(
        np.array([[0.01, 0.02, -0.03], [0.02, -0.01, 0.0], [-0.02, 0.0, 0.03]], np.float32), "w"
    )
    bias = numpy_helper.from_array(np.zeros(3, np.float32), "b")
    axes = numpy_helper.from_array(np.array([1, 2], np.int64), "axes")
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["x", "axes"], ["m"], keepdims=0),
            helper.make_node("MatMul", ["m", "w"], ["l"]),
            helper.make_node("Add", ["l", "b"], ["z"]),
            helper.make_node("Softmax", ["z"], ["y"], axis=-1),
        ],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 64, 64, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3])],
        [weights, bias, axes],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return save_bundle(folder, model.SerializeToString(), BundleMeta(classes=CLASSES, input_size=64))


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_bundle(tmp_path_factory.mktemp("bundle"))


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Three test-half photos with their annotations, copied to a temporary folder."""
    if not SCENES.is_dir():
        pytest.skip(f"shared scenes data not found at {SCENES}")
    root = tmp_path_factory.mktemp("scenes")
    (root / "images").mkdir()
    (root / "annotations").mkdir()
    for n in (1, 9, 13):
        name = f"maksssksksss{n}"
        (root / "images" / f"{name}.jpg").write_bytes((SCENES / "images" / f"{name}.jpg").read_bytes())
        (root / "annotations" / f"{name}.xml").write_bytes((SCENES / "annotations" / f"{name}.xml").read_bytes())
    return root / "images", root / "annotations"


@pytest.mark.slow  # two pipeline runs (operating point and PR curve) over three photos
def test_end_to_end(bundle: Path, scenes: tuple[Path, Path], tmp_path: Path) -> None:
    images, annotations = scenes
    out = tmp_path / "report"
    result = CliRunner().invoke(
        app,
        [
            "evaluate-scenes",
            str(images),
            str(annotations),
            "--model",
            str(bundle),
            "--out",
            str(out),
            "--split",
            "test",
            "--map-classes",
            "with_mask,without_mask",
            "--worst",
            "2",
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads((out / "scene_report.json").read_text())
    assert data["images"] == 3 and data["faces"] > 0
    assert data["settings"]["class_map"] == {"mask_weared_incorrect": "incorrect_mask"}
    assert (data["settings"]["conf"], data["settings"]["curve_conf"]) == (DEFAULT_CONF, CURVE_CONF)
    m = data["metrics"]["iou_0.5"]
    # AP from the lower-threshold run: its curve holds at least the user's detections
    assert m["face_detection"]["curve_n_pred"] >= m["face_detection"]["n_pred"]
    # The real detector finds faces in these photos; the figures are real numbers in range.
    assert 0.0 < m["face_detection"]["recall"] <= 1.0
    assert 0.0 <= m["mAP_selected"]["mAP"] <= 1.0
    assert m["mAP_selected"]["classes"] == ["with_mask", "without_mask"]
    assert data["metrics"]["iou_0.3"]["face_detection"]["recall"] >= m["face_detection"]["recall"]
    confusion = np.array(m["confusion"]["matrix"])
    gt_rows = confusion[:-1].sum()  # every non-difficult face is in exactly one cell of its row
    assert gt_rows == data["faces"]
    lines = (out / "scene_images.jsonl").read_text().splitlines()
    assert len(lines) == 3
    assert (out / "pr_curves.png").read_bytes()[:4] == b"\x89PNG"
    page = (out / "scene_report.html").read_text()
    assert "mAP" in page and "pr_curves.png" in page
    drawn = sorted((out / "worst").glob("*.jpg"))
    assert 1 <= len(drawn) <= 2 and drawn[0].name in page


@pytest.mark.slow  # one pipeline run over one photo
def test_a_model_scored_on_its_own_training_photos_is_named(scenes: tuple[Path, Path], tmp_path: Path) -> None:
    """The packaged bundle learnt from both halves of the shared scenes, maskface from the train half only."""
    images, annotations = scenes
    out = tmp_path / "report"
    args = ["evaluate-scenes", str(images), str(annotations), "--limit", "1", "--curve-conf", "0.5", "-o", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "warning: models learnt from these photos (maskwatch:default from 1 of 1)" in result.output
    assert json.loads((out / "scene_report.json").read_text())["models_trained_on_these_photos"] == {
        "maskwatch:default": 1
    }
    assert "Not a result" in (out / "scene_report.html").read_text()
    again = CliRunner().invoke(app, [*args, "--model", "maskwatch:scenes"])  # trained on the train half only
    assert again.exit_code == 0, again.output
    assert "learnt from these photos" not in again.output


def test_bad_annotations_exit_with_one_line(bundle: Path, tmp_path: Path) -> None:
    (tmp_path / "img").mkdir()
    (tmp_path / "ann").mkdir()
    (tmp_path / "ann" / "a1.xml").write_text("<annotation><object>", encoding="utf-8")
    runner = CliRunner()
    result = runner.invoke(app, ["evaluate-scenes", str(tmp_path / "img"), str(tmp_path / "ann"), "-m", str(bundle)])
    assert result.exit_code != 0
    assert isinstance(result.exception, InputError) and "malformed XML" in str(result.exception)
    result = runner.invoke(app, ["evaluate-scenes", str(tmp_path / "nope"), str(tmp_path / "ann")])
    assert isinstance(result.exception, InputError) and "no such folder" in str(result.exception)


@pytest.mark.slow
def test_main_prints_one_line_error(tmp_path: Path) -> None:
    import subprocess
    import sys

    (tmp_path / "ann.json").write_text("{broken", encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-c", _MAIN],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert "malformed JSON" in proc.stderr and "Traceback" not in proc.stderr


_MAIN = """
import sys
sys.argv = ["maskwatch", "evaluate-scenes", ".", "ann.json"]
import maskwatch.cli.scenes
from maskwatch.cli import main
main()
"""


def test_class_map_parsing(tmp_path: Path) -> None:
    assert parse_class_map("a=b, c=-") == {"a": "b", "c": "-"}
    assert parse_class_map(None) == {}
    path = tmp_path / "map.json"
    path.write_text('{"mask_weared_incorrect": "incorrect_mask"}', encoding="utf-8")
    assert parse_class_map(str(path)) == {"mask_weared_incorrect": "incorrect_mask"}
    with pytest.raises(InputError, match="not DATASET_NAME=BUNDLE_NAME"):
        parse_class_map("a=b,c")
    path.write_text("[1]", encoding="utf-8")
    with pytest.raises(InputError, match="JSON object"):
        parse_class_map(str(path))
    path.write_bytes(b"\xff\xfe{")
    with pytest.raises(InputError, match="--class-map .*cannot read"):
        parse_class_map(str(path))
    (tmp_path / "folder.json").mkdir()
    with pytest.raises(InputError, match="--class-map .*cannot read"):
        parse_class_map(str(tmp_path / "folder.json"))
    assert resolve_class_map({}, {"mask_weared_incorrect", "with_mask"}, CLASSES) == {
        "mask_weared_incorrect": "incorrect_mask"
    }
    # No alias to a class the bundle lacks: the gap shows as AP 0 rather than being hidden.
    assert resolve_class_map({}, {"mask_weared_incorrect"}, ["with_mask", "without_mask"]) == {}
    assert resolve_class_map({"x": "with_mask"}, {"x"}, CLASSES) == {"x": "with_mask"}


def tiny_scene(root: Path) -> tuple[Path, Path]:
    """One annotated photo (a flat grey JPEG, so no face is found) in images/ and annotations/."""
    import cv2

    (root / "images").mkdir(parents=True)
    (root / "annotations").mkdir()
    cv2.imwrite(str(root / "images" / "a1.jpg"), np.full((64, 96, 3), 128, np.uint8))
    (root / "annotations" / "a1.xml").write_text(
        "<annotation><filename>a1.jpg</filename><size><width>96</width><height>64</height></size>"
        "<object><name>mask_weared_incorrect</name><bndbox><xmin>10</xmin><ymin>10</ymin><xmax>40</xmax>"
        "<ymax>40</ymax></bndbox></object></annotation>",
        encoding="utf-8",
    )
    return root / "images", root / "annotations"


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--map-classes", "with_mask,nosuch"),
        ("--class-map", "mask_weared_incorrect=nosuch"),
        ("--class-map", "nosuch=with_mask"),
    ],
)
def test_unknown_class_is_one_line_error(bundle: Path, tmp_path: Path, option: str, value: str) -> None:
    images, annotations = tiny_scene(tmp_path)
    out = tmp_path / "report"
    args = ["evaluate-scenes", str(images), str(annotations), "-m", str(bundle), "-o", str(out), option, value]
    result = CliRunner().invoke(app, args)
    assert result.exit_code != 0
    assert isinstance(result.exception, InputError), result.output
    message = str(result.exception)
    assert "\n" not in message
    assert message.startswith(f"{option}: ") and "'nosuch'" in message
    if value.startswith("nosuch"):  # a dataset class the annotations never use: their classes are named
        assert message.endswith("the annotations have no class 'nosuch' (their classes: mask_weared_incorrect)")
    else:
        assert "incorrect_mask, with_mask, without_mask" in message
    assert not out.exists()  # refused before anything was evaluated or written


@pytest.mark.slow
def test_class_map_ignore_target_stays_valid(bundle: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"--class-map: the model has no class 'nosuch' \(its classes: "):
        resolve_class_map({"a": "nosuch"}, {"a"}, CLASSES)
    assert resolve_class_map({"a": "-", "b": "with_mask"}, {"a", "b"}, CLASSES) == {"a": "-", "b": "with_mask"}
    images, annotations = tiny_scene(tmp_path)
    out = tmp_path / "report"
    args = ["evaluate-scenes", str(images), str(annotations), "-m", str(bundle), "-o", str(out)]
    result = CliRunner().invoke(app, [*args, "--class-map", "mask_weared_incorrect=-", "--worst", "0"])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "scene_report.json").read_text())["faces"] == 0  # the ignored face is difficult


@pytest.mark.slow
def test_rerun_removes_stale_worst_images_only(tmp_path: Path) -> None:
    from maskwatch.data.annotations import AnnotatedImage, GroundTruth
    from maskwatch.evaluation.scene_report import write_report
    from maskwatch.evaluation.scene_run import evaluate_scenes

    class NoFaces:
        def detect(self, image_bgr: np.ndarray, *, photo: bool = False) -> list:
            return []

    def read(path: Path) -> np.ndarray:
        return np.full((40, 60, 3), 100, np.uint8)

    images = [
        AnnotatedImage(tmp_path / f"s{n}.jpg", 60, 40, [GroundTruth("with_mask", (5.0, 5.0, 25.0, 25.0))] * n)
        for n in (1, 3, 2)
    ]
    report = evaluate_scenes(images, NoFaces(), classes=CLASSES, read=read)
    out = tmp_path / "report"
    write_report(report, out, worst=3, read=read)
    worst = out / "worst"
    assert sorted(p.name for p in worst.glob("*.jpg")) == ["01_s3.jpg", "02_s2.jpg", "03_s1.jpg"]
    # Files the writer did not draw are the user's and stay, even when named like its own (a camera's
    # "20240101_holiday.jpg").
    for name in ("notes.txt", "keep.jpg", "1_single_digit.jpg", "01_other.png", "20240101_holiday.jpg"):
        (worst / name).write_bytes(b"mine")
    (worst / "07_subfolder.jpg").mkdir()

    write_report(report, out, worst=1, read=read)
    page = (out / "scene_report.html").read_text()
    assert "worst/01_s3.jpg" in page and "02_s2.jpg" not in page
    kept = sorted(p.name for p in worst.iterdir() if not p.name.startswith("."))
    mine = ["01_other.png", "07_subfolder.jpg", "1_single_digit.jpg", "20240101_holiday.jpg", "keep.jpg", "notes.txt"]
    assert kept == sorted(["01_s3.jpg", *mine])

    write_report(report, out, worst=0, read=read)
    assert sorted(p.name for p in worst.iterdir() if not p.name.startswith(".")) == mine
