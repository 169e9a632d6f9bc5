"""Synthetic masked faces: draw a procedurally generated mask, fitted by face landmarks, onto unmasked faces.

For every source face the 468 face-mesh landmarks (``maskwatch.inference.landmarks``) give the face's outline, nose,
mouth and chin in the photo, so the mask follows the face's pose (roll, yaw, scale) rather than a fixed
template. A mask is a surface spanned between a *top edge* (a curve from cheek to cheek through the
placement's top point) and the *bottom edge* (the jaw line from the landmarks, pushed out a little and down
under the chin). A texture made in that surface's (u, v) coordinates (pleats, cloth patterns, an N95-like
cup with seam and nose clip) is shaded like a curved surface, mapped onto the photo through a dense inverse map,
matched to the photo's exposure, colour cast and noise, and blended in with feathered, slightly blurred
edges so that a sharp outline does not give the synthetic images away.

Placements:

* ``correct``: nose bridge to under the chin → class ``with_mask``;
* ``below_nose``: nose uncovered, mouth and chin covered → class ``incorrect_mask``;
* ``chin``: on the chin only, mouth and nose uncovered → class ``incorrect_mask``.

Every output is named ``<source stem>__synth-<placement>-<n>.jpg`` (``SYNTH_NAME``) so that dataset splits
can keep all images made from one face with that face (``maskwatch.data.dataset.NAME_GROUP_RULES``), and is
recorded in ``synth.csv`` with its source, style, placement and seed so any image can be made again.
"""

from __future__ import annotations

import contextlib
import csv
import math
import re
import shutil
import zlib
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from maskwatch.errors import InputError
from maskwatch.faces import Detection
from maskwatch.inference.landmarks import CHIN, LOWER_LIP, NOSE_TIP, SUBNASALE, UPPER_LIP, FaceLandmarks, FaceMesh
from maskwatch.media.imageio import is_image_path, read_image

PLACEMENTS = ("correct", "below_nose", "chin")
INCORRECT_PLACEMENTS = ("below_nose", "chin")
CLASS_OF_PLACEMENT = {"correct": "with_mask", "below_nose": "incorrect_mask", "chin": "incorrect_mask"}
STYLES = ("surgical", "cloth", "n95")
CSV_NAME = "synth.csv"
CSV_COLUMNS = ("file", "source", "style", "placement", "seed", "details")
SYNTH_NAME = re.compile(r"^(?P<stem>.+?)__synth-(?P<placement>[a-z_]+)-(?P<n>\d+)$")
"""Stem of a synthetic image: the source's stem, the placement and a counter (matches dataset.py's rule)."""

LEFT_JAW = (234, 93, 132, 58, 172, 136, 150, 149, 176, 148, CHIN)
"""Face-oval landmarks from the ear on the image's left down to the chin."""
RIGHT_JAW = (454, 323, 361, 288, 397, 365, 379, 378, 400, 377, CHIN)
FOREHEAD = 10
NOSE_BRIDGE_MID = 197
EYE_A, EYE_B = 33, 263
SKIN_SAMPLES = (50, 280, 4, 5, 195, 101, 330)
"""Cheek and nose landmarks whose colour stands for the face's exposure and colour cast."""

TEXTURE_W, TEXTURE_H = 240, 160
GRID_U = 16
"""Samples along the top and bottom edges, left to right (the surface is interpolated between them)."""


@dataclass(frozen=True)
class Placement:
    """Where the mask sits, in face heights (forehead to chin) of the upright face."""

    side_drop: float
    """How far below the top point the mask's side corners sit."""
    grow: float
    """How far the bottom edge is pushed out from the face centre (fraction)."""
    chin_drop: float
    """How far the bottom edge goes below the chin."""
    lift: float
    """Height of the top edge's midpoint over the straight line from a corner to the top point."""


PLACEMENT_SHAPES = {
    "correct": Placement(side_drop=0.06, grow=0.05, chin_drop=0.07, lift=0.025),
    "below_nose": Placement(side_drop=0.03, grow=0.05, chin_drop=0.06, lift=0.0),
    "chin": Placement(side_drop=0.0, grow=0.06, chin_drop=0.06, lift=-0.01),
}


def _rotation(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s], [s, c]], np.float64)


