"""Where a mask sits on a face: placements and the mask surface spanned between two edges, from landmarks."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from maskwatch.errors import InputError
from maskwatch.inference.landmarks import CHIN, LOWER_LIP, NOSE_TIP, SUBNASALE, UPPER_LIP, FaceLandmarks

PLACEMENTS = ("correct", "below_nose", "chin")
INCORRECT_PLACEMENTS = ("below_nose", "chin")
CLASS_OF_PLACEMENT = {"correct": "with_mask", "below_nose": "incorrect_mask", "chin": "incorrect_mask"}
STYLES = ("surgical", "cloth", "n95")

LEFT_JAW = (234, 93, 132, 58, 172, 136, 150, 149, 176, 148, CHIN)
"""Face-oval landmarks from the ear on the image's left down to the chin."""
RIGHT_JAW = (454, 323, 361, 288, 397, 365, 379, 378, 400, 377, CHIN)
FOREHEAD = 10
NOSE_BRIDGE_MID = 197
EYE_A, EYE_B = 33, 263
SKIN_SAMPLES = (50, 280, 4, 5, 195, 101, 330)
"""Cheek and nose landmarks whose colour stands for the face's exposure and colour cast."""

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
