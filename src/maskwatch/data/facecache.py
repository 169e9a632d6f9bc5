"""Face crops of dataset images, cut exactly as ``detect`` cuts them, cached on disk.

Training must see what inference sees: the same detector, the same square crop
with the same margin, the same resize. Detection is the slow part (tens of ms an
image on a small CPU), so each crop is cached under a key made of the image's
content hash, the detector and its version (a hash of its model and settings), the
margin and the size; a renamed or moved file reuses its crop, an edited one does not,
and neither does a new detector model.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from maskwatch.data.dataset import Dataset, ImageRecord
from maskwatch.detectors import DEFAULT_DETECTOR, FaceDetector, create_detector
from maskwatch.detectors.base import detector_version
from maskwatch.errors import InputError
from maskwatch.inference.crops import DEFAULT_MARGIN, crop_face, whole_image_box
from maskwatch.media.imageio import read_image

DETECTION_MIN_SCORE = 0.5
"""Same face-score threshold as ``maskwatch detect`` uses by default (its ``--conf``)."""


def default_cache_dir() -> Path:
    """``$MASKWATCH_CACHE``, else ``$XDG_CACHE_HOME/maskwatch``, else ``~/.cache/maskwatch``."""
    if os.environ.get("MASKWATCH_CACHE"):
        return Path(os.environ["MASKWATCH_CACHE"])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "maskwatch"


def cache_root(option: str | Path | None) -> Path | None:
    """The ``--cache`` option as a folder: None → the default folder, ``none`` → no cache at all."""
    if option is not None and str(option).lower() == "none":
        return None
    return Path(option) if option else default_cache_dir()


def _unwritable(root: str | Path, exc: OSError) -> InputError:
    return InputError(
        f"{root}: cannot write the face-crop cache ({exc.strerror or exc}); pass another --cache folder or --cache none"
    )


def check_cache_writable(root: str | Path | None) -> None:
    """Create the cache folder and write a probe file in it, or a one-line ``InputError`` (``None``: no cache)."""
    if root is None:
        return
    if Path(root).exists() and not Path(root).is_dir():
        raise InputError(
            f"{root}: the face-crop cache is a file, not a folder; pass another --cache folder or --cache none"
        )
    try:
        Path(root).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=root):
            pass
    except OSError as exc:
        raise _unwritable(root, exc) from None


@dataclass(frozen=True)
class FaceCrops:
    """Crops of a list of records (N×S×S×3 RGB uint8) and whether a face was found in each."""

    images: np.ndarray
    found: np.ndarray
    scores: np.ndarray

    @property
    def no_face(self) -> int:
        return int((~self.found).sum())


def face_crop(
    image_bgr: np.ndarray, detector: FaceDetector, size: int, margin: float = DEFAULT_MARGIN
) -> tuple[np.ndarray, bool, float]:
    """The highest-scoring face cut like inference does, or the whole image (no margin) when none is found."""
    detections = detector.detect(image_bgr)
    if detections:
        best = max(detections, key=lambda d: d.score)
        return crop_face(image_bgr, best.box, size, margin), True, float(best.score)
    return crop_face(image_bgr, whole_image_box(image_bgr), size, margin=0.0), False, 0.0


class FaceCache:
    """Crops keyed by (content hash, detector and version, margin, size) under ``root``; ``None`` caches nothing."""

    def __init__(
        self,
        root: str | Path | None,
        size: int,
        margin: float = DEFAULT_MARGIN,
        detector: str = DEFAULT_DETECTOR,
        min_score: float = DETECTION_MIN_SCORE,
    ) -> None:
        self.size, self.margin, self.detector_name, self.min_score = size, margin, detector, min_score
        self._detector: FaceDetector | None = None
        self.root = root
        self.folder = None
        if root is not None:  # the detector's version (model hash, settings) keeps a new model off old crops
            version = detector_version(self.detector)
            self.folder = Path(root) / "faces" / f"{detector}-{version}-c{min_score:g}-m{margin:g}-s{size}"
        self._index: dict[str, list[float]] = {}
        if self.folder is not None and (self.folder / "index.json").is_file():
            try:
                self._index = json.loads((self.folder / "index.json").read_text(encoding="utf-8"))
            except (json.JSONDecodeError, OSError):
                self._index = {}  # a damaged index only costs recomputation

    @property
    def detector(self) -> FaceDetector:
        if self._detector is None:
            self._detector = create_detector(self.detector_name, min_score=self.min_score)
        return self._detector

    def _png(self, sha: str) -> Path:
        assert self.folder is not None
        return self.folder / sha[:2] / f"{sha}.png"

    def _cached(self, sha: str) -> tuple[np.ndarray, bool, float] | None:
        if self.folder is None or sha not in self._index:
            return None
        image = cv2.imread(str(self._png(sha)), cv2.IMREAD_COLOR)
        if image is None or image.shape[:2] != (self.size, self.size):
            return None
        found, score = self._index[sha]
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB), bool(found), float(score)

    def _store(self, sha: str, crop: np.ndarray, found: bool, score: float) -> None:
        if self.folder is None:
            return
        png = self._png(sha)
        try:
            png.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _unwritable(self.root, exc) from None
        if not cv2.imwrite(str(png), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR)):
            raise InputError(
                f"{self.root}: cannot write the face-crop cache; pass another --cache folder or --cache none"
            )
        self._index[sha] = [int(found), round(score, 4)]

    def _save_index(self) -> None:
        if self.folder is None:
            return
        tmp = self.folder / "index.json.tmp"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(self._index), encoding="utf-8")
            tmp.replace(self.folder / "index.json")
        except OSError as exc:
            raise _unwritable(self.root, exc) from None

    def crops(
        self,
        dataset: Dataset,
        records: Sequence[ImageRecord],
        progress: Callable[[int, int], None] | None = None,
    ) -> FaceCrops:
        """Crops for ``records`` in order, detecting only images not cached yet (the index is saved as it goes)."""
        images = np.zeros((len(records), self.size, self.size, 3), np.uint8)
        found = np.zeros(len(records), bool)
        scores = np.zeros(len(records), np.float32)
        fresh = 0
        try:
            for i, record in enumerate(records):
                hit = self._cached(record.sha256)
                if hit is None:
                    hit = face_crop(read_image(dataset.file(record)), self.detector, self.size, self.margin)
                    self._store(record.sha256, *hit)
                    fresh += 1
                    if fresh % 200 == 0:
                        self._save_index()
                images[i], found[i], scores[i] = hit
                if progress:
                    progress(i + 1, len(records))
        except BaseException:
            if fresh:  # keep what was detected (Ctrl-C, a bad image); a failing cache must not hide the first error
                with contextlib.suppress(InputError):
                    self._save_index()
            raise
        if fresh:
            self._save_index()
        return FaceCrops(images, found, scores)
