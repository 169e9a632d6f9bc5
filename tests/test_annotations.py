"""Pascal VOC / COCO parsing, clear errors on malformed files, and the fixed scenes split."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from maskwatch.data.annotations import (
    GroundTruth,
    load_annotations,
    load_coco,
    load_voc,
    load_voc_dir,
    scene_split,
)
from maskwatch.errors import InputError

SCENES = Path(__file__).parents[1].parent / "shared" / "data" / "scenes"

VOC = """<annotation>
    <folder>images</folder>
    <filename>{filename}</filename>
    <size><width>512</width><height>366</height><depth>3</depth></size>
    <object>
        <name>without_mask</name><difficult>0</difficult>
        <bndbox><xmin>79</xmin><ymin>105</ymin><xmax>109</xmax><ymax>142</ymax></bndbox>
    </object>
    <object>
        <name>mask_weared_incorrect</name><difficult>1</difficult>
        <bndbox><xmin>185.5</xmin><ymin>100</ymin><xmax>226</xmax><ymax>144</ymax></bndbox>
    </object>
</annotation>
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_voc_parses_boxes_labels_difficult(tmp_path: Path) -> None:
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "a7.jpg").write_bytes(b"x")
    ann = load_voc(write(tmp_path / "ann" / "a7.xml", VOC.format(filename="a7.jpg")), tmp_path / "img")
    assert ann.image_path == tmp_path / "img" / "a7.jpg"
    assert (ann.width, ann.height) == (512, 366)
    assert ann.objects == [
        GroundTruth("without_mask", (79.0, 105.0, 109.0, 142.0), False),
        GroundTruth("mask_weared_incorrect", (185.5, 100.0, 226.0, 144.0), True),
    ]


def test_voc_falls_back_on_stem_when_suffix_differs(tmp_path: Path) -> None:
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "a7.jpg").write_bytes(b"x")
    ann = load_voc(write(tmp_path / "a7.xml", VOC.format(filename="a7.png")), tmp_path / "img")
    assert ann.image_path.name == "a7.jpg"