def _bezier(a: np.ndarray, c: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    t = t[:, None]
    return (1 - t) ** 2 * a + 2 * (1 - t) * t * c + t**2 * b


def _resample(points: np.ndarray, n: int) -> np.ndarray:
    """``n`` points evenly spaced by arc length along a polyline."""
    steps = np.linalg.norm(np.diff(points, axis=0), axis=1)
    dist = np.concatenate([[0.0], np.cumsum(steps)])
    if dist[-1] <= 0:
        return np.repeat(points[:1], n, axis=0)
    at = np.linspace(0.0, dist[-1], n)
    return np.stack([np.interp(at, dist, points[:, 0]), np.interp(at, dist, points[:, 1])], axis=1)


def _cut_at_height(chain: np.ndarray, y: float) -> np.ndarray:
    """The part of a jaw chain (ear → chin, upright frame) below height ``y``, starting exactly at ``y``."""
    if y <= chain[0, 1]:
        return chain
    for i in range(len(chain) - 1):
        y0, y1 = chain[i, 1], chain[i + 1, 1]
        if y0 <= y <= y1 and y1 > y0:
            t = (y - y0) / (y1 - y0)
            start = chain[i] + t * (chain[i + 1] - chain[i])
            return np.concatenate([start[None], chain[i + 1 :]])
    return chain[-2:]


@dataclass(frozen=True)
class MaskShape:
    """A mask surface in image pixels: the top and bottom edges sampled at the same ``u`` positions."""

    top: np.ndarray
    """(GRID_U + 1)×2, left to right."""
    bottom: np.ndarray
    face_width: float
    face_height: float

    def outline(self) -> np.ndarray:
        return np.concatenate([self.top, self.bottom[::-1]])


def mask_shape(landmarks: FaceLandmarks, placement: str, style: str = "surgical") -> MaskShape:
    """The mask surface for a face and placement; built in the upright face frame, then turned back."""
    if placement not in PLACEMENT_SHAPES:
        raise InputError(f"unknown placement {placement!r}; choose one of {', '.join(PLACEMENTS)}")
    shape = PLACEMENT_SHAPES[placement]
    pts = landmarks.points[:, :2].astype(np.float64)
    eye_a, eye_b = pts[EYE_A], pts[EYE_B]
    roll = math.atan2(eye_b[1] - eye_a[1], eye_b[0] - eye_a[0])
    centre = pts[list(LEFT_JAW) + list(RIGHT_JAW)].mean(axis=0)
    to_upright, to_image = _rotation(-roll), _rotation(roll)
    up = (pts - centre) @ to_upright.T
    face_h = max(1.0, up[CHIN, 1] - up[FOREHEAD, 1])
    face_w = max(1.0, up[RIGHT_JAW[0], 0] - up[LEFT_JAW[0], 0])

    if placement == "correct":
        apex = up[NOSE_BRIDGE_MID].copy()
    elif placement == "below_nose":
        apex = up[SUBNASALE] + 0.4 * (up[UPPER_LIP] - up[SUBNASALE])
        apex[1] = max(apex[1], up[NOSE_TIP, 1] + 0.02 * face_h)
    else:
        apex = up[LOWER_LIP] + 0.2 * (up[CHIN] - up[LOWER_LIP])
    side_y = apex[1] + shape.side_drop * face_h
    grow = shape.grow + (0.02 if style == "n95" else 0.0)
    halves = []
    for chain_ids in (LEFT_JAW, RIGHT_JAW):
        chain = _cut_at_height(up[list(chain_ids)], side_y)
        centre_up = np.array([apex[0], side_y])
        pushed = centre_up + (chain - centre_up) * (1.0 + grow)
        depth = np.clip((chain[:, 1] - side_y) / max(1.0, up[CHIN, 1] - side_y), 0.0, 1.0)
        pushed[:, 1] += shape.chin_drop * face_h * depth**2
        pushed[0] = chain[0] + (chain[0] - centre_up) * grow * 0.5  # the corner stays at the face's edge
        halves.append(pushed)
    left_bottom, right_bottom = halves
    half = GRID_U // 2
    bottom = np.concatenate([_resample(left_bottom, half + 1), _resample(right_bottom[::-1], half + 1)[1:]])
    t = np.linspace(0.0, 1.0, half + 1)
    top_halves = []
    for corner in (left_bottom[0], right_bottom[0]):
        control = corner + 0.55 * (apex - corner)
        control[1] -= shape.lift * face_h * 2
        top_halves.append(_bezier(corner, control, apex, t))
    top = np.concatenate([top_halves[0], top_halves[1][::-1][1:]])
    top_img = top @ to_image.T + centre
    bottom_img = bottom @ to_image.T + centre
    return MaskShape(
        top=top_img.astype(np.float32), bottom=bottom_img.astype(np.float32), face_width=face_w, face_height=face_h
    )


# ----------------------------------------------------------------------------------------------- textures


def _hsv_colour(rng: np.random.Generator, hue: float | None = None, sat=(0.2, 0.9), val=(0.25, 0.95)) -> np.ndarray:
    """A BGR float colour in [0, 1] from a random hue, saturation and value."""
    h = rng.uniform(0, 180) if hue is None else hue
    hsv = np.uint8([[[h, rng.uniform(*sat) * 255, rng.uniform(*val) * 255]]])
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0].astype(np.float32) / 255.0


