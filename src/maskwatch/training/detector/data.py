"""Training samples for maskface: augmented crops of the scenes' train half plus synthetic scenes.

Recipe (also in docs/results-log.md), one sample of T×T pixels:
- scene crop: a train-half scene rescaled so its long side is T × U_log(0.5, 2.5), randomly cropped or
  padded (black, like inference letterboxing), flipped; or, with probability ``anchor_prob``, one scene
  face is chosen, the scene rescaled so that face gets a size drawn log-uniformly from 8 px to 0.95·T and
  cropped around it (data-anchor sampling, as in PyramidBox): scene faces are mostly tiny, and without it
  large ones are too rare for the detector to learn. The anchor's class is drawn with probability
  ∝ count^``anchor_class_power`` (0.5: square-root balancing), since ~80 % of the scene faces are masked
  and bare faces were the ones the detector missed;
- with probability ``paste_prob``, 1–6 face crops from ``face-mask`` pasted where they overlap no face,
  sized 8–0.85·T px (log-uniform), with a feathered elliptical alpha so no rectangle edge gives them away;
  a pasted face is a masked crop (35 %), a bare crop (40 %), or a bare crop given a synthetic mask (17 %,
  → with_mask) or a mask below the nose (8 %, → incorrect);
- with probability ``closeup_prob``, a close-up instead: one face crop (chosen as for pastes) filling
  0.6–1.0 of the side, whole and unblended, on black or a synthetic background: a webcam or portrait
  face fills the frame, bigger than anything the other samples hold;
- with probability ``synthetic_bg_prob`` the background is synthetic (gradients, noise, shapes) instead;
- with probability ``negative_prob``, a face-free sample of distractors (shaded discs like coins, buttons or
  clock faces, glowing blobs like lamps or stars, smooth organic textures), half of them with 1–3 faces
  pasted among the distractors: the scenes hold few round things that are not faces, and without such
  samples the detector calls coins and galaxies faces;
- with probability ``crowd_prob``, a crowd: 10–40 face crops pasted at 6–28 px (log-uniform) on a
  train-half scene shrunk to 0.3–1 of the canvas (its own faces stay labelled) or on a synthetic or
  distractor background: most scene faces are tiny, and bare ones were the ones the detector missed;
- with probability ``mosaic_prob`` four half-size samples tiled 2×2 (many small faces per image);
- then colour jitter, blur, JPEG artefacts, lighting gradients on the whole sample.
Faces cut to under 40 % by the crop, or under 4 px, are ignored (neither positive nor background).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from maskwatch.data.annotations import AnnotatedImage, load_voc_dir, scene_fold, scene_split
from maskwatch.data.provenance import photo_digest
from maskwatch.errors import InputError
from maskwatch.training.detector.targets import LABELS, encode_targets

RMFD_NAME = re.compile(r"^\d+_\d+_")
"""Tight face crops in face-mask (RMFD naming); the other files are whole photos whose box is not a face."""
MIN_FACE_PX = 4.0
MIN_VISIBLE = 0.4
ANCHOR_MAX_SIDE = 0.95
PASTE_MAX_SIDE = 0.85
"""Largest face sides, as a share of the canvas: close-up faces (a webcam, a portrait) fill most of the frame."""
CLOSEUP_MIN_SIDE = 0.6
"""A close-up sample's face fills 0.6–1.0 of the canvas side (log-uniform)."""
CROWD_FACES = (10, 40)
CROWD_SIDES = (6.0, 28.0)
"""A crowd sample pastes 10–40 faces, 6–28 px wide (log-uniform): the size range where scene faces are missed."""


@dataclass
class Scene:
    image: np.ndarray  # BGR
    boxes: np.ndarray  # N×4 float32
    labels: np.ndarray  # N int
    photo: str = ""
    """Digest of the photo file (``maskwatch.data.provenance``), recorded in the trained model's metadata."""


@dataclass
class Sample:
    image: np.ndarray  # BGR uint8 T×T
    boxes: np.ndarray
    labels: np.ndarray
    ignore: np.ndarray