def test_voc_dir_natural_order(tmp_path: Path) -> None:
    for n in (10, 2, 1):
        write(tmp_path / f"s{n}.xml", VOC.format(filename=f"s{n}.jpg"))
    names = [a.image_path.name for a in load_voc_dir(tmp_path, tmp_path)]
    assert names == ["s1.jpg", "s2.jpg", "s10.jpg"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("<annotation><object>", "malformed XML"),
        ("<root/>", "not a Pascal VOC annotation"),
        ("<annotation><object><name>x</name></object></annotation>", "missing <bndbox>"),
        (
            "<annotation><object><name>x</name><bndbox><xmin>a</xmin><ymin>0</ymin><xmax>1</xmax>"
            "<ymax>1</ymax></bndbox></object></annotation>",
            "not a number",
        ),
        (
            "<annotation><object><bndbox><xmin>0</xmin><ymin>0</ymin><xmax>1</xmax>"
            "<ymax>1</ymax></bndbox></object></annotation>",
            "missing <name>",
        ),
        (
            "<annotation><object><name>x</name><bndbox><xmin>5</xmin><ymin>0</ymin><xmax>1</xmax>"
            "<ymax>1</ymax></bndbox></object></annotation>",
            "empty box",
        ),
    ],
)
def test_voc_malformed_is_one_line_input_error(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path / "bad.xml", text)
    with pytest.raises(InputError, match=message) as info:
        load_voc(path, tmp_path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def voc_one_box(box: tuple[str, str, str, str], size: tuple[str, str] | None = ("512", "366")) -> str:
    """A VOC file with one ``with_mask`` box, written as the given strings, and an optional <size>."""
    xmin, ymin, xmax, ymax = box
    size_xml = f"<size><width>{size[0]}</width><height>{size[1]}</height></size>" if size else ""
    return (
        f"<annotation><filename>a1.jpg</filename>{size_xml}<object><name>with_mask</name><bndbox>"
        f"<xmin>{xmin}</xmin><ymin>{ymin}</ymin><xmax>{xmax}</xmax><ymax>{ymax}</ymax></bndbox></object></annotation>"
    )


@pytest.mark.parametrize(
    ("box", "size", "message"),
    [
        (("nan", "105", "109", "142"), ("512", "366"), r"object 1: <xmin> is not a finite number \('nan'\)"),
        (("79", "inf", "109", "142"), ("512", "366"), r"object 1: <ymin> is not a finite number \('inf'\)"),
        (("-1e400", "105", "109", "142"), ("512", "366"), r"<xmin> is not a finite number \('-1e400'\)"),
        (("79", "105", "Infinity", "142"), None, r"<xmax> is not a finite number"),
        (("79", "105", "109", "142"), ("nan", "366"), r"<width> is not a finite number \('nan'\)"),
        (("79", "105", "109", "142"), ("512", "inf"), r"<height> is not a finite number"),
        (("79", "105", "109", "142"), ("0.5", "366"), r"<width> must be a positive number of pixels"),
        (("79", "105", "109", "142"), ("512", "-366"), r"<height> must be a positive number of pixels"),
    ],
)
def test_voc_non_finite_or_outside_is_one_line_input_error(
    tmp_path: Path, box: tuple[str, str, str, str], size: tuple[str, str] | None, message: str
) -> None:
    path = write(tmp_path / "a1.xml", voc_one_box(box, size))
    with pytest.raises(InputError, match=message) as info:
        load_voc(path, tmp_path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_voc_box_clipped_to_image_size(tmp_path: Path) -> None:
    # A box a pixel outside (common in real datasets) and a wild xmax are clipped, not refused.
    slightly = load_voc(write(tmp_path / "a1.xml", voc_one_box(("-2", "30", "401", "66"), ("400", "266"))), tmp_path)
    assert slightly.objects[0].box == (0.0, 30.0, 400.0, 66.0)
    huge = load_voc(write(tmp_path / "a2.xml", voc_one_box(("79", "105", "99999", "1e300"))), tmp_path)
    assert huge.objects[0].box == (79.0, 105.0, 512.0, 366.0)
    assert (huge.width, huge.height) == (512, 366)
    # Without <size> the image size is unknown: the box stays as written.
    unsized = load_voc(write(tmp_path / "a3.xml", voc_one_box(("-2", "30", "401", "66"), None)), tmp_path)
    assert unsized.objects[0].box == (-2.0, 30.0, 401.0, 66.0)
    # A size of 0 (LabelImg writes it) also means unknown; a box wholly outside the annotated size says
    # the size is wrong: both keep the box as written, and the whole dataset still loads.
    zero = load_voc(write(tmp_path / "a4.xml", voc_one_box(("-2", "30", "401", "66"), ("0", "0"))), tmp_path)
    assert zero.objects[0].box == (-2.0, 30.0, 401.0, 66.0) and (zero.width, zero.height) == (0, 0)
    outside = load_voc(write(tmp_path / "a5.xml", voc_one_box(("600", "105", "700", "142"))), tmp_path)
    assert outside.objects[0].box == (600.0, 105.0, 700.0, 142.0)


def test_voc_missing_file_and_empty_dir(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        load_voc(tmp_path / "nope.xml", tmp_path)
    with pytest.raises(InputError, match="no Pascal VOC"):
        load_voc_dir(tmp_path, tmp_path)
    with pytest.raises(InputError, match="no such folder"):
        load_voc_dir(tmp_path / "missing", tmp_path)


COCO = {
    "images": [{"id": 1, "file_name": "a.jpg", "width": 100, "height": 80}, {"id": 2, "file_name": "b.jpg"}],
    "categories": [{"id": 3, "name": "with_mask"}, {"id": 4, "name": "without_mask"}],
    "annotations": [
        {"id": 1, "image_id": 1, "category_id": 3, "bbox": [10, 20, 30, 40]},
        {"id": 2, "image_id": 1, "category_id": 4, "bbox": [50, 5, 10, 10], "iscrowd": 1},
    ],
}


def test_coco_parses_xywh_to_xyxy(tmp_path: Path) -> None:
    path = write(tmp_path / "coco.json", json.dumps(COCO))
    images = load_coco(path, tmp_path)
    assert [i.image_path.name for i in images] == ["a.jpg", "b.jpg"]
    assert images[0].objects == [
        GroundTruth("with_mask", (10.0, 20.0, 40.0, 60.0), False),
        GroundTruth("without_mask", (50.0, 5.0, 60.0, 15.0), True),
    ]
    assert images[1].objects == []
    assert load_annotations(path, tmp_path)[0].width == 100


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "malformed JSON"),
        ("[1, 2]", "not a COCO file"),
        (json.dumps({**COCO, "annotations": [{"image_id": 9, "category_id": 3, "bbox": [0, 0, 1, 1]}]}), "unknown"),
        (json.dumps({**COCO, "annotations": [{"image_id": 1, "category_id": 3, "bbox": [0, 0]}]}), "four numbers"),
        (json.dumps({**COCO, "images": [{"id": 1}]}), "malformed image"),
    ],
)
def test_coco_malformed_is_one_line_input_error(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path / "bad.json", text)
    with pytest.raises(InputError, match=message) as info:
        load_coco(path, tmp_path)
    assert "\n" not in str(info.value)


