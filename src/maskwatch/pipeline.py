"""The detection pipeline and its Python API: ``Detector().detect(image_bgr)``.

detector → crops → one batched classifier call → (tracker, for videos and streams).
"""

from __future__ import annotations

import math
import numbers
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from maskwatch.detectors import PHOTO_DETECTORS, create_detector
from maskwatch.detectors.base import FaceDetector
from maskwatch.errors import InputError
from maskwatch.faces import TOO_SMALL, Detection, Face
from maskwatch.inference.bundle import Bundle
from maskwatch.inference.classifier import MaskClassifier
from maskwatch.inference.crops import crop_face
from maskwatch.inference.tracker import FaceTracker
from maskwatch.media.sources import Source, expand_sources
from maskwatch.schemas import FrameOut, ModelOut
from maskwatch.settings import DEFAULT_CONF, DEFAULT_HEAD_WEIGHT, DEFAULT_MIN_FACE, PipelineSettings


def fuse_probabilities(
    classifier: np.ndarray, classes: list[str], head: dict[str, float] | None, head_weight: float
) -> np.ndarray:
    """Blend the classifier's probabilities with the detector head's, when the head knows every bundle class.

    The head's probabilities are restricted to the bundle's classes and renormalised first,
    so a two-class bundle and the three-class head can be blended.
    """
    if not head or head_weight <= 0 or not all(c in head for c in classes):
        return classifier
    guess = np.array([head[c] for c in classes], np.float64)
    guess = guess / guess.sum() if guess.sum() > 0 else np.full(len(classes), 1.0 / len(classes))
    return ((1.0 - head_weight) * np.asarray(classifier, np.float64) + head_weight * guess).astype(np.float32)


def label_face(
    detection: Detection, probabilities: np.ndarray | None, classes: list[str], head_weight: float
) -> Face:
    """One detection as a Face: too_small without classifier probabilities, else the fused argmax class."""
    if probabilities is None:
        return Face(box=detection.box, label=TOO_SMALL, score=0.0, detection_score=detection.score)
    p = fuse_probabilities(probabilities, classes, detection.class_probabilities, head_weight)
    best = int(np.argmax(p))
    return Face(
        box=detection.box,
        label=classes[best],
        score=float(p[best]),
        detection_score=detection.score,
        probabilities={c: float(v) for c, v in zip(classes, p)},
    )


@dataclass
class FrameResult:
    """The faces found in one frame of one source, with the seconds each stage took (``timings``)."""

    source: str
    index: int
    timestamp: float | None
    image: np.ndarray
    faces: list[Face]
    timings: dict[str, float] = field(default_factory=dict)

    def to_schema(self) -> FrameOut:
        h, w = self.image.shape[:2]
        return FrameOut(
            source=self.source,
            frame=self.index,
            timestamp=None if self.timestamp is None else round(self.timestamp, 3),
            width=w,
            height=h,
            faces=[f.to_dict() for f in self.faces],
        )


MAX_THREADS = 256
"""More ONNX Runtime threads than this only slow a detector down (thousands make it many times slower)."""


def _check_setting(name: str, value: object, lowest: float, highest: float, integer: bool = False) -> None:
    """A setting of the wrong type or out of range is a one-line InputError (NaN included), not a TypeError later."""
    kind = numbers.Integral if integer else numbers.Real  # NumPy's scalars are registered as these too
    if isinstance(value, bool) or not isinstance(value, kind) or not lowest <= value <= highest:
        shown = f"{lowest:g} to {highest:g}" if highest != math.inf else f"at least {lowest:g}"
        raise InputError(f"{name} must be a {'whole ' if integer else ''}number, {shown}; got {value!r}")


