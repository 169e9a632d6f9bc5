"""Annotated frames: a box per face coloured by class, with label, score and track id."""

from __future__ import annotations

import cv2
import numpy as np

from maskwatch.faces import TOO_SMALL, Face

_KNOWN_COLOURS = {  # BGR
    "with_mask": (60, 180, 75),
    "without_mask": (40, 40, 230),
    "incorrect_mask": (0, 150, 255),
    TOO_SMALL: (160, 160, 160),
}
_PALETTE = [(200, 130, 0), (180, 30, 145), (60, 200, 240), (128, 128, 0), (75, 25, 230), (255, 190, 0)]


def colour_for(label: str) -> tuple[int, int, int]:
    """A stable colour per class: the usual three are fixed, others hash into a palette."""
    if label in _KNOWN_COLOURS:
        return _KNOWN_COLOURS[label]
    return _PALETTE[sum(label.encode()) % len(_PALETTE)]


def face_caption(face: Face) -> str:
    """Class and combined confidence (face score x class probability): a false face reads low, not 1.00."""
    text = face.label if face.label == TOO_SMALL else f"{face.label} {face.detection_score * face.score:.2f}"
    return f"#{face.track_id} {text}" if face.track_id is not None else text


def annotate(image_bgr: np.ndarray, faces: list[Face]) -> np.ndarray:
    """A copy of the frame with every face drawn on it."""
    out = image_bgr.copy()
    thickness = max(1, round(max(out.shape[:2]) / 400))
    font_scale = max(0.4, max(out.shape[:2]) / 1400)
    for face in faces:
        colour = colour_for(face.label)
        x1, y1, x2, y2 = (round(v) for v in face.box)
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, thickness)
        caption = face_caption(face)
        (tw, th), baseline = cv2.getTextSize(caption, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)
        top = y1 - th - baseline - 2 if y1 - th - baseline - 2 >= 0 else y2
        top = min(top, out.shape[0] - th - baseline - 2)  # below a box at the bottom edge: inside the box instead
        x1 = max(0, min(x1, out.shape[1] - tw - 4))  # the caption stays inside the picture
        cv2.rectangle(out, (x1, top), (x1 + tw + 4, top + th + baseline + 2), colour, -1)
        cv2.putText(
            out, caption, (x1 + 2, top + th + 1), cv2.FONT_HERSHEY_SIMPLEX, font_scale, (255, 255, 255), 1, cv2.LINE_AA
        )
    return out


def blur_faces(image_bgr: np.ndarray, faces: list[Face]) -> np.ndarray:
    """A copy with every face box pixelated beyond recognition (coarse blocks, then smoothed)."""
    out = image_bgr.copy()
    h, w = out.shape[:2]
    for face in faces:
        x1, y1, x2, y2 = (int(round(v)) for v in face.box)
        x1, y1, x2, y2 = max(0, x1), max(0, y1), min(w, x2), min(h, y2)
        if x2 - x1 < 2 or y2 - y1 < 2:
            continue
        region = out[y1:y2, x1:x2]
        small = cv2.resize(region, (max(1, (x2 - x1) // 12), max(1, (y2 - y1) // 12)), interpolation=cv2.INTER_AREA)
        out[y1:y2, x1:x2] = cv2.GaussianBlur(
            cv2.resize(small, (x2 - x1, y2 - y1), interpolation=cv2.INTER_NEAREST), (0, 0), max(1.0, (x2 - x1) / 20)
        )
    return out
