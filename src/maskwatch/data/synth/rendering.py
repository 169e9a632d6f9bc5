"""Drawing a mask onto a photo: the texture mapped onto the surface, matched to the photo and blended in."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from maskwatch.data.synth.geometry import SKIN_SAMPLES, MaskShape, mask_shape
from maskwatch.data.synth.textures import TEXTURE_H, TEXTURE_W, make_texture, surface_shading
from maskwatch.inference.landmarks import FaceLandmarks


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