def coco_with(bbox: list, **image: object) -> dict:
    """COCO with one image (512×366 unless overridden) holding one ``with_mask`` box."""
    return {
        "images": [{"id": 1, "file_name": "a1.jpg", "width": 512, "height": 366, **image}],
        "categories": [{"id": 1, "name": "with_mask"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": bbox}],
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (json.dumps(coco_with([float("nan"), 10, 20, 20])), r"annotation 1: bbox \[nan, .*not four finite numbers"),
        (json.dumps(coco_with([10, 10, float("inf"), 20])), r"annotation 1: bbox .*not four finite numbers"),
        (
            '{"images": [{"id": 1, "file_name": "a1.jpg"}], "categories": [{"id": 1, "name": "m"}], '
            '"annotations": [{"image_id": 1, "category_id": 1, "bbox": [1e400, 0, 5, 5]}]}',
            "not four finite numbers",
        ),
        (
            json.dumps(coco_with([1e308, 10, 1e308, 20])),  # x + width overflows to inf
            r"box \[1e\+308, 10.0, inf, 30.0\] has a coordinate that is not a finite number",
        ),
        (json.dumps(coco_with([10, 10, 20, 20], width=float("nan"))), r"image 1: width must be a positive number"),
        (json.dumps(coco_with([10, 10, 20, 20], height=float("inf"))), r"image 1: height must be a positive number"),
        (json.dumps(coco_with([10, 10, 20, 20], width=-3)), r"image 1: width must be a positive number"),
        (json.dumps(coco_with([10, 10, 20, 20], height="tall")), r"image 1: height is not a number \('tall'\)"),
    ],
)
def test_coco_non_finite_or_outside_is_one_line_input_error(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path / "bad.json", text)
    with pytest.raises(InputError, match=message) as info:
        load_coco(path, tmp_path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_coco_box_clipped_to_image_size(tmp_path: Path) -> None:
    path = write(tmp_path / "coco.json", json.dumps(coco_with([10, 10, 1e9, 1e9])))
    assert load_coco(path, tmp_path)[0].objects[0].box == (10.0, 10.0, 512.0, 366.0)
    path = write(tmp_path / "coco.json", json.dumps(coco_with([-1.5, 300, 40, 67])))
    assert load_coco(path, tmp_path)[0].objects[0].box == (0.0, 300.0, 38.5, 366.0)


def test_load_annotations_rejects_unknown_kind(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="expected a folder"):
        load_annotations(write(tmp_path / "a.txt", "x"), tmp_path)


def test_scene_split_even_train_odd_test() -> None:
    assert scene_split("maksssksksss0.jpg") == "train"
    assert scene_split("maksssksksss1.png") == "test"
    assert scene_split(Path("x/maksssksksss424.xml")) == "train"
    assert scene_split("maksssksksss425") == "test"
    with pytest.raises(InputError, match="no image number"):
        scene_split("photo.jpg")


@pytest.mark.skipif(not SCENES.is_dir(), reason=f"shared scenes data not found at {SCENES}")
def test_real_scenes_parse() -> None:
    images = load_voc_dir(SCENES / "annotations", SCENES / "images")
    assert len(images) == 426
    assert all(i.image_path.is_file() for i in images)
    counts: dict[str, int] = {}
    for image in images:
        for obj in image.objects:
            counts[obj.label] = counts.get(obj.label, 0) + 1
    assert counts == {"with_mask": 1609, "without_mask": 388, "mask_weared_incorrect": 55}
    halves = {scene_split(i.image_path.name) for i in images}
    assert halves == {"train", "test"}