def load_scenes(
    scenes_dir: str | Path, split: str = "train", limit: int | None = None, held_out: HeldOutFold | None = None
) -> list[Scene]:
    """The scenes of one half (even image numbers = train), or ``all`` of them, with their boxes, decoded once into
    memory; the photos of ``held_out`` (kept for validation) are left out."""
    scenes_dir = Path(scenes_dir)
    images = load_voc_dir(scenes_dir / "annotations", scenes_dir / "images")
    out = []
    for item in images:
        if (split != "all" and scene_split(item.name) != split) or (held_out is not None and held_out.holds(item.name)):
            continue
        image = read_scene_image(item)
        boxes = np.array([o.box for o in item.objects], np.float32).reshape(-1, 4)
        labels = np.array([LABELS.get(o.label, 0) for o in item.objects], np.int64)
        out.append(Scene(image, boxes, labels, photo_digest(item.image_path)))
        if limit and len(out) >= limit:
            break
    if not out:
        raise InputError(f"{scenes_dir}: no {'' if split == 'all' else split + '-half '}scenes found")
    return out


@dataclass(frozen=True)
class HeldOutFold:
    """One fold of the train half's photos, kept out of training to validate on (``scene_fold``)."""

    fold: int
    folds: int

    def holds(self, image_name: str) -> bool:
        return scene_split(image_name) == "train" and scene_fold(image_name, self.folds) == self.fold


def read_scene_image(item: AnnotatedImage) -> np.ndarray:
    image = cv2.imread(str(item.image_path), cv2.IMREAD_COLOR)
    if image is None:
        raise InputError(f"{item.image_path}: cannot read image")
    return image


def load_face_crops(face_mask_dir: str | Path | None, per_class: int = 800, seed: int = 0) -> dict[int, list]:
    """Tight face crops per class index (0 with_mask, 1 without_mask); empty when no folder is given."""
    crops: dict[int, list] = {0: [], 1: []}
    if face_mask_dir is None:
        return crops
    root = Path(face_mask_dir)
    if not root.is_dir():
        raise InputError(f"{root}: no such folder")
    rng = np.random.default_rng(seed)
    for label, folder in ((0, "with_mask"), (1, "without_mask")):
        files = sorted(p for p in (root / folder).glob("*.jpg") if RMFD_NAME.match(p.name))
        rng.shuffle(files)
        for path in files[:per_class]:
            image = cv2.imdecode(np.fromfile(str(path), np.uint8), cv2.IMREAD_COLOR)
            if image is not None and min(image.shape[:2]) >= 24:
                crops[label].append(image)
    return crops


