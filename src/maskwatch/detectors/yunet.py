"""YuNet: a small general face detector (libfacedetection, Apache-2.0), and its mask-aware fine-tune, in ONNX Runtime.

YuNet-n (74k parameters) was trained on WIDER FACE, so it finds the small, turned and bare faces of real
photos; it knows nothing of masks. ``yunet-mask`` is the same network fine-tuned on our scenes with a
class head on the same grid (``maskwatch train-detector --init yunet``). Both output raw per-prior maps;
the decoding is ours, in NumPy, as OpenCV's ``FaceDetectorYN`` does it: one prior per grid point at
strides 8, 16 and 32, centre ``(col + dx, row + dy) · stride``, size ``exp(dw, dh) · stride``, five
keypoints ``(col + kx, row + ky) · stride``, score ``sqrt(cls · obj)``, then NMS.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path

import cv2
import numpy as np

from maskwatch.detectors.base import fingerprint, load_model_meta, register_detector
from maskwatch.detectors.maskface import calibrate, uncalibrate
from maskwatch.errors import InputError, ModelError
from maskwatch.faces import Detection
from maskwatch.inference.boxes import nms_clusters, score_weighted_mean
from maskwatch.inference.onnx_runtime import create_session

STRIDES = (8, 16, 32)
MULTIPLE = 32
"""Input height and width must be multiples of the coarsest stride."""
KEYPOINTS = 5
"""Right eye, left eye, nose tip, right and left mouth corners (the subject's sides)."""
CLASSES = ("with_mask", "without_mask", "incorrect_mask")
"""The mask-aware head's classes, in the order of its logits (the same as maskface's)."""
MAP_CHANNELS = 2 + 4 + 2 * KEYPOINTS
"""Per prior in a raw map: cls logit, obj logit, box (dx, dy, log w, log h), keypoints (x, y) × 5."""
MASK_CHANNELS = MAP_CHANNELS + len(CLASSES)
"""The mask-aware network adds the class logits after those."""
YUNET_ENV = "MASKWATCH_YUNET"
"""Environment variable naming YuNet's own ONNX file (``yunet_n_dynamic.onnx``), which the package does not ship."""
YUNET_SOURCE = "https://github.com/ShiqiYu/libfacedetection.train (onnx/yunet_n_dynamic.onnx, Apache-2.0)"
MASK_MODEL_FILE = "yunet_mask.onnx"
DEFAULT_SIZE = 320
"""Long side of the network input for video: a 640×480 frame runs at 320×256 (multiples of 32)."""
PHOTO_SIZES = (320, 640)
"""``yunet-mask-multiscale`` main passes (photos: a second pass at twice the size finds the tiny faces)."""


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -80.0, 80.0)))


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def priors(height: int, width: int, strides: Sequence[int] = STRIDES) -> tuple[np.ndarray, np.ndarray]:
    """Grid points of a padded input (multiples of 32): (P×2 col, row) and (P) stride, level by level, row-major.

    The order is that of the network's flattened outputs: stride 8 first, then 16 and 32.
    """
    cells, steps = [], []
    for stride in strides:
        rows, cols = height // stride, width // stride
        r, c = np.mgrid[0:rows, 0:cols]
        cells.append(np.stack([c.ravel(), r.ravel()], axis=1))
        steps.append(np.full(rows * cols, stride))
    return np.concatenate(cells).astype(np.float32), np.concatenate(steps).astype(np.float32)


