"""Box-annotated photos (Pascal VOC XML, COCO JSON) for scene-level evaluation and training crops.

Both formats load into the same ``AnnotatedImage`` so the metrics never care
where boxes came from. Anything malformed raises a one-line ``InputError``
naming the file, so a bad dataset never ends in a traceback.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from maskwatch.errors import InputError
from maskwatch.media.files import read_json_input

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class GroundTruth:
    """One annotated face: its class name as the dataset spells it, box (x1, y1, x2, y2) and VOC difficult flag."""

    label: str
    box: Box
    difficult: bool = False


@dataclass
class AnnotatedImage:
    """A photo and every face boxed in it."""

    image_path: Path
    width: int
    height: int
    objects: list[GroundTruth] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.image_path.name


def _text(node: ET.Element, tag: str, where: str, required: bool = True) -> str | None:
    child = node.find(tag)
    if child is None or child.text is None or not child.text.strip():
        if required:
            raise InputError(f"{where}: missing <{tag}>")
        return None
    return child.text.strip()


def _number(node: ET.Element, tag: str, where: str) -> float:
    value = _text(node, tag, where)
    try:
        number = float(value)  # type: ignore[arg-type]
    except ValueError:
        raise InputError(f"{where}: <{tag}> is not a number ({value!r})") from None
    if not math.isfinite(number):
        raise InputError(f"{where}: <{tag}> is not a finite number ({value!r})")
    return number


def _image_size(value: float, name: str, where: str) -> int:
    """An image width or height: 0 means unknown (LabelImg and other tools write 0), else at least one pixel."""
    if not math.isfinite(value) or value < 0 or 0 < value < 1:
        raise InputError(f"{where}: {name} must be a positive number of pixels, or 0 for unknown ({value!r})")
    return int(value)


def _check_box(box: Box, where: str, width: int = 0, height: int = 0) -> Box:
    """A non-empty box of finite numbers, clipped to the image when its size is known (``width``/``height`` > 0).

    Boxes a pixel or two outside the image are common in real datasets, so they are
    clipped rather than refused. A box with nothing inside the annotated size says the size
    is wrong, not the box: it is kept as it is (crops and matching use the decoded photo).
    """
    if not all(math.isfinite(v) for v in box):
        raise InputError(f"{where}: box {list(box)} has a coordinate that is not a finite number")
    x1, y1, x2, y2 = box
    if x2 <= x1 or y2 <= y1:
        raise InputError(f"{where}: empty box {list(box)} (x2 <= x1 or y2 <= y1)")
    if width > 0 and height > 0:
        w, h = float(width), float(height)
        clipped = (min(max(x1, 0.0), w), min(max(y1, 0.0), h), min(max(x2, 0.0), w), min(max(y2, 0.0), h))
        if clipped[2] <= clipped[0] or clipped[3] <= clipped[1]:
            return box
        return clipped
    return box


def load_voc(xml_path: str | Path, images_dir: str | Path) -> AnnotatedImage:
    """One Pascal VOC XML file; the image is ``images_dir/<filename>`` (else the XML's stem with any image suffix)."""
    xml_path, images_dir = Path(xml_path), Path(images_dir)
    try:
        root = ET.parse(xml_path).getroot()
    except FileNotFoundError:
        raise InputError(f"{xml_path}: no such file") from None
    except ET.ParseError as exc:
        raise InputError(f"{xml_path}: malformed XML ({exc})") from None
    except OSError as exc:
        raise InputError(f"{xml_path}: cannot read ({exc.strerror})") from None
    if root.tag != "annotation":
        raise InputError(f"{xml_path}: not a Pascal VOC annotation (root element is <{root.tag}>)")
    where = str(xml_path)
    filename = _text(root, "filename", where, required=False)
    image_path = _find_image(images_dir, filename, xml_path.stem)
    size = root.find("size")
    width = height = 0
    if size is not None:
        width = _image_size(_number(size, "width", where), "<width>", where)
        height = _image_size(_number(size, "height", where), "<height>", where)
    objects = []
    for i, obj in enumerate(root.findall("object")):
        at = f"{where}: object {i + 1}"
        label = _text(obj, "name", at)
        bnd = obj.find("bndbox")
        if bnd is None:
            raise InputError(f"{at}: missing <bndbox>")
        box = tuple(_number(bnd, tag, at) for tag in ("xmin", "ymin", "xmax", "ymax"))
        difficult = (_text(obj, "difficult", at, required=False) or "0") not in ("0", "false", "False")
        box = _check_box(box, at, width, height)  # type: ignore[arg-type]
        objects.append(GroundTruth(label=str(label), box=box, difficult=difficult))
    return AnnotatedImage(image_path=image_path, width=width, height=height, objects=objects)


_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".JPG", ".JPEG", ".PNG")


def _find_image(images_dir: Path, filename: str | None, stem: str) -> Path:
    """The image an annotation names; falls back on the annotation's stem (datasets often rename PNG → JPG)."""
    if filename:
        candidate = images_dir / Path(filename).name
        if candidate.is_file():
            return candidate
    for base in ([Path(filename).stem] if filename else []) + [stem]:
        for suffix in _IMAGE_SUFFIXES:
            candidate = images_dir / f"{base}{suffix}"
            if candidate.is_file():
                return candidate
    # Not found: keep the named path; evaluation reports the missing image in one line.
    return images_dir / (Path(filename).name if filename else f"{stem}.jpg")