def draw_mask(face: np.ndarray, rng: np.random.Generator, below_nose: bool = False) -> np.ndarray:
    """A synthetic surgical/cloth mask over nose to chin (or mouth to chin: worn incorrectly)."""
    h, w = face.shape[:2]
    out = face.copy()
    top = rng.uniform(0.62, 0.7) if below_nose else rng.uniform(0.42, 0.52)
    bottom = rng.uniform(0.92, 1.0)
    left, right = rng.uniform(0.08, 0.18), rng.uniform(0.82, 0.92)
    pts = np.array(
        [
            (left, top + 0.05),
            (0.5, top - 0.03),
            (right, top + 0.05),
            (right - 0.03, bottom - 0.12),
            (0.5, bottom),
            (left + 0.03, bottom - 0.12),
        ]
    ) * np.array([w, h])
    palette = [(235, 235, 235), (210, 180, 120), (40, 40, 40), (200, 200, 230), (120, 160, 90), (170, 120, 200)]
    colour = np.array(palette[rng.integers(len(palette))], np.float64) * rng.uniform(0.75, 1.1)
    cv2.fillPoly(out, [pts.astype(np.int32)], tuple(float(c) for c in np.clip(colour, 0, 255)), lineType=cv2.LINE_AA)
    shade = tuple(float(c) for c in np.clip(colour * 0.8, 0, 255))
    for k in range(1, 3):  # pleats
        y = top + (bottom - top) * k / 3
        cv2.line(out, (int(left * w + 3), int(y * h)), (int(right * w - 3), int(y * h)), shade, 1, cv2.LINE_AA)
    strap = max(1, w // 40)
    cv2.line(out, (int(left * w), int((top + 0.05) * h)), (0, int((top - 0.1) * h)), shade, strap, cv2.LINE_AA)
    cv2.line(out, (int(right * w), int((top + 0.05) * h)), (w - 1, int((top - 0.1) * h)), shade, strap, cv2.LINE_AA)
    return out


def anchor_pool(scenes: list[Scene], class_power: float = 1.0) -> tuple[list[tuple[int, int]], np.ndarray]:
    """Every scene face as (scene, face) with a sampling weight: a class's total weight ∝ its count^power.

    ``class_power`` 1 draws faces uniformly (classes as common as in the data), 0 draws each class equally
    often, 0.5 in between.
    """
    faces = [(i, j) for i, scene in enumerate(scenes) for j in range(len(scene.boxes))]
    if not faces:
        return [], np.zeros(0)
    labels = np.array([int(scenes[i].labels[j]) for i, j in faces])
    classes, counts = np.unique(labels, return_counts=True)
    per_face = {int(c): n ** (class_power - 1.0) for c, n in zip(classes, counts)}
    weights = np.array([per_face[int(label)] for label in labels], np.float64)
    return faces, weights / weights.sum()


def synthetic_background(size: int, rng: np.random.Generator) -> np.ndarray:
    """Gradient + noise + random shapes: a background with no faces in it."""
    a, b = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    t = np.linspace(0, 1, size, dtype=np.float32)
    grad = t[:, None, None] if rng.random() < 0.5 else t[None, :, None]
    image = (a * (1 - grad) + b * grad) * np.ones((size, size, 1), np.float32)
    image += rng.normal(0, rng.uniform(2, 20), image.shape)
    image = np.clip(image, 0, 255).astype(np.uint8)
    for _ in range(rng.integers(0, 12)):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        p = rng.integers(0, size, 2)
        if rng.random() < 0.5:
            cv2.circle(image, (int(p[0]), int(p[1])), int(rng.integers(3, size // 4)), colour, -1)
        else:
            q = p + rng.integers(-size // 3, size // 3, 2)
            cv2.rectangle(image, (int(p[0]), int(p[1])), (int(q[0]), int(q[1])), colour, -1)
    return image


_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
NIGHT_SHARE = 0.25
"""Share of distractor canvases that are dark with many small lights (street lamps, lit windows, stars)."""


def distractor_background(size: int, rng: np.random.Generator) -> np.ndarray:
    """A synthetic background covered in face-sized things that are not faces: discs, blobs, textures, badges."""
    image = synthetic_background(size, rng).astype(np.float32)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    night = rng.random() < NIGHT_SHARE
    if night:
        image *= rng.uniform(0.05, 0.3)
    count = int(rng.integers(20, 80)) if night else int(rng.integers(3, 20))
    radius = (np.log(1.5), np.log(12)) if night else (np.log(3), np.log(size / 3))
    for _ in range(count):
        cx, cy = rng.uniform(0, size, 2)
        r = float(np.exp(rng.uniform(*radius)))
        aspect = rng.uniform(0.6, 1.0)
        d = np.sqrt(((xs - cx) / r) ** 2 + ((ys - cy) / (r * aspect)) ** 2)  # 1 on the rim
        kind = 1 if night else rng.integers(4)
        a, b = rng.uniform(120 if night else 0, 255, 3), rng.uniform(0, 255, 3)
        if kind == 0:  # a shaded disc (coin, button, clock face), sometimes with a rim and inner ring
            light = np.clip(1 - ((xs - cx + 0.4 * r) ** 2 + (ys - cy + 0.4 * r) ** 2) / (2.5 * r * r), 0, 1)
            relief = cv2.resize(rng.uniform(0.75, 1.15, (8, 8)).astype(np.float32), (size, size))
            fill = (a * light[..., None] + b * (1 - light[..., None])) * relief[..., None]
            alpha = np.clip((1 - d) * r, 0, 1)
            if rng.random() < 0.6:
                fill = fill * (1 - 0.35 * (np.abs(d - rng.uniform(0.5, 0.85)) < 0.06))[..., None]
        elif kind == 1:  # a glowing blob (lamp, star, galaxy)
            alpha = np.exp(-0.5 * (d * rng.uniform(1.5, 3.0)) ** 2)
            fill = np.broadcast_to(a, image.shape)
        elif kind == 2:  # an ellipse of smooth random texture (foliage, fabric, skin-coloured shapes)
            cells = int(rng.integers(2, 8))
            noise = cv2.resize(rng.uniform(0, 1, (cells, cells)).astype(np.float32), (size, size))
            fill = a * noise[..., None] + b * (1 - noise[..., None])
            alpha = np.clip((1 - d) * r / 2, 0, 1)
        else:  # a badge (mission patch, logo, coin face): a rimmed disc holding shapes and lettering
            badge = synthetic_background(size, rng)
            for _ in range(int(rng.integers(1, 4))):
                text = "".join(rng.choice(list(_LETTERS), int(rng.integers(3, 9))))
                org = (int(cx - 0.8 * r), int(cy + rng.uniform(-0.7, 0.8) * r))
                colour = tuple(int(c) for c in rng.integers(0, 256, 3))
                cv2.putText(badge, text, org, cv2.FONT_HERSHEY_SIMPLEX, max(0.15, r / 70), colour, 1 + int(r > 40))
            fill = badge.astype(np.float32)
            fill[np.abs(d - 0.9) < rng.uniform(0.04, 0.12)] = a
            alpha = np.clip((1 - d) * r, 0, 1)
        alpha = alpha[..., None]
        image = alpha * fill + (1 - alpha) * image
    return np.clip(image, 0, 255).astype(np.uint8)


class SampleMaker:
    """Draws augmented training samples; every random choice comes from its own generator (reproducible)."""

    def __init__(
        self,
        scenes: list[Scene],
        crops: dict[int, list],
        size: int = 256,
        seed: int = 0,
        paste_prob: float = 0.5,
        mosaic_prob: float = 0.25,
        synthetic_bg_prob: float = 0.1,
        anchor_prob: float = 0.0,
        anchor_class_power: float = 1.0,
        closeup_prob: float = 0.0,
        negative_prob: float = 0.0,
        crowd_prob: float = 0.0,
    ) -> None:
        self.scenes, self.crops, self.size = scenes, crops, size
        self.negative_prob = negative_prob
        self.crowd_prob = crowd_prob if crops[0] or crops[1] else 0.0
        self.closeup_prob = closeup_prob if crops[0] or crops[1] else 0.0
        self.anchor_prob = anchor_prob
        self.anchor_pool = anchor_pool(scenes, anchor_class_power)
        self.rng = np.random.default_rng(seed)
        self.paste_prob = paste_prob if crops[0] or crops[1] else 0.0
        self.mosaic_prob, self.synthetic_bg_prob = mosaic_prob, synthetic_bg_prob

    def batch(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """RGB float32 images (n×T×T×3, 0..255) and packed targets."""
        images, targets = self.raw_batch(n)
        return images.astype(np.float32), targets

    def raw_batch(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """RGB uint8 images and packed targets: a quarter of the image bytes to pass between processes."""
        images, targets = [], []
        for _ in range(n):
            s = self.sample()
            images.append(cv2.cvtColor(s.image, cv2.COLOR_BGR2RGB))
            targets.append(encode_targets(s.boxes, s.labels, s.ignore, self.size, self.size))
        return np.stack(images), np.stack(targets)

    def sample(self) -> Sample:
        rng = self.rng
        if rng.random() < self.mosaic_prob and self.size >= 64:
            half = self.size // 2
            parts = [self.single(half) for _ in range(4)]
            image = np.zeros((self.size, self.size, 3), np.uint8)
            boxes, labels, ignore = [], [], []
            for k, part in enumerate(parts):
                ox, oy = (k % 2) * half, (k // 2) * half
                image[oy : oy + half, ox : ox + half] = part.image
                boxes.append(part.boxes + np.array([ox, oy, ox, oy], np.float32))
                labels.append(part.labels)
                ignore.append(part.ignore)
            sample = Sample(image, np.concatenate(boxes), np.concatenate(labels), np.concatenate(ignore))
        else:
            sample = self.single(self.size)
        sample.image = self._photometric(sample.image)
        return sample

    def single(self, size: int) -> Sample:
        """One sample of side ``size`` before mosaic and photometric changes: a scene, close-up or crowd."""
        rng = self.rng
        if rng.random() < self.closeup_prob:
            return self._closeup(size)
        if rng.random() < self.crowd_prob:
            return self._crowd(size)
        if rng.random() < self.negative_prob:
            image = distractor_background(size, rng)
            empty = Sample(image, np.zeros((0, 4), np.float32), np.zeros(0, np.int64), np.zeros(0, bool))
            return self._paste(empty, int(rng.integers(1, 4))) if rng.random() < 0.5 and self.paste_prob else empty
        if rng.random() < self.synthetic_bg_prob and self.paste_prob > 0:
            image = synthetic_background(size, rng)
            boxes, labels = np.zeros((0, 4), np.float32), np.zeros(0, np.int64)
            ignore = np.zeros(0, bool)
            return self._paste(Sample(image, boxes, labels, ignore), int(rng.integers(2, 9)))
        anchor = None
        if self.anchor_pool[0] and rng.random() < self.anchor_prob:
            faces, weights = self.anchor_pool
            scene_index, face_index = faces[int(rng.choice(len(faces), p=weights))]
            scene = self.scenes[scene_index]
            anchor = scene.boxes[face_index]
        else:
            scene = self.scenes[int(rng.integers(len(self.scenes)))]
        h, w = scene.image.shape[:2]
        if anchor is not None:
            face_side = float(np.sqrt(max(1.0, (anchor[2] - anchor[0]) * (anchor[3] - anchor[1]))))
            target = float(np.exp(rng.uniform(np.log(8), np.log(ANCHOR_MAX_SIDE * size))))
            scale = min(target / face_side, 4 * size / max(h, w))  # no more than 4× the canvas
        else:
            scale = size * float(np.exp(rng.uniform(np.log(0.5), np.log(2.5)))) / max(h, w)
        new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
        interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        resized = cv2.resize(scene.image, (new_w, new_h), interpolation=interpolation)
        boxes = scene.boxes * scale
        if anchor is not None:  # a canvas placement that contains the anchor face
            ax1, ay1, ax2, ay2 = (float(v) * scale for v in anchor)
            ox = int(rng.uniform(min(ax1, ax2 - size), max(ax1, ax2 - size)))
            oy = int(rng.uniform(min(ay1, ay2 - size), max(ay1, ay2 - size)))
        else:  # crop when larger than the canvas, random offset when smaller
            ox = int(rng.integers(0, new_w - size + 1)) if new_w > size else -int(rng.integers(0, size - new_w + 1))
            oy = int(rng.integers(0, new_h - size + 1)) if new_h > size else -int(rng.integers(0, size - new_h + 1))
        canvas = np.zeros((size, size, 3), np.uint8)
        sx1, sy1 = max(0, ox), max(0, oy)
        sx2, sy2 = min(new_w, ox + size), min(new_h, oy + size)
        canvas[sy1 - oy : sy2 - oy, sx1 - ox : sx2 - ox] = resized[sy1:sy2, sx1:sx2]
        boxes = boxes - np.array([ox, oy, ox, oy], np.float32)
        if rng.random() < 0.5:
            canvas = canvas[:, ::-1].copy()
            boxes = np.stack([size - boxes[:, 2], boxes[:, 1], size - boxes[:, 0], boxes[:, 3]], axis=1)
        sample = self._clip(canvas, boxes, scene.labels.copy())
        if rng.random() < self.paste_prob:
            sample = self._paste(sample, int(rng.integers(1, 7)))
        return sample

    def _closeup(self, size: int) -> Sample:
        """One face crop filling most of the canvas, on black (letterbox padding) or a synthetic background
        (not a scene: its own faces would be unlabelled there)."""
        rng = self.rng
        face, label = self._face()
        fh, fw = face.shape[:2]
        side = size * float(np.exp(rng.uniform(np.log(CLOSEUP_MIN_SIDE), 0.0)))
        scale = side / max(fh, fw)
        tw, th = max(4, min(size, round(fw * scale))), max(4, min(size, round(fh * scale)))
        canvas = synthetic_background(size, rng) if rng.random() < 0.5 else np.zeros((size, size, 3), np.uint8)
        x, y = int(rng.integers(0, size - tw + 1)), int(rng.integers(0, size - th + 1))
        patch = cv2.resize(face, (tw, th), interpolation=cv2.INTER_AREA if tw < fw else cv2.INTER_LINEAR)
        canvas[y : y + th, x : x + tw] = patch[:, ::-1] if rng.random() < 0.5 else patch
        box = np.array([[x, y, x + tw, y + th]], np.float32)
        return Sample(canvas, box, np.array([label], np.int64), np.zeros(1, bool))

    def _crowd(self, size: int) -> Sample:
        """Many tiny pasted faces on a shrunk scene (letterboxed at a random place) or a face-free canvas."""
        rng = self.rng
        roll = rng.random()
        if self.scenes and roll < 0.5:
            scene = self.scenes[int(rng.integers(len(self.scenes)))]
            h, w = scene.image.shape[:2]
            scale = size * rng.uniform(0.3, 1.0) / max(h, w)
            new_w, new_h = max(1, min(size, round(w * scale))), max(1, min(size, round(h * scale)))
            canvas = synthetic_background(size, rng) if rng.random() < 0.5 else np.zeros((size, size, 3), np.uint8)
            x, y = int(rng.integers(0, size - new_w + 1)), int(rng.integers(0, size - new_h + 1))
            canvas[y : y + new_h, x : x + new_w] = cv2.resize(scene.image, (new_w, new_h), interpolation=cv2.INTER_AREA)
            boxes = scene.boxes * np.float32(scale) + np.array([x, y, x, y], np.float32)
            base = self._clip(canvas, boxes, scene.labels.copy())
        else:
            canvas = distractor_background(size, rng) if roll < 0.75 else synthetic_background(size, rng)
            base = Sample(canvas, np.zeros((0, 4), np.float32), np.zeros(0, np.int64), np.zeros(0, bool))
        return self._paste(base, int(rng.integers(CROWD_FACES[0], CROWD_FACES[1] + 1)), sides=CROWD_SIDES)

    def _clip(self, image: np.ndarray, boxes: np.ndarray, labels: np.ndarray) -> Sample:
        size = image.shape[0]
        area = np.maximum((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]), 1e-6)
        clipped = np.clip(boxes, 0, size)
        cw, ch = clipped[:, 2] - clipped[:, 0], clipped[:, 3] - clipped[:, 1]
        visible = (cw > 0) & (ch > 0)
        ratio = np.where(visible, cw * ch / area, 0.0)
        keep = visible
        ignore = (ratio < MIN_VISIBLE) | (np.minimum(cw, ch) < MIN_FACE_PX)
        return Sample(image, clipped[keep].astype(np.float32), labels[keep], ignore[keep])

    def _face(self) -> tuple[np.ndarray, int]:
        rng = self.rng
        roll = rng.random()
        if roll < 0.35 and self.crops[0]:
            return self.crops[0][int(rng.integers(len(self.crops[0])))], 0
        bare = self.crops[1] or self.crops[0]
        face = bare[int(rng.integers(len(bare)))]
        if not self.crops[1]:
            return face, 0
        if roll < 0.52:
            return draw_mask(face, rng), 0
        if roll < 0.60:
            return draw_mask(face, rng, below_nose=True), 2
        return face, 1

    def _paste(self, sample: Sample, count: int, sides: tuple[float, float] | None = None) -> Sample:
        """Paste ``count`` faces where they overlap no face; widths log-uniform in ``sides`` (default 8 px to
        0.85 of the canvas)."""
        rng = self.rng
        image = sample.image.copy()
        size = image.shape[0]
        low, high = sides or (8.0, max(9.0, PASTE_MAX_SIDE * size))
        boxes, labels, ignore = list(sample.boxes), list(sample.labels), list(sample.ignore)
        for _ in range(count):
            face, label = self._face()
            fh, fw = face.shape[:2]
            width = float(np.exp(rng.uniform(np.log(low), np.log(high))))
            height = width * fh / fw * rng.uniform(0.9, 1.1)
            tw, th = max(4, round(width)), max(4, round(height))
            if th >= size or tw >= size:
                continue
            for _attempt in range(8):
                x, y = int(rng.integers(0, size - tw)), int(rng.integers(0, size - th))
                candidate = np.array([x, y, x + tw, y + th], np.float32)
                grown = candidate + np.array([-0.1 * tw, -0.1 * th, 0.1 * tw, 0.1 * th])
                if not any(_overlaps(grown, b) for b in boxes):
                    break
            else:
                continue
            patch = cv2.resize(face, (tw, th), interpolation=cv2.INTER_AREA if tw < fw else cv2.INTER_LINEAR)
            if rng.random() < 0.5:
                patch = patch[:, ::-1]
            patch = np.clip(patch.astype(np.float32) * rng.uniform(0.6, 1.3) + rng.uniform(-25, 25), 0, 255)
            alpha = np.zeros((th, tw), np.float32)
            cv2.ellipse(alpha, (tw // 2, th // 2), (max(1, int(tw * 0.48)), max(1, int(th * 0.5))), 0, 0, 360, 1, -1)
            k = max(1, (min(tw, th) // 8) | 1)
            alpha = cv2.GaussianBlur(alpha, (k, k), 0)[..., None]
            region = image[y : y + th, x : x + tw].astype(np.float32)
            image[y : y + th, x : x + tw] = (alpha * patch + (1 - alpha) * region).astype(np.uint8)
            boxes.append(candidate)
            labels.append(label)
            ignore.append(min(tw, th) < MIN_FACE_PX)
        return Sample(
            image,
            np.array(boxes, np.float32).reshape(-1, 4),
            np.array(labels, np.int64),
            np.array(ignore, bool),
        )

    def _photometric(self, image: np.ndarray) -> np.ndarray:
        rng = self.rng
        out = image.astype(np.float32)
        if rng.random() < 0.8:
            hsv = cv2.cvtColor(image, cv2.COLOR_BGR2HSV).astype(np.float32)
            hsv[..., 0] = (hsv[..., 0] + rng.uniform(-8, 8)) % 180
            hsv[..., 1] *= rng.uniform(0.6, 1.4)
            out = cv2.cvtColor(np.clip(hsv, 0, 255).astype(np.uint8), cv2.COLOR_HSV2BGR).astype(np.float32)
            out = (out - 128) * rng.uniform(0.7, 1.3) + 128 + rng.uniform(-30, 30)
        if rng.random() < 0.3:  # lighting gradient
            size = image.shape[0]
            t = np.linspace(-1, 1, size, dtype=np.float32)
            ramp = t[None, :, None] if rng.random() < 0.5 else t[:, None, None]
            out = out * (1 + rng.uniform(-0.35, 0.35) * ramp)
        if rng.random() < 0.05:
            out = np.repeat(out.mean(axis=2, keepdims=True), 3, axis=2)
        out = np.clip(out, 0, 255).astype(np.uint8)
        if rng.random() < 0.2:
            k = int(rng.choice([3, 5]))
            out = cv2.GaussianBlur(out, (k, k), 0)
        if rng.random() < 0.3:
            ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(25, 90))])
            if ok:
                out = cv2.imdecode(buf, cv2.IMREAD_COLOR)
        return out


def _overlaps(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1]))
