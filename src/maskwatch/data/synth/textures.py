"""Mask textures in the surface's (u, v) coordinates (pleats, cloth patterns, an N95-like cup) and their shading."""

from __future__ import annotations

import cv2
import numpy as np

from maskwatch.data.synth.geometry import STYLES
from maskwatch.errors import InputError

TEXTURE_W, TEXTURE_H = 240, 160


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