def load_voc_dir(annotations_dir: str | Path, images_dir: str | Path) -> list[AnnotatedImage]:
    """Every ``*.xml`` in a folder, in natural order of their names (img2 before img10)."""
    annotations_dir = Path(annotations_dir)
    if not annotations_dir.is_dir():
        raise InputError(f"{annotations_dir}: no such folder")
    files = sorted(annotations_dir.glob("*.xml"), key=lambda p: natural_key(p.name))
    if not files:
        raise InputError(f"{annotations_dir}: no Pascal VOC .xml files")
    return [load_voc(f, images_dir) for f in files]


def load_coco(json_path: str | Path, images_dir: str | Path) -> list[AnnotatedImage]:
    """A COCO detection JSON (images, annotations with ``bbox`` = x, y, w, h, categories)."""
    json_path, images_dir = Path(json_path), Path(images_dir)
    data = read_json_input(json_path)
    where = str(json_path)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise InputError(f"{where}: not a COCO file (no 'images' list)")
    annotations = data.get("annotations", [])
    categories = data.get("categories", [])
    if not isinstance(annotations, list) or not isinstance(categories, list):
        raise InputError(f"{where}: 'annotations' and 'categories' must be lists")
    try:
        names = {c["id"]: str(c["name"]) for c in categories}
        images: dict[Any, AnnotatedImage] = {}
        for k, img in enumerate(data["images"]):
            at = f"{where}: image {k + 1}"
            images[img["id"]] = AnnotatedImage(
                image_path=_find_image(images_dir, str(img["file_name"]), Path(str(img["file_name"])).stem),
                width=_coco_size(img, "width", at),
                height=_coco_size(img, "height", at),
            )
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{where}: malformed image or category entry ({type(exc).__name__}: {exc})") from None
    for i, ann in enumerate(annotations):
        at = f"{where}: annotation {i + 1}"
        try:
            image = images[ann["image_id"]]
            label = names[ann["category_id"]]
            x, y, w, h = (float(v) for v in ann["bbox"])
        except KeyError as exc:
            raise InputError(f"{at}: missing or unknown {exc}") from None
        except (TypeError, ValueError):
            raise InputError(f"{at}: bbox must be four numbers [x, y, width, height]") from None
        if not all(math.isfinite(v) for v in (x, y, w, h)):
            raise InputError(f"{at}: bbox {[x, y, w, h]} is not four finite numbers [x, y, width, height]")
        difficult = bool(ann.get("iscrowd", 0)) or bool(ann.get("ignore", 0))
        box = _check_box((x, y, x + w, y + h), at, image.width, image.height)
        image.objects.append(GroundTruth(label=label, box=box, difficult=difficult))
    return list(images.values())


def _coco_size(img: dict[str, Any], key: str, at: str) -> int:
    """A COCO image's ``width``/``height``: 0 when absent (size unknown), else a positive number of pixels."""
    if key not in img:
        return 0
    value = img[key]
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{at}: {key} is not a number ({value!r})") from None
    return _image_size(number, key, at)


def load_annotations(annotations: str | Path, images_dir: str | Path) -> list[AnnotatedImage]:
    """A folder of VOC XML, one VOC XML file, or a COCO JSON file."""
    path = Path(annotations)
    if path.is_dir():
        return load_voc_dir(path, images_dir)
    if path.suffix.lower() == ".json":
        return load_coco(path, images_dir)
    if path.suffix.lower() == ".xml":
        return [load_voc(path, images_dir)]
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    raise InputError(f"{path}: expected a folder of VOC .xml files, a .xml file or a COCO .json file")


def natural_key(name: str) -> list[int | str]:
    """Sort key that orders embedded numbers numerically."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def image_number(name: str) -> int:
    """The last number in a file name (``maksssksksss17.jpg`` → 17)."""
    numbers = re.findall(r"\d+", Path(name).stem)
    if not numbers:
        raise InputError(f"{name}: no image number in the name; cannot assign it to a split")
    return int(numbers[-1])


def scene_split(image_name: str | Path) -> Literal["train", "test"]:
    """The team's fixed split of the scenes data: even image number → train, odd → test.

    Fixed by name (not random) so that crops cut for training and images used to
    report scene metrics can never overlap, whoever runs which tool.
    """
    return "train" if image_number(Path(image_name).name) % 2 == 0 else "test"


def scene_fold(image_name: str | Path, folds: int) -> int:
    """The fold of a train-half photo (or of a face crop ``<photo>__box-NN``) for held-out validation.

    Train-half photos have even numbers, so consecutive ones go to consecutive folds; like the split,
    fixed by name so every tool holds out the same photos.
    """
    return (image_number(Path(image_name).name.split("__")[0]) // 2) % folds


def select_split(images: list[AnnotatedImage], split: str) -> list[AnnotatedImage]:
    """The images of one half of the fixed split (``train``/``test``), or all; a bad name is a one-line error."""
    if split not in ("all", "train", "test"):
        raise InputError(f"--split {split!r}: choose all, train or test")
    return images if split == "all" else [i for i in images if scene_split(i.image_path.name) == split]


__all__ = [
    "AnnotatedImage",
    "GroundTruth",
    "image_number",
    "load_annotations",
    "load_coco",
    "load_voc",
    "load_voc_dir",
    "natural_key",
    "scene_split",
    "select_split",
]
