"""maskface: our own mask-aware face detector (MobileNetV2 + FPN + CenterNet-style head) in ONNX Runtime.

Off-the-shelf face detectors were trained on bare faces and miss many masked ones;
maskface is trained on masked, unmasked and wrongly masked faces (see docs/detectors.md
and ``maskwatch train-detector``). The ONNX graph outputs raw maps at stride 4;
peak picking, box decoding and NMS happen here in NumPy so they can be tested
against hand-computed cases.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import cv2
import numpy as np

from maskwatch.detectors.base import fingerprint, load_model_meta, register_detector
from maskwatch.errors import InputError, ModelError
from maskwatch.faces import Detection
from maskwatch.inference.boxes import nms_clusters, score_weighted_mean, weighted_nms
from maskwatch.inference.onnx_runtime import create_session

STRIDE = 4
"""Output map cells per input pixel: stride 4 keeps 12-px faces a few cells wide."""
CLASSES = ("with_mask", "without_mask", "incorrect_mask")
NUM_CLASSES = len(CLASSES)
HEAD_CHANNELS = 5 + NUM_CLASSES
"""Per cell: heat logit, log(w/STRIDE), log(h/STRIDE), centre offset dx, dy, class logits."""
MULTIPLE = 32
"""The network's input height and width must be multiples of its coarsest stride."""
MODEL_FILE = "maskface.onnx"
META_FILE = "maskface.json"
DEFAULT_COARSE = 128
"""Long side of a second, coarse pass (0: none). The model saw faces up to ~240 px in training, so a face
filling a 320-px input (a close-up, a webcam) is out of its range; at a coarse size it is in range."""
COARSE_MIN_SIDE = 0.25
"""The coarse pass keeps only faces at least this share of its input's long side: smaller ones are the main
pass's job, and at coarse resolution they are mostly false."""
MULTISCALE_SIZES = (384, 512, 640)
"""Main-pass long sides of ``maskface-multiscale`` (photos, offline work), chosen on the scenes' train half:
upscaling a 400-px photo finds the tiny faces a 320-px pass cannot see (docs/results-log.md)."""
MULTISCALE_LARGE_MAX = 2048
"""For a photo larger than ``maskface-multiscale``'s largest size, a second set of passes grows with the photo (the
largest at the photo's own resolution, none beyond this long side), so small faces in large photos are not shrunk
away while enlarged photos keep their big faces (measured by benchmarks/bench_large_photos.py, see docs)."""
HD_SIZE = 640
"""``maskface-640``: one pass at this long side, for HD streams where the 320-px default shrinks faces away
(recall and speed on large frames: docs/benchmarks.md)."""
IN_RANGE_SIDE = 240.0
"""A face bigger than this in a pass's input is bigger than any face in training (0.95 × 256): that pass is
not expected to find it, so it does not count against the face when multi-scale scores are averaged."""

Pass = tuple[np.ndarray, np.ndarray, np.ndarray]
"""One pass's boxes (N×4, image pixels), raw face scores (N) and class probabilities (N×C)."""


@dataclass(frozen=True)
class RawDetection:
    """A decoded box in network-input pixels with its face score and class probabilities."""

    box: np.ndarray
    score: float
    probabilities: np.ndarray


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -80.0, 80.0)))


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def local_peaks(heat: np.ndarray) -> np.ndarray:
    """Mask of cells that equal the maximum of their 3×3 neighbourhood (CenterNet's max-pool 'NMS')."""
    padded = np.pad(heat, 1, mode="constant", constant_values=-np.inf)
    h, w = heat.shape
    neighbourhood = np.max(np.stack([padded[dy : dy + h, dx : dx + w] for dy in range(3) for dx in range(3)]), axis=0)
    return heat >= neighbourhood