class Detector:
    """Finds faces and classifies each one with a model bundle.

    Two face detectors: ``face_detector`` for video frames (fast) and ``photo_detector`` for still
    photos (``detect(image, photo=True)``, image sources, uploads). Unless a detector is named, they
    are the bundle's detector and its multi-scale sibling (``PHOTO_DETECTORS``); a named detector
    serves both.

    >>> faces = Detector().detect(cv2.imread("photo.jpg"), photo=True)  # doctest: +SKIP
    >>> for result in Detector(model="my_bundle").stream("video.mp4"):  # doctest: +SKIP
    ...     print(result.index, [f.label for f in result.faces])
    """

    def __init__(
        self,
        model: str | Path | Bundle | None = None,
        detector: str | FaceDetector | None = None,
        conf: float = DEFAULT_CONF,
        min_face: int = DEFAULT_MIN_FACE,
        threads: int | None = None,
        head_weight: float = DEFAULT_HEAD_WEIGHT,
    ) -> None:
        _check_setting("head_weight", head_weight, 0.0, 1.0)
        _check_setting("conf", conf, 0.0, 1.0)
        _check_setting("min_face", min_face, 1, math.inf)
        if threads is not None:
            _check_setting("threads", threads, 1, MAX_THREADS, integer=True)
        if not (detector is None or isinstance(detector, str) or callable(getattr(detector, "detect", None))):
            raise InputError(f"detector must be a name (see `maskwatch info`) or a face detector, got {detector!r}")
        self.head_weight = head_weight
        self.classifier = MaskClassifier(model, threads=threads)
        if detector is None or isinstance(detector, str):
            name = detector or self.classifier.bundle.meta.crop.detector
            self.face_detector: FaceDetector = create_detector(name, min_score=conf, threads=threads)
        else:
            self.face_detector = detector
        self._photo_name = PHOTO_DETECTORS.get(self.face_detector.name) if detector is None else None
        self._photo_detector: FaceDetector | None = None
        self._photo_options = {"min_score": conf, "threads": threads}
        self._photo_lock = threading.Lock()
        self.min_face = min_face

    @classmethod
    def from_settings(cls, settings: PipelineSettings) -> Detector:
        """The pipeline that ``settings`` describe (as ``maskwatch batch`` and ``maskwatch serve`` build it)."""
        return cls(
            model=settings.model,
            detector=settings.detector,
            conf=settings.conf,
            min_face=settings.min_face,
            threads=settings.threads,
            head_weight=settings.head_weight,
        )

    @property
    def photo_detector(self) -> FaceDetector:
        """The detector for still photos, loaded on first use (video-only users never pay for its session)."""
        if self._photo_name is None:
            return self.face_detector
        with self._photo_lock:
            if self._photo_detector is None:
                self._photo_detector = create_detector(self._photo_name, **self._photo_options)
        return self._photo_detector

    @property
    def classes(self) -> list[str]:
        return self.classifier.classes

    def model_info(self) -> ModelOut:
        meta = self.classifier.bundle.meta
        return ModelOut(
            source=self.classifier.bundle.source,
            classes=meta.classes,
            input_size=meta.input_size,
            backbone=meta.backbone,
            detector=self.face_detector.name,
            photo_detector=self._photo_name or self.face_detector.name,
            metrics=meta.metrics,
        )

    def detect(self, image_bgr: np.ndarray, *, photo: bool = False) -> list[Face]:
        """Every face in a BGR frame with its class; faces under ``min_face`` px are labelled too_small.

        ``photo``: a still photo, searched by the photo detector (slower, finds more small faces).
        """
        return self.detect_timed(image_bgr, photo=photo)[0]

    def detect_timed(self, image_bgr: np.ndarray, *, photo: bool = False) -> tuple[list[Face], dict[str, float]]:
        """``detect``, with the seconds each stage took (``detect``, ``crop``, ``classify``)."""
        if not isinstance(image_bgr, np.ndarray) or image_bgr.ndim != 3 or image_bgr.shape[2] != 3:
            raise InputError("detect() expects a BGR image array of shape (height, width, 3)")
        if image_bgr.dtype != np.uint8:  # a float image in 0..1 would silently show no face
            raise InputError(f"detect() expects a uint8 image (0-255, as cv2.imread gives), got {image_bgr.dtype}")
        if image_bgr.shape[0] == 0 or image_bgr.shape[1] == 0:
            raise InputError(f"detect() got an empty image ({image_bgr.shape[1]}x{image_bgr.shape[0]})")
        t0 = time.perf_counter()
        detections = (self.photo_detector if photo else self.face_detector).detect(image_bgr)
        t1 = time.perf_counter()
        size, margin = self.classifier.input_size, self.classifier.margin
        large = [d for d in detections if min(d.box[2] - d.box[0], d.box[3] - d.box[1]) >= self.min_face]
        crops = np.stack([crop_face(image_bgr, d.box, size, margin) for d in large]) if large else np.zeros((0,))
        t2 = time.perf_counter()
        probabilities = self.classifier.predict(crops)
        t3 = time.perf_counter()
        classes = self.classifier.classes
        by_detection = {id(d): p for d, p in zip(large, probabilities)}
        faces = [label_face(d, by_detection.get(id(d)), classes, self.head_weight) for d in detections]
        return faces, {"detect": t1 - t0, "crop": t2 - t1, "classify": t3 - t2}

    def process(self, source: Source, track: bool = True) -> SourceRun:
        """Results frame by frame for one opened source; videos and streams get track ids.

        The returned ``SourceRun`` is an iterator of ``FrameResult`` that also owns the stream's
        state: its ``people_per_class()`` counts the people tracked so far, also after a stream
        was lost or a video cut short.
        """
        if not callable(getattr(source, "frames", None)):
            raise InputError(f"process() takes an opened source (maskwatch.media.sources); for {source!r} use stream()")
        return SourceRun(self, source, track)

    def stream(self, source: str | int, track: bool = True) -> Iterator[FrameResult]:
        """Results frame by frame for a path, camera index or stream URL (one source)."""
        sources, problems = expand_sources([str(source)])
        if problems:
            raise InputError(problems[0])
        for src in sources:
            yield from self.process(src, track=track)


class SourceRun(Iterator[FrameResult]):
    """One source run through a ``Detector``: an iterator of its frames' results that owns the stream's state.

    Each stream gets its own tracker, so two streams run at once never share counts.
    """

    def __init__(self, detector: Detector, source: Source, track: bool = True) -> None:
        self.source = source
        self.tracker = FaceTracker(detector.classes) if track and source.kind != "image" else None
        self._results = self._run(detector)

    def __next__(self) -> FrameResult:
        return next(self._results)

    def close(self) -> None:
        """Stop early: the source is released (as when the iteration ends)."""
        self._results.close()

    def people_per_class(self) -> dict[str, int]:
        """People tracked so far by class (empty for images and untracked runs)."""
        return self.tracker.people_per_class() if self.tracker is not None else {}

    def _run(self, detector: Detector) -> Iterator[FrameResult]:
        photo = self.source.kind == "image"
        with closing(self.source.frames()) as frames:  # released when this run is closed, not when collected
            for frame in frames:
                faces, timings = detector.detect_timed(frame.image, photo=photo)
                if self.tracker is not None:
                    t = time.perf_counter()
                    faces = self.tracker.update(faces, frame.index)
                    timings["track"] = time.perf_counter() - t
                yield FrameResult(self.source.name, frame.index, frame.timestamp, frame.image, faces, timings)