def _fabric_noise(rng: np.random.Generator, strength: float) -> np.ndarray:
    noise = rng.normal(0.0, 1.0, (TEXTURE_H, TEXTURE_W)).astype(np.float32)
    noise = cv2.GaussianBlur(noise, (0, 0), 0.8)
    return 1.0 + strength * noise / max(1e-6, float(noise.std()))


def make_texture(style: str, placement: str, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """A TEXTURE_H×TEXTURE_W BGR float texture in (u, v) mask coordinates, with a short description."""
    u = np.linspace(0.0, 1.0, TEXTURE_W, dtype=np.float32)[None, :]
    v = np.linspace(0.0, 1.0, TEXTURE_H, dtype=np.float32)[:, None]
    ones = np.ones((TEXTURE_H, TEXTURE_W, 1), np.float32)
    if style == "surgical":
        name, base = [
            ("blue", np.float32([0.86, 0.74, 0.52])),
            ("light blue", np.float32([0.93, 0.84, 0.68])),
            ("white", np.float32([0.93, 0.93, 0.92])),
            ("green", np.float32([0.70, 0.80, 0.60])),
            ("pink", np.float32([0.80, 0.72, 0.94])),
            ("black", np.float32([0.16, 0.16, 0.17])),
        ][int(rng.integers(6))]
        texture = ones * base
        pleats = int(rng.integers(2, 4))
        phase = (v * (pleats + 1) + rng.uniform(-0.08, 0.08)) % 1.0
        fold = 1.0 - 0.16 * np.exp(-((phase - 0.92) ** 2) / 0.002) + 0.06 * (phase - 0.5)  # dark crease, light rise
        if placement != "chin":
            fold = fold * (1.0 - 0.05 * np.exp(-((v - 0.03) ** 2) / 0.0008))  # bound top edge
        texture *= (fold * _fabric_noise(rng, 0.03))[..., None]
        border = (v < 0.05) | (v > 0.95)
        texture[np.broadcast_to(border, texture.shape[:2])] *= 0.94
        return np.clip(texture, 0, 1), f"surgical {name}, {pleats} pleats"
    if style == "n95":
        shade = float(rng.uniform(0.82, 0.96))
        base = np.float32([shade, shade, shade]) * np.float32([1.0, 1.0, rng.uniform(1.0, 1.05)])
        texture = ones * base * _fabric_noise(rng, 0.05)[..., None]
        seam = np.exp(-((u - 0.5) ** 2) / 0.0004)  # centre seam of a folded respirator
        inset = np.minimum(np.minimum(u, 1 - u) * 3.0, np.minimum(v, 1 - v))
        edge = np.exp(-((inset - 0.05) ** 2) / 0.0003)  # welded edge seam
        texture *= (1.0 - 0.12 * seam - 0.10 * edge)[..., None]
        described = "n95"
        if placement == "correct" or rng.random() < 0.5:
            clip = (np.abs(u - 0.5) < 0.09) & (v < 0.08)
            texture[np.broadcast_to(clip, texture.shape[:2])] = np.float32([0.70, 0.70, 0.72])
            described += ", nose clip"
        if rng.random() < 0.4:
            cx, cy, r = (0.3 if rng.random() < 0.5 else 0.7) * TEXTURE_W, 0.55 * TEXTURE_H, 0.09 * TEXTURE_W
            valve = np.float32([0.35, 0.35, 0.37]) if rng.random() < 0.5 else base * 0.85
            cv2.circle(texture, (int(cx), int(cy)), int(r), tuple(float(c) for c in valve), -1, cv2.LINE_AA)
            for k in range(-2, 3):
                y = int(cy + k * r * 0.35)
                cv2.line(texture, (int(cx - r * 0.6), y), (int(cx + r * 0.6), y), tuple(float(c) * 0.7 for c in valve))
            described += ", valve"
        return np.clip(texture, 0, 1), described
    if style == "cloth":
        main = _hsv_colour(rng)
        second = _hsv_colour(rng, val=(0.5, 1.0)) if rng.random() < 0.5 else np.float32([0.95, 0.95, 0.95])
        pattern = ["solid", "stripes", "dots", "checks", "diagonal"][int(rng.integers(5))]
        texture = ones * main
        if pattern == "stripes":
            period = rng.uniform(0.08, 0.2)
            on = ((v / period) % 1.0 < rng.uniform(0.3, 0.6)) & np.ones_like(u, bool)
            texture[on] = second
        elif pattern == "diagonal":
            period = rng.uniform(0.08, 0.18)
            on = (((u * 1.5 + v) / period) % 1.0) < 0.4
            texture[on] = second
        elif pattern == "checks":
            period = rng.uniform(0.08, 0.16)
            on = ((u * 1.5 / period).astype(int) + (v / period).astype(int)) % 2 == 0
            texture[on] = 0.6 * texture[on] + 0.4 * second
        elif pattern == "dots":
            spacing = int(rng.uniform(0.07, 0.14) * TEXTURE_H)
            radius = max(2, int(spacing * rng.uniform(0.15, 0.35)))
            for y in range(spacing // 2, TEXTURE_H, spacing):
                offset = spacing // 2 if (y // spacing) % 2 else 0
                for x in range(offset, TEXTURE_W, spacing):
                    cv2.circle(texture, (x, y), radius, tuple(float(c) for c in second), -1, cv2.LINE_AA)
        texture *= _fabric_noise(rng, 0.05)[..., None]
        texture *= (1.0 - 0.15 * np.exp(-((u - 0.5) ** 2) / 0.0003))[..., None]  # centre seam
        return np.clip(texture, 0, 1), f"cloth {pattern}"
    raise InputError(f"unknown mask style {style!r}; choose from {', '.join(STYLES)}")


def surface_shading(rng: np.random.Generator) -> np.ndarray:
    """Light on a surface curved around the face: bright where it faces a randomly placed light."""
    u = np.linspace(-1.0, 1.0, TEXTURE_W, dtype=np.float32)[None, :]
    v = np.linspace(0.0, 1.0, TEXTURE_H, dtype=np.float32)[:, None]
    light = rng.uniform(-0.5, 0.5)
    across = np.cos(np.clip((u - light) * 1.2, -1.5, 1.5))  # a cylinder seen from the front
    down = 1.0 - 0.18 * v**2  # under the chin is darker
    ambient = rng.uniform(0.45, 0.6)
    return (ambient + (1 - ambient) * across * down).astype(np.float32)


# ----------------------------------------------------------------------------------------------- rendering


def _warp_surface(texture: np.ndarray, shape: MaskShape, offset: np.ndarray, size: tuple[int, int]):
    """Map a (u, v) texture onto the mask surface; returns the layer and its coverage (0/1), ``size`` = (h, w).

    The surface point at (u, v) is ``(1 - v)·top(u) + v·bottom(u)``. Sampling (u, v) at under half a pixel
    per step and writing each sample's texture coordinates into the pixel it lands on gives a dense inverse
    map for ``cv2.remap`` in a few vectorised steps.
    """
    h, w = size
    top, bottom = shape.top - offset, shape.bottom - offset
    length = max(
        float(np.linalg.norm(np.diff(top, axis=0), axis=1).sum()),
        float(np.linalg.norm(np.diff(bottom, axis=0), axis=1).sum()),
    )
    gap = float(np.linalg.norm(bottom - top, axis=1).max())
    n_u, n_v = int(2.2 * length) + 2, int(2.2 * gap) + 2
    knots = np.linspace(0.0, 1.0, len(top))
    u = np.linspace(0.0, 1.0, n_u, dtype=np.float32)
    v = np.linspace(0.0, 1.0, n_v, dtype=np.float32)[:, None]
    top_u = np.stack([np.interp(u, knots, top[:, 0]), np.interp(u, knots, top[:, 1])], axis=1).astype(np.float32)
    bottom_u = np.stack([np.interp(u, knots, bottom[:, 0]), np.interp(u, knots, bottom[:, 1])], axis=1).astype(
        np.float32
    )
    xs = np.rint((1 - v) * top_u[None, :, 0] + v * bottom_u[None, :, 0]).astype(np.int32)
    ys = np.rint((1 - v) * top_u[None, :, 1] + v * bottom_u[None, :, 1]).astype(np.int32)
    inside = (xs >= 0) & (xs < w) & (ys >= 0) & (ys < h)
    map_x = np.full((h, w), -1.0, np.float32)
    map_y = np.full((h, w), -1.0, np.float32)
    uu = np.broadcast_to(u[None, :] * (TEXTURE_W - 1), xs.shape)
    vv = np.broadcast_to(v * (TEXTURE_H - 1), xs.shape)
    map_x[ys[inside], xs[inside]] = uu[inside]
    map_y[ys[inside], xs[inside]] = vv[inside]
    cover = (map_x >= 0).astype(np.float32)
    layer = cv2.remap(texture, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return layer * cover[..., None], cover


def _skin_tone(image_bgr: np.ndarray, landmarks: FaceLandmarks) -> np.ndarray:
    """Mean BGR colour (0–1) of small patches at cheek and nose landmarks."""
    h, w = image_bgr.shape[:2]
    patches = []
    radius = max(1, int(round(0.02 * max(h, w))))
    for x, y in landmarks.xy(*SKIN_SAMPLES):
        xi, yi = int(round(x)), int(round(y))
        if 0 <= xi < w and 0 <= yi < h:
            patch = image_bgr[max(0, yi - radius) : yi + radius + 1, max(0, xi - radius) : xi + radius + 1]
            patches.append(patch.reshape(-1, 3).mean(axis=0))
    if not patches:
        return np.float32([0.55, 0.6, 0.7])
    return (np.median(patches, axis=0) / 255.0).astype(np.float32)


def _noise_level(image_bgr: np.ndarray) -> float:
    """Robust estimate of the photo's pixel noise (grey levels, 0–255)."""
    grey = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY).astype(np.float32)
    residual = grey - cv2.GaussianBlur(grey, (0, 0), 1.0)
    return float(np.median(np.abs(residual)) / 0.6745)


@dataclass(frozen=True)
class Rendered:
    image: np.ndarray
    """The photo with the mask (BGR uint8)."""
    alpha: np.ndarray
    """How much of each pixel is mask (0–1): where the image changed."""
    details: str
    """The style's drawn details, e.g. 'cloth dots' or 'n95, nose clip'."""


def render_mask(
    image_bgr: np.ndarray, landmarks: FaceLandmarks, placement: str, style: str, rng: np.random.Generator
) -> Rendered:
    """Draw one mask of ``style`` at ``placement`` on a copy of the photo."""
    shape = mask_shape(landmarks, placement, style)
    texture, described = make_texture(style, placement, rng)
    texture *= surface_shading(rng)[..., None]
    h, w = image_bgr.shape[:2]
    face_px = shape.face_width
    # all work happens in the region around the mask (with room for ear loops and shadow)
    outline = shape.outline()
    margin = 0.25 * face_px + 4
    x0, y0 = (max(0, int(v)) for v in np.floor(outline.min(axis=0) - margin))
    x1, y1 = int(min(w, np.ceil(outline[:, 0].max() + margin))), int(min(h, np.ceil(outline[:, 1].max() + margin)))
    result = image_bgr.copy()
    full_alpha = np.zeros((h, w), np.float32)
    if x1 <= x0 or y1 <= y0:
        return Rendered(image=result, alpha=full_alpha, details=described)
    offset = np.float32([x0, y0])
    rh, rw = y1 - y0, x1 - x0
    layer, cover = _warp_surface(texture, shape, offset, (rh, rw))
    # ear loops from the mask's corners towards the ears
    loops = np.zeros((rh, rw), np.float32)
    thickness = max(1, int(round(face_px / 90)))
    if style != "n95" or rng.random() < 0.5:
        for side, top_corner, bottom_near in (
            (-1, shape.top[0], shape.bottom[:3]),
            (1, shape.top[-1], shape.bottom[-3:][::-1]),
        ):
            ear = top_corner + np.float32([side * 0.08 * face_px, -0.05 * face_px]) - offset
            low = bottom_near[0] + 0.5 * (bottom_near[2] - bottom_near[0]) - offset
            for start in (top_corner - offset, low):
                a, b = tuple(np.round(start).astype(int)), tuple(np.round(ear).astype(int))
                cv2.line(loops, a, b, 1.0, thickness, cv2.LINE_AA)
    loop_colour = texture[TEXTURE_H // 2, 2] * 1.05
    loops *= 1.0 - cover
    # exposure and colour cast of the photo: a mask in a dark photo is dark, under warm light warm
    skin = _skin_tone(image_bgr, landmarks)
    exposure = float(np.clip(skin.mean() / 0.55, 0.35, 1.25))
    cast = skin / max(1e-3, float(skin.mean()))
    cast = 1.0 + 0.35 * (np.clip(cast, 0.6, 1.6) - 1.0)
    layer = layer * exposure * cast
    loop_rgb = np.clip(loop_colour * exposure * cast, 0, 1)
    # blur as much as the photo's own optics would, then add its noise
    sigma = 0.35 + face_px / 450.0
    layer = cv2.GaussianBlur(layer, (0, 0), sigma)
    cover_blurred = cv2.GaussianBlur(cover, (0, 0), sigma)
    layer = np.where(cover_blurred[..., None] > 1e-3, layer / np.maximum(cover_blurred[..., None], 1e-3), 0)
    roi = image_bgr[y0:y1, x0:x1]
    noise = _noise_level(roi) / 255.0
    if noise > 0:
        layer += rng.normal(0.0, noise, layer.shape).astype(np.float32)
    alpha = np.clip(cv2.GaussianBlur(cover, (0, 0), 0.5 + face_px / 300.0) * 1.1, 0.0, 1.0)
    loop_alpha = np.clip(cv2.GaussianBlur(loops, (0, 0), 0.5) * 0.85, 0, 1)
    # soft contact shadow on the skin just outside the mask
    shadow = np.clip(cv2.GaussianBlur(cover, (0, 0), 1.0 + face_px / 60.0) - cover, 0.0, 1.0) * 0.25
    out = roi.astype(np.float32) / 255.0 * (1.0 - shadow[..., None])
    out = out * (1.0 - loop_alpha[..., None]) + loop_rgb * loop_alpha[..., None]
    out = out * (1.0 - alpha[..., None]) + np.clip(layer, 0, 1) * alpha[..., None]
    result[y0:y1, x0:x1] = np.clip(out * 255.0 + 0.5, 0, 255).astype(np.uint8)
    full_alpha[y0:y1, x0:x1] = np.maximum(alpha, loop_alpha)
    return Rendered(image=result, alpha=full_alpha, details=described)


# ----------------------------------------------------------------------------------------------- datasets


def find_landmarks(image_bgr: np.ndarray, detector, mesh: FaceMesh) -> FaceLandmarks | None:
    """Landmarks of the largest face, or None; tight face crops are padded so the detector sees a whole head."""
    h, w = image_bgr.shape[:2]
    detections = detector.detect(image_bgr)
    pad = 0
    work = image_bgr
    if not detections:
        pad = int(0.3 * max(h, w))
        work = cv2.copyMakeBorder(image_bgr, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        detections = detector.detect(work)
    if not detections:  # a crop that is all face: let the mesh judge the whole image
        detections = [Detection((float(pad), float(pad), float(pad + w), float(pad + h)), 0.0)]
    best = max(detections, key=lambda d: (d.box[2] - d.box[0]) * (d.box[3] - d.box[1]))
    found = mesh.landmarks(work, best)
    if found is None:
        return None
    if pad:
        points = found.points.copy()
        points[:, :2] -= pad
        found = FaceLandmarks(points=points, score=found.score)
    return found


def output_seed(seed: int, source: str, placement: str, k: int) -> int:
    """A 31-bit seed for one output, independent of the order in which sources are processed."""
    return zlib.crc32(f"{seed}:{source}:{placement}:{k}".encode()) & 0x7FFFFFFF


@dataclass
class SynthSummary:
    out_dir: Path
    sources: int = 0
    written: list[Path] = field(default_factory=list)
    by_class: Counter = field(default_factory=Counter)
    no_landmarks: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    copied: int = 0
    already: int = 0
    """Outputs a run before made (their seeds are in synth.csv): a rerun adds no byte-identical copies."""
    interrupted: bool = False


def list_images(folder: Path) -> list[Path]:
    if not folder.exists():
        raise InputError(f"{folder}: no such folder")
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder of face images")
    images = sorted(p for p in folder.rglob("*") if p.is_file() and is_image_path(p) and not p.name.startswith("."))
    if not images:
        raise InputError(f"{folder}: no images found")
    return images


def recorded_seeds(csv_path: Path) -> set[tuple[str, int]]:
    """(source file, seed) of each output an earlier run recorded in ``synth.csv``."""
    try:
        with csv_path.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        return {
            (str(Path(row["source"]).resolve()), int(row["seed"]))
            for row in rows
            if row.get("source") and (row.get("seed") or "").isdigit()
        }
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{csv_path}: cannot read the provenance of earlier runs ({exc})") from None


def _next_free(folder: Path, stem: str, placement: str) -> Path:
    n = 1
    while True:
        path = folder / f"{stem}__synth-{placement}-{n}.jpg"
        if not path.exists():
            return path
        n += 1


def synthesize(
    source_dir: str | Path,
    out_dir: str | Path,
    correct: int = 1,
    incorrect: int = 1,
    seed: int = 0,
    styles: Iterable[str] = STYLES,
    limit: int | None = None,
    copy_originals: bool = False,
    detector=None,
    mesh: FaceMesh | None = None,
    progress: Callable[[int, int, SynthSummary], None] | None = None,
) -> SynthSummary:
    """Make ``correct`` correctly and ``incorrect`` wrongly masked versions of every face in ``source_dir``.

    Outputs go to ``out_dir/with_mask`` and ``out_dir/incorrect_mask`` (never overwriting a file) and are
    appended to ``out_dir/synth.csv``. Sources without landmarks are skipped and listed; if no source has
    any, ``InputError``. Ctrl-C stops with every written image complete and recorded.
    """
    from maskwatch.data.collect import write_new_image

    source_dir, out_dir = Path(source_dir), Path(out_dir)
    styles = tuple(styles)
    unknown = [s for s in styles if s not in STYLES]
    if unknown or not styles:
        raise InputError(f"unknown mask style {', '.join(unknown) or '(none)'}; choose from {', '.join(STYLES)}")
    if correct < 0 or incorrect < 0 or correct + incorrect == 0:
        raise InputError("ask for at least one output per face (--correct and --incorrect are both 0)")
    images = list_images(source_dir)
    if limit:
        images = images[:limit]
    folders = {name: out_dir / name for name in ("with_mask", "incorrect_mask")}
    if copy_originals:
        folders["without_mask"] = out_dir / "without_mask"
    try:
        for folder in folders.values():
            folder.mkdir(parents=True, exist_ok=True)
        csv_path = out_dir / CSV_NAME
        new_csv = not csv_path.exists()
        csv_file = csv_path.open("a", newline="", encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{out_dir}: output folder is not writable ({exc.strerror or exc})") from None
    if detector is None:
        from maskwatch.detectors import DEFAULT_DETECTOR, create_detector

        detector = create_detector(DEFAULT_DETECTOR)
    mesh = mesh or FaceMesh()
    summary = SynthSummary(out_dir=out_dir)
    made = set() if new_csv else recorded_seeds(csv_path)
    writer = csv.writer(csv_file, lineterminator="\n")
    if new_csv:
        writer.writerow(CSV_COLUMNS)
    try:
        for index, path in enumerate(images):
            rel = path.relative_to(source_dir).as_posix()
            summary.sources += 1
            jobs = [("correct", k) for k in range(correct)] + [("incorrect", k) for k in range(incorrect)]
            source_key = str(path.resolve())
            todo = [(kind, k) for kind, k in jobs if (source_key, output_seed(seed, rel, kind, k)) not in made]
            summary.already += len(jobs) - len(todo)
            original_wanted = copy_originals and not (folders["without_mask"] / path.name).exists()
            if not todo and not original_wanted:  # all made by an earlier run of this source with this seed
                if progress is not None:
                    progress(index + 1, len(images), summary)
                continue
            try:
                image = read_image(path)
            except InputError as exc:
                summary.unreadable.append(str(exc))
                continue
            landmarks = find_landmarks(image, detector, mesh)
            if landmarks is None:
                summary.no_landmarks.append(rel)
            else:
                if copy_originals and not (folders["without_mask"] / path.name).exists():
                    shutil.copy2(path, folders["without_mask"] / path.name)
                    summary.copied += 1
                for kind, k in todo:
                    out_seed = output_seed(seed, rel, kind, k)
                    choose = np.random.default_rng([out_seed, 1])
                    placement = "correct" if kind == "correct" else INCORRECT_PLACEMENTS[int(choose.integers(2))]
                    style = styles[int(choose.integers(len(styles)))]
                    rendered = render_mask(image, landmarks, placement, style, np.random.default_rng(out_seed))
                    folder = folders[CLASS_OF_PLACEMENT[placement]]
                    while True:
                        target = _next_free(folder, path.stem, placement)
                        if write_new_image(target, rendered.image):
                            break
                    writer.writerow(
                        [
                            target.relative_to(out_dir).as_posix(),
                            str(path),
                            style,
                            placement,
                            out_seed,
                            rendered.details,
                        ]
                    )
                    csv_file.flush()
                    summary.written.append(target)
                    summary.by_class[CLASS_OF_PLACEMENT[placement]] += 1
            if progress is not None:
                progress(index + 1, len(images), summary)
    except KeyboardInterrupt:
        summary.interrupted = True
    finally:
        csv_file.close()
        if not summary.written and new_csv:
            _remove_empty_outputs(csv_path, folders.values(), out_dir)
    if not summary.written and not summary.interrupted and not summary.already:
        what = f"{len(summary.no_landmarks)} of {len(images)} image(s) had no face landmarks"
        if summary.unreadable:
            what += f", {len(summary.unreadable)} unreadable"
        raise InputError(f"{source_dir}: no face landmarks found in any image ({what})")
    return summary


def _remove_empty_outputs(csv_path: Path, folders: Iterable[Path], out_dir: Path) -> None:
    """Undo a run that wrote nothing: the header-only CSV and the folders it created, if empty."""
    csv_path.unlink(missing_ok=True)
    for folder in [*folders, out_dir]:
        with contextlib.suppress(OSError):
            folder.rmdir()


def contact_sheet(out_dir: str | Path, files: Iterable[Path], max_sources: int = 8, cell: int = 144) -> np.ndarray:
    """A grid image (BGR) of synthetic outputs: one row per source face, the source first, then its masks.

    ``files`` are outputs under ``out_dir`` (e.g. ``SynthSummary.written``); their sources come from
    ``synth.csv``. Each cell is captioned with its placement (``correct`` is with_mask, the others
    incorrect_mask) and style.
    """
    out_dir = Path(out_dir)
    wanted = {Path(f).resolve() for f in files}
    with (out_dir / CSV_NAME).open(newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if (out_dir / r["file"]).resolve() in wanted]
    by_source: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        if row["source"] in by_source or len(by_source) < max_sources:
            by_source.setdefault(row["source"], []).append(row)
    if not by_source:
        raise InputError(f"{out_dir}: no synthetic images to put on a contact sheet")
    columns = 1 + max(len(v) for v in by_source.values())

    def tile(image: np.ndarray | None, caption: str) -> np.ndarray:
        canvas = np.full((cell, cell, 3), 245, np.uint8)
        if image is not None:
            h, w = image.shape[:2]
            scale = cell / max(h, w)
            small = cv2.resize(
                image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA
            )
            y, x = (cell - small.shape[0]) // 2, (cell - small.shape[1]) // 2
            canvas[y : y + small.shape[0], x : x + small.shape[1]] = small
        if caption:
            cv2.rectangle(canvas, (0, cell - 16), (cell, cell), (40, 40, 40), -1)
            cv2.putText(canvas, caption, (4, cell - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
        return canvas

    lines = []
    for source, items in by_source.items():
        tiles = [tile(cv2.imread(source), "source")]
        for row in items:
            caption = f"{row['placement'].replace('_', ' ')} - {row['style']}"
            tiles.append(tile(cv2.imread(str(out_dir / row["file"])), caption))
        tiles += [tile(None, "")] * (columns - len(tiles))
        lines.append(np.concatenate(tiles, axis=1))
    return np.concatenate(lines, axis=0)