def decode_maps(
    maps: np.ndarray, min_score: float, max_peaks: int = 200, stride: int = STRIDE
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw maps (H×W×HEAD_CHANNELS) → boxes (N×4, input pixels), face scores (N), class probabilities (N×C).

    A box is centred at (cell + offset) × stride with size exp(log size) × stride.
    """
    heat = sigmoid(maps[..., 0])
    ys, xs = np.nonzero(local_peaks(heat) & (heat >= min_score))
    scores = heat[ys, xs]
    if len(scores) > max_peaks:
        top = np.argsort(-scores, kind="stable")[:max_peaks]
        ys, xs, scores = ys[top], xs[top], scores[top]
    cells = maps[ys, xs]
    cx = (xs + cells[:, 3]) * stride
    cy = (ys + cells[:, 4]) * stride
    w = np.exp(np.clip(cells[:, 1], -10.0, 10.0)) * stride
    h = np.exp(np.clip(cells[:, 2], -10.0, 10.0)) * stride
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1).astype(np.float32)
    return boxes, scores.astype(np.float32), softmax(cells[:, 5:]).astype(np.float32)


def fuse_scales(passes: Sequence[Pass], scales: Sequence[float], iou_threshold: float) -> Pass:
    """Merge passes at several input scales; a face's score is its mean best score over the passes that could see it.

    Taking the best score (as weighted NMS does) would keep every false face any one
    scale makes; averaging keeps faces that several scales agree on. A pass whose
    input (``scales``: input pixels per image pixel) would show the face bigger than
    ``IN_RANGE_SIDE`` is left out of its mean, so large faces are not punished for
    being out of the larger passes' range. Boxes and class probabilities are
    score-weighted means of the cluster, as in ``weighted_nms``.
    """
    boxes = np.concatenate([b for b, _, _ in passes]).reshape(-1, 4)
    scores = np.concatenate([s for _, s, _ in passes])
    probs = np.concatenate([p for _, _, p in passes])
    origin = np.concatenate([np.full(len(s), k) for k, (_, s, _) in enumerate(passes)])
    out_boxes, out_scores, out_probs = [], [], []
    for cluster in nms_clusters(boxes, scores, iou_threshold):
        box = score_weighted_mean(boxes, scores, cluster)
        side = min(box[2] - box[0], box[3] - box[1])
        seeing = max(1, sum(side * scale <= IN_RANGE_SIDE for scale in scales))
        best = np.zeros(len(passes), np.float32)  # each pass's best score in the cluster, 0 where it saw nothing
        np.maximum.at(best, origin[cluster], scores[cluster])
        out_boxes.append(box)
        out_scores.append(min(1.0, float(best.sum()) / seeing))
        out_probs.append(score_weighted_mean(probs, scores, cluster))
    return (
        np.asarray(out_boxes, np.float32).reshape(-1, 4),
        np.asarray(out_scores, np.float32),
        np.asarray(out_probs, np.float32).reshape(len(out_scores), probs.shape[1]),
    )


def letterbox(image_bgr: np.ndarray, size: int) -> tuple[np.ndarray, float]:
    """Scale the long side to ``size`` and pad right/bottom (black) up to multiples of 32; RGB float NHWC.

    Padding only the short side to the next multiple of 32 (not to a square) saves
    a fifth of the work on 4:3 frames.
    """
    h, w = image_bgr.shape[:2]
    scale = size / max(h, w)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(image_bgr, (new_w, new_h), interpolation=interpolation)
    pad_w, pad_h = -(-new_w // MULTIPLE) * MULTIPLE, -(-new_h // MULTIPLE) * MULTIPLE
    canvas = np.zeros((pad_h, pad_w, 3), np.uint8)
    canvas[:new_h, :new_w] = resized
    rgb = cv2.cvtColor(canvas, cv2.COLOR_BGR2RGB)
    return rgb.astype(np.float32)[None], scale


def calibrate(scores: np.ndarray, threshold: float) -> np.ndarray:
    """Shift scores in logit space so the model's operating threshold reads as 0.5.

    The pipeline passes one ``conf`` (0.5 by default) to every detector; this keeps
    0.5 meaning 'the tuned operating point' for maskface too.
    """
    p = np.clip(scores, 1e-6, 1 - 1e-6)
    t = float(np.clip(threshold, 1e-6, 1 - 1e-6))
    return sigmoid(np.log(p / (1 - p)) - np.log(t / (1 - t))).astype(np.float32)


def uncalibrate(score: float, threshold: float) -> float:
    """The raw heat value that ``calibrate`` maps to ``score``."""
    s = float(np.clip(score, 1e-6, 1 - 1e-6))
    t = float(np.clip(threshold, 1e-6, 1 - 1e-6))
    return float(sigmoid(np.log(s / (1 - s)) + np.log(t / (1 - t))))


def load_meta(model_path: Path | None = None) -> dict:
    """The metadata next to the model (operating threshold, input size, training recipe)."""
    return load_model_meta(model_path, META_FILE, "maskface")


class MaskFaceDetector:
    """Face detector: letterbox, run maskface, pick heatmap peaks, decode boxes, weighted NMS.

    ``sizes`` (several main-pass long sides) turns on multi-scale inference: each pass
    runs, and their faces are merged by ``fuse_scales``; it costs one pass per size.
    ``flip`` also runs every main pass on the mirrored image (test-time augmentation,
    twice the work) and merges it the same way. With ``large_max``, an image larger
    than the largest size also gets the sizes scaled by the same factor, so the
    largest such pass runs at the image's own resolution (capped at ``large_max``)
    and small faces in large photos are not shrunk away; the regular passes still
    find its big faces. ``network`` (raw maps of a letterboxed batch) stands in for
    the ONNX model, so a model still in training is scored by the code its export will run through.
    """

    def __init__(
        self,
        min_score: float = 0.5,
        size: int | None = None,
        nms_iou: float = 0.4,
        threads: int | None = None,
        model: str | Path | None = None,
        threshold: float | None = None,
        coarse_size: int | None = None,
        sizes: Sequence[int] | None = None,
        flip: bool = False,
        large_max: int = 0,
        network: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> None:
        model_path = Path(model) if model is not None else None
        if model_path is not None and not model_path.is_file():
            raise ModelError(f"{model_path}: no such maskface model")
        meta = load_meta(model_path) if network is None else {}
        self.sizes = tuple(sorted(int(s) for s in sizes)) if sizes else (int(size or meta.get("input_size", 320)),)
        one_pass = "maskface" if self.sizes[0] == meta.get("input_size", 320) else f"maskface-{self.sizes[0]}"
        self.name = ("maskface-multiscale" if len(self.sizes) > 1 else one_pass) + ("-flip" if flip else "")
        self.size = self.sizes[0]
        if self.size < MULTIPLE or self.sizes[-1] > 4096:
            raise InputError(f"maskface sizes must be between {MULTIPLE} and 4096 px, got {list(self.sizes)}")
        self.coarse_size = int(coarse_size if coarse_size is not None else meta.get("coarse_size", DEFAULT_COARSE))
        if self.coarse_size and not MULTIPLE <= self.coarse_size < self.size:
            raise InputError(f"maskface coarse size must be 0 or {MULTIPLE}..{self.size - 1}, got {self.coarse_size}")
        self.threshold = float(threshold if threshold is not None else meta.get("threshold", 0.5))
        self.min_score = min_score
        self.nms_iou = nms_iou
        self.flip = bool(flip)
        self.large_max = int(large_max)
        if self.large_max and not self.sizes[-1] <= self.large_max <= 4096:
            raise InputError(f"maskface large_max must be 0 or {self.sizes[-1]}..4096, got {self.large_max}")
        sizes_text = "+".join(map(str, self.sizes))
        extra_text = ("-flip" if self.flip else "") + (f"-l{self.large_max}" if self.large_max else "")
        settings = f"s{sizes_text}-c{self.coarse_size}-t{self.threshold:g}-nms{nms_iou:g}{extra_text}"
        self.meta = meta
        self.onnx: bytes | None = None
        if network is not None:  # a model still in training (train-detector's held-out validation)
            self.version = f"in-training-{settings}"
            self._network = network
            return
        data = model_path.read_bytes() if model_path else resources.files("maskwatch.packaged").joinpath(MODEL_FILE)
        model_bytes = data if isinstance(data, bytes) else data.read_bytes()
        self.onnx = model_bytes  # the web page's on-device mode runs the same file in the browser
        self.version = fingerprint(model_bytes, settings)
        session = create_session(model_bytes, threads=threads, source=model_path)
        input_name = session.get_inputs()[0].name
        self._network = lambda tensor: session.run(None, {input_name: tensor})[0]

    def detect(self, image_bgr: np.ndarray) -> list[Detection]:
        """Faces with the head's class guess attached (the pipeline blends it with the classifier's)."""
        raw_min = uncalibrate(self.min_score, self.threshold)
        passes = [self._fused(image_bgr, self.sizes, raw_min)]
        grown = self.pass_sizes(max(image_bgr.shape[:2]))
        if grown != self.sizes:
            # A large photo: the regular passes still find its big faces (grown ones see them larger than any
            # trained face), the grown passes its small ones; each set is fused, and the two merged below.
            passes.append(self._fused(image_bgr, grown, raw_min))
        if self.coarse_size:
            passes.append(self._decode(image_bgr, self.coarse_size, raw_min, COARSE_MIN_SIDE * self.coarse_size))
        boxes = np.concatenate([b for b, _, _ in passes])
        if len(boxes) == 0:
            return []
        scores = np.concatenate([s for _, s, _ in passes])
        probs = np.concatenate([p for _, _, p in passes])
        boxes, scores, probs = weighted_nms(boxes, scores, self.nms_iou, probs)
        scores = calibrate(scores, self.threshold)
        h, w = image_bgr.shape[:2]
        out = []
        for box, score, p in zip(boxes, scores, probs):
            x1, y1 = max(0.0, float(box[0])), max(0.0, float(box[1]))
            x2, y2 = min(float(w), float(box[2])), min(float(h), float(box[3]))
            if x2 <= x1 or y2 <= y1:
                continue
            classes = dict(zip(CLASSES, map(float, p)))
            out.append(Detection(box=(x1, y1, x2, y2), score=float(score), class_probabilities=classes))
        return out

    def _fused(self, image_bgr: np.ndarray, sizes: tuple[int, ...], raw_min: float) -> Pass:
        """One pass, or several (sizes, mirrors) fused by ``fuse_scales``, keeping faces at ``raw_min`` or more."""
        mirrors = (False, True) if self.flip else (False,)
        count = len(sizes) * len(mirrors)
        if count == 1:
            return self._decode(image_bgr, sizes[0], raw_min)
        # A pass contributes to a face's mean wherever it scores at least 1/n of the threshold.
        views = [self._decode(image_bgr, s, raw_min / count, mirror=m) for s in sizes for m in mirrors]
        scales = [size / max(image_bgr.shape[:2]) for size in sizes for _ in mirrors]
        boxes, scores, probs = fuse_scales(views, scales, self.nms_iou)
        keep = scores >= raw_min
        return boxes[keep], scores[keep], probs[keep]

    def pass_sizes(self, long_side: int) -> tuple[int, ...]:
        """Main-pass long sides for an image: ``sizes``, or for a larger image (with ``large_max``) ``sizes`` scaled
        so the largest equals the image's long side, each capped at ``large_max``."""
        if not self.large_max or long_side <= self.sizes[-1]:
            return self.sizes
        factor = long_side / self.sizes[-1]
        return tuple(sorted({min(round(size * factor), self.large_max) for size in self.sizes}))

    def _decode(
        self, image_bgr: np.ndarray, size: int, raw_min: float, min_side: float = 0.0, mirror: bool = False
    ) -> Pass:
        """Boxes (in image pixels), raw scores and class probabilities of one pass at ``size`` (on the mirrored
        image if ``mirror``, boxes mapped back); boxes with a side under ``min_side`` input pixels are dropped."""
        tensor, scale = letterbox(cv2.flip(image_bgr, 1) if mirror else image_bgr, size)
        maps = self._network(tensor)[0]
        boxes, scores, probs = decode_maps(maps, raw_min)
        if min_side:
            keep = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) >= min_side
            boxes, scores, probs = boxes[keep], scores[keep], probs[keep]
        boxes = boxes / scale
        if mirror:
            width = image_bgr.shape[1]
            boxes = np.stack([width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]], axis=1)
        return boxes.reshape(-1, 4), scores, probs