def decode(
    maps: np.ndarray, height: int, width: int, min_score: float, scores_are_logits: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """Raw maps (P × MAP_CHANNELS or MASK_CHANNELS, priors in ``priors`` order) → boxes (N×4), scores (N),
    keypoints (N×5×2) in input pixels and class probabilities (N×3, or None without a class head), for the
    priors scoring at least ``min_score``.

    Score = sqrt(cls · obj) with both clipped to 0..1, as ``FaceDetectorYN`` does; YuNet's own ONNX file
    applies the sigmoid itself (``scores_are_logits=False``), our exports leave it to us.
    """
    cells, strides = priors(height, width)
    if len(maps) != len(cells):
        raise ModelError(f"YuNet output has {len(maps)} priors; a {width}×{height} input has {len(cells)}")
    cls, obj = maps[:, 0], maps[:, 1]
    if scores_are_logits:
        cls, obj = sigmoid(cls), sigmoid(obj)
    scores = np.sqrt(np.clip(cls, 0, 1) * np.clip(obj, 0, 1))
    keep = np.flatnonzero(scores >= min_score)
    cells, strides, rows, scores = cells[keep], strides[keep, None], maps[keep], scores[keep]
    centre = (cells + rows[:, 2:4]) * strides
    size = np.exp(np.clip(rows[:, 4:6], -10.0, 10.0)) * strides
    boxes = np.concatenate([centre - size / 2, centre + size / 2], axis=1).astype(np.float32)
    kps = (rows[:, 6 : 6 + 2 * KEYPOINTS].reshape(-1, KEYPOINTS, 2) + cells[:, None]) * strides[:, :, None]
    probs = softmax(rows[:, MAP_CHANNELS:MASK_CHANNELS]).astype(np.float32) if maps.shape[1] >= MASK_CHANNELS else None
    return boxes, scores.astype(np.float32), kps.astype(np.float32), probs


def pad_input(image_bgr: np.ndarray, size: int) -> tuple[np.ndarray, float]:
    """Scale the long side to ``size``, pad right and bottom with black to multiples of 32; BGR uint8 and scale."""
    h, w = image_bgr.shape[:2]
    scale = size / max(h, w)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(image_bgr, (new_w, new_h), interpolation=interpolation) if scale != 1 else image_bgr
    pad_w, pad_h = -(-new_w // MULTIPLE) * MULTIPLE, -(-new_h // MULTIPLE) * MULTIPLE
    canvas = np.zeros((pad_h, pad_w, 3), np.uint8)
    canvas[:new_h, :new_w] = resized
    return canvas, scale


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> list[np.ndarray]:
    """Greedy NMS clusters (kept box first), as ``nms_clusters``; a name for what YuNet's decoding ends with."""
    return nms_clusters(boxes, scores, iou_threshold)


class YuNetDetector:
    """YuNet (or its mask-aware fine-tune) in ONNX Runtime: pad, run, decode, NMS, map back to the image.

    ``sizes`` with more than one entry runs one pass per long side and merges them with NMS (photos:
    a larger pass finds the tiny faces). ``network`` (raw maps of one padded RGB float NHWC image) stands
    in for the ONNX model, so a model still in training is scored through the code its export runs.
    """

    def __init__(
        self,
        min_score: float = 0.5,
        size: int | None = None,
        sizes: Sequence[int] | None = None,
        nms_iou: float = 0.3,
        threads: int | None = None,
        model: str | Path | None = None,
        mask: bool = False,
        network: Callable[[np.ndarray], np.ndarray] | None = None,
        name: str | None = None,
        threshold: float | None = None,
    ) -> None:
        self.sizes = tuple(sorted(int(s) for s in sizes)) if sizes else (int(size or DEFAULT_SIZE),)
        if self.sizes[0] < MULTIPLE or self.sizes[-1] > 4096:
            raise InputError(f"YuNet sizes must be between {MULTIPLE} and 4096 px, got {list(self.sizes)}")
        self.mask = bool(mask)
        base = "yunet-mask" if self.mask else "yunet"
        self.name = name or (base if self.sizes == (DEFAULT_SIZE,) else f"{base}-{'+'.join(map(str, self.sizes))}")
        self.min_score, self.nms_iou = float(min_score), float(nms_iou)
        model_path = Path(model) if model is not None else None
        meta = load_meta(model_path) if self.mask and network is None else {}
        self.meta = meta
        self.threshold = float(threshold if threshold is not None else meta.get("threshold", 0.5))
        """Raw score that reads as 0.5 (the pipeline's default confidence): the fine-tune's operating point."""
        settings = f"s{'+'.join(map(str, self.sizes))}-nms{nms_iou:g}-t{self.threshold:g}"
        self.onnx: bytes | None = None
        if network is not None:
            self.version = f"in-training-{settings}"
            self._network = network
            return
        if model_path is not None and not model_path.is_file():
            raise ModelError(f"{model_path}: no such YuNet model")
        if model_path is not None:
            model_bytes = model_path.read_bytes()
        elif not self.mask:
            raise ModelError(
                f"{base}: set {YUNET_ENV} to YuNet's ONNX file, not shipped with maskwatch ({YUNET_SOURCE})"
            )
        else:
            packaged = resources.files("maskwatch.packaged").joinpath(MASK_MODEL_FILE)
            if not packaged.is_file():
                raise ModelError(
                    f"{base} model not packaged; train one with `maskwatch train-detector --init yunet` "
                    f"and set {ENV_MODEL}"
                )
            model_bytes = packaged.read_bytes()
        self.onnx = model_bytes  # the web page's on-device mode runs the same file in the browser
        self.version = fingerprint(model_bytes, settings)
        session = create_session(model_bytes, threads=threads, source=model_path)
        inputs = session.get_inputs()[0]
        self._nchw = len(inputs.shape) == 4 and inputs.shape[1] == 3  # YuNet's own file: BGR NCHW, sigmoid inside
        outputs = [o.name for o in session.get_outputs()]
        if self._nchw:
            order = [f"{kind}_{s}" for s in STRIDES for kind in ("cls", "obj", "bbox", "kps")]
            if sorted(order) != sorted(outputs):
                raise ModelError(f"{model_path or MASK_MODEL_FILE}: not a YuNet model (outputs {outputs})")

            def run(tensor: np.ndarray) -> np.ndarray:
                blob = np.ascontiguousarray(tensor[0, :, :, ::-1].transpose(2, 0, 1))[None]  # RGB NHWC → BGR NCHW
                got = dict(zip(outputs, session.run(outputs, {inputs.name: blob})))
                levels = [
                    np.concatenate([got[f"{k}_{s}"][0] for k in ("cls", "obj", "bbox", "kps")], 1) for s in STRIDES
                ]
                return np.concatenate(levels)

            self._network = run
        else:
            self._network = lambda tensor: session.run(None, {inputs.name: tensor})[0][0]

    def raw(self, image_bgr: np.ndarray, size: int, min_score: float):
        """One pass: boxes, scores, keypoints (image pixels) and class probabilities (or None)."""
        canvas, scale = pad_input(image_bgr, size)
        tensor = cv2.cvtColor(canvas, cv2.COLOR_BGR2RGB).astype(np.float32)[None]
        maps = np.asarray(self._network(tensor), np.float32)
        boxes, scores, kps, probs = decode(maps, canvas.shape[0], canvas.shape[1], min_score, not self._sigmoid_inside)
        return boxes / scale, scores, kps / scale, probs

    @property
    def _sigmoid_inside(self) -> bool:
        return bool(getattr(self, "_nchw", False))

    def detect(self, image_bgr: np.ndarray) -> list[Detection]:
        raw_min = uncalibrate(self.min_score, self.threshold)
        passes = [self.raw(image_bgr, size, raw_min) for size in self.sizes]
        boxes = np.concatenate([p[0] for p in passes]).reshape(-1, 4)
        if len(boxes) == 0:
            return []
        scores = np.concatenate([p[1] for p in passes])
        kps = np.concatenate([p[2] for p in passes]).reshape(-1, KEYPOINTS * 2)
        probs = np.concatenate([p[3] for p in passes]) if passes[0][3] is not None else None
        h, w = image_bgr.shape[:2]
        out = []
        for cluster in nms(boxes, scores, self.nms_iou):
            best = cluster[0]
            x1, y1 = max(0.0, float(boxes[best, 0])), max(0.0, float(boxes[best, 1]))
            x2, y2 = min(float(w), float(boxes[best, 2])), min(float(h), float(boxes[best, 3]))
            if x2 <= x1 or y2 <= y1:
                continue
            points = tuple((float(x), float(y)) for x, y in kps[best].reshape(KEYPOINTS, 2))
            classes = None
            if probs is not None:  # the cluster's score-weighted class guess: steadier than the top box's alone
                classes = dict(zip(CLASSES, map(float, score_weighted_mean(probs, scores, cluster))))
            score = float(calibrate(scores[best : best + 1], self.threshold)[0])
            out.append(Detection((x1, y1, x2, y2), score, points, classes))
        return out


ENV_MODEL = "MASKWATCH_YUNET_MASK"
"""Environment variable naming a yunet-mask .onnx to use instead of the packaged one (e.g. a fresh training run)."""


def load_meta(model_path: Path | None) -> dict:
    """Metadata next to a yunet-mask export (operating threshold, recipe); empty when there is none."""
    return load_model_meta(model_path, MASK_MODEL_FILE.replace(".onnx", ".json"), "yunet-mask")


def _mask_factory(**options: object) -> YuNetDetector:
    if not options.get("model") and os.environ.get(ENV_MODEL):
        options["model"] = os.environ[ENV_MODEL]
        try:
            return YuNetDetector(mask=True, **options)  # type: ignore[arg-type]
        except ModelError as exc:
            raise ModelError(f"{exc} (from {ENV_MODEL})") from None
    return YuNetDetector(mask=True, **options)  # type: ignore[arg-type]


def _plain_factory(**options: object) -> YuNetDetector:
    """Zero-shot YuNet: the user's own copy of the pretrained file (``$MASKWATCH_YUNET``), as the package ships none."""
    if not options.get("model") and os.environ.get(YUNET_ENV):
        options["model"] = os.environ[YUNET_ENV]
    return YuNetDetector(**options)  # type: ignore[arg-type]


register_detector("yunet", _plain_factory)
register_detector("yunet-640", lambda **options: _plain_factory(**{"size": 640, "name": "yunet-640", **options}))
register_detector("yunet-mask", _mask_factory)
register_detector(
    "yunet-mask-multiscale",
    lambda **options: _mask_factory(**{"sizes": PHOTO_SIZES, "name": "yunet-mask-multiscale", **options}),
)
