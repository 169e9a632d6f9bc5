"""Build a labelled face dataset from cameras, videos, streams and photo folders.

Each face is found with the same detector and cut with the same ``crop_face`` as
training and inference, then stored as ``DATASET/LABEL/<run>-<seq>.jpg``:
a ``STORED_SIZE`` px square that already includes the ``DEFAULT_MARGIN`` context,
so when training re-detects the face in it and crops again, it gets (almost)
the same pixels. Files are written to a temporary name and hard-linked into
place, so a crash or Ctrl-C never leaves a half-written picture and an existing
file is never overwritten.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from maskwatch.data.dataset import hamming, phash
from maskwatch.data.provenance import append_crop_records, photo_digest
from maskwatch.errors import InputError
from maskwatch.faces import Detection
from maskwatch.inference.crops import DEFAULT_MARGIN, crop_face
from maskwatch.media.files import prepare_output_folder
from maskwatch.media.imageio import make_public

STORED_SIZE = 224
"""Side of the stored crops in pixels: enough for any classifier input we train (≤ 224)."""
DEFAULT_DEDUPE_BITS = 4
"""A crop whose 64-bit perceptual hash differs from a recently saved crop's in at most this many bits is a
near-duplicate and is skipped (a still face in a still frame differs by 0–2 bits; a turned head by 10+)."""
RECENT_CROPS = 8
"""How many recently saved crops a new one is compared with: the previous one of each face in a small group."""
JPEG_QUALITY = 95


def validate_label(label: str) -> str:
    """The class name if it is safe as a single folder name, else a one-line ``InputError``."""
    if not label or not label.strip():
        raise InputError("label must not be empty")
    bad = [ch for ch in ("/", "\\", "\0") if ch in label]
    if os.altsep and os.altsep in label:
        bad.append(os.altsep)
    if bad:
        raise InputError(f"label {label!r} must be a plain folder name (no path separators)")
    if label.startswith(".") or ".." in label:
        raise InputError(f"label {label!r} must not start with a dot or contain '..'")
    return label


def prepare_output(out_dir: Path, label: str) -> Path:
    """Create ``out_dir/label`` and prove it is writable before any frame is read."""
    return prepare_output_folder(Path(out_dir) / validate_label(label))


def write_new_image(path: Path, image_bgr: np.ndarray, quality: int = JPEG_QUALITY) -> bool:
    """Write ``path`` atomically only if it does not exist yet; False when the name is taken.

    Encodes to a temporary file in the same folder, then hard-links it to the final
    name (which fails instead of overwriting) and removes the temporary name.
    """
    ok, data = cv2.imencode(".jpg", image_bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise InputError(f"{path}: cannot encode image")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.tobytes())
            make_public(fh.fileno())
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        except OSError:  # no hard links on this file system: check, then rename
            if path.exists():
                return False
            os.replace(tmp, path)
        return True
    except OSError as exc:
        if isinstance(exc, FileExistsError):
            return False
        raise InputError(f"{path}: cannot write ({exc.strerror or exc})") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def perceptual_hash(crop_rgb: np.ndarray) -> str:
    """The 64-bit pHash of a crop (as ``maskwatch.data.dataset`` uses for near-duplicate groups)."""
    return phash(Image.fromarray(crop_rgb))


@dataclass
class CollectSummary:
    """What a collect run did; ``saved`` lists every file it wrote, in order."""

    out_dir: Path
    label: str
    saved: list[Path] = field(default_factory=list)
    frames: int = 0
    frames_processed: int = 0
    faces: int = 0
    too_small: int = 0
    duplicates: int = 0
    failed_sources: list[str] = field(default_factory=list)
    interrupted: bool = False
    seconds: float = 0.0


FrameCallback = Callable[[object, np.ndarray, list[Detection], list[Detection], CollectSummary], None]
"""Called after each processed frame with (source, frame BGR, faces found, faces saved, summary so far)."""


def collect_faces(
    sources: Iterable,
    out_dir: str | Path,
    label: str,
    count: int | None = None,
    every: int = 1,
    min_face: int = 40,
    detector=None,
    size: int = STORED_SIZE,
    margin: float = DEFAULT_MARGIN,
    dedupe_bits: int | None = DEFAULT_DEDUPE_BITS,
    on_frame: FrameCallback | None = None,
) -> CollectSummary:
    """Detect faces in every ``every``-th frame of ``sources`` and save crops to ``out_dir/label``.

    Stops after ``count`` saved faces (all if None). A source that cannot be read is
    recorded in ``failed_sources`` and the run goes on; Ctrl-C ends the run with
    ``interrupted`` set and every file already saved intact.
    """
    if every < 1:
        raise InputError("--every must be at least 1")
    if count is not None and count < 1:
        raise InputError("--count must be at least 1")
    target = prepare_output(Path(out_dir), label)
    if detector is None:
        from maskwatch.detectors import DEFAULT_DETECTOR, create_detector

        detector = create_detector(DEFAULT_DETECTOR)
    summary = CollectSummary(out_dir=Path(out_dir), label=label)
    run = time.strftime("%Y%m%d-%H%M%S")
    sequence = 0
    recent: deque[str] = deque(maxlen=RECENT_CROPS)
    start = time.monotonic()
    try:
        for source in sources:
            if count is not None and len(summary.saved) >= count:
                break
            try:
                for frame in source.frames():
                    summary.frames += 1
                    if frame.index % every:
                        continue
                    summary.frames_processed += 1
                    kept: list[Detection] = []
                    found = detector.detect(frame.image)
                    for detection in found:
                        if count is not None and len(summary.saved) >= count:
                            break
                        x1, y1, x2, y2 = detection.box
                        summary.faces += 1
                        if min(x2 - x1, y2 - y1) < min_face:
                            summary.too_small += 1
                            continue
                        crop = crop_face(frame.image, detection.box, size, margin)
                        thumb = perceptual_hash(crop)
                        if dedupe_bits is not None and any(hamming(thumb, old) <= dedupe_bits for old in recent):
                            summary.duplicates += 1
                            continue
                        bgr = cv2.cvtColor(crop, cv2.COLOR_RGB2BGR)
                        while True:
                            sequence += 1
                            path = target / f"{run}-{sequence:06d}.jpg"
                            if not path.exists() and write_new_image(path, bgr):
                                break
                        recent.append(thumb)
                        summary.saved.append(path)
                        kept.append(detection)
                    if on_frame is not None:
                        on_frame(source, frame.image, found, kept, summary)
                    if count is not None and len(summary.saved) >= count:
                        break
            except InputError as exc:
                summary.failed_sources.append(str(exc))
    except KeyboardInterrupt:
        summary.interrupted = True
    summary.seconds = time.monotonic() - start
    return summary


BOX_CROP_SUFFIX = "__box-{index:02d}"
"""Crops from box-annotated photos are named ``<photo stem>__box-NN.jpg``: ``maskwatch.data.dataset`` keeps every
face of one photo on the same side of a split, and per-source reports can tell them apart."""


@dataclass
class BoxCropSummary:
    """What a collect-boxes run did: files written per class, and what it left out and why."""

    out_dir: Path
    saved: dict[str, list[Path]] = field(default_factory=dict)
    existing: int = 0
    too_small: int = 0
    difficult: int = 0
    ignored_classes: dict[str, int] = field(default_factory=dict)
    unreadable: list[str] = field(default_factory=list)


def collect_boxes(
    images: Iterable,
    out_dir: str | Path,
    class_map: dict[str, str] | None = None,
    min_face: int = 8,
    size: int = STORED_SIZE,
    margin: float = DEFAULT_MARGIN,
    keep_difficult: bool = False,
) -> BoxCropSummary:
    """Cut every annotated face of ``images`` (``AnnotatedImage``) into ``out_dir/<class>/`` like ``collect`` does.

    The annotation's box replaces the detector's, so faces a detector misses (tiny, masked, side-on) become
    training crops too. ``class_map`` renames dataset classes (``-`` drops one). Re-running skips files that
    exist already, so nothing is overwritten and an interrupted run can simply be started again. Each crop's photo
    is recorded by content in ``out_dir/photos.csv`` (``maskwatch.data.provenance``), so a model trained on the
    crops knows which photos it must not be judged on.
    """
    class_map = class_map or {}
    summary = BoxCropSummary(out_dir=Path(out_dir))
    folders: dict[str, Path] = {}
    for item in images:
        image = cv2.imread(str(item.image_path), cv2.IMREAD_COLOR)
        if image is None:
            summary.unreadable.append(str(item.image_path))
            continue
        written: list[Path] = []
        for index, face in enumerate(item.objects):
            label = class_map.get(face.label, face.label)
            if label == "-":
                summary.ignored_classes[face.label] = summary.ignored_classes.get(face.label, 0) + 1
                continue
            if face.difficult and not keep_difficult:
                summary.difficult += 1
                continue
            height, width = image.shape[:2]  # clipped to the photo: the loader can only clip when a size is annotated
            x1, y1, x2, y2 = (
                max(0.0, face.box[0]),
                max(0.0, face.box[1]),
                min(width, face.box[2]),
                min(height, face.box[3]),
            )
            if min(x2 - x1, y2 - y1) < min_face:
                summary.too_small += 1
                continue
            if label not in folders:
                folders[label] = prepare_output(Path(out_dir), label)
            path = folders[label] / f"{item.image_path.stem}{BOX_CROP_SUFFIX.format(index=index)}.jpg"
            crop = cv2.cvtColor(crop_face(image, (x1, y1, x2, y2), size, margin), cv2.COLOR_RGB2BGR)
            if path.exists() or not write_new_image(path, crop):
                summary.existing += 1
                continue
            summary.saved.setdefault(label, []).append(path)
            written.append(path)
        if written:
            digest = photo_digest(item.image_path)
            append_crop_records(Path(out_dir), ((f"{p.parent.name}/{p.name}", digest) for p in written))
    return summary