ENV_MODEL = "MASKWATCH_MASKFACE"
"""Environment variable naming a maskface .onnx to use instead of the packaged one (e.g. a fresh training run)."""


def _factory(**options: object) -> MaskFaceDetector:
    if not options.get("model") and os.environ.get(ENV_MODEL):
        options["model"] = os.environ[ENV_MODEL]
        try:
            return MaskFaceDetector(**options)  # type: ignore[arg-type]
        except ModelError as exc:  # say where the path came from: the user may not remember setting it
            raise ModelError(f"{exc} (from {ENV_MODEL})") from None
    if not resources.files("maskwatch.packaged").joinpath(MODEL_FILE).is_file() and not options.get("model"):
        raise ModelError(f"maskface model not packaged; train one with `maskwatch train-detector` and set {ENV_MODEL}")
    return MaskFaceDetector(**options)  # type: ignore[arg-type]


register_detector("maskface", _factory)
register_detector(
    "maskface-multiscale",
    lambda **options: _factory(**{"sizes": MULTISCALE_SIZES, "large_max": MULTISCALE_LARGE_MAX, **options}),
)
register_detector("maskface-flip", lambda **options: _factory(flip=True, **options))
register_detector("maskface-640", lambda **options: _factory(**{"size": HD_SIZE, **options}))
