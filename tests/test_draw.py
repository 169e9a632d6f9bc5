"""Server-drawn annotations: the number on a box and where its caption goes."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from maskwatch.faces import Face
from maskwatch.media.draw import annotate, colour_for, face_caption


def _face(box, score=0.9, detection_score=0.5, track_id=None) -> Face:
    probs = {"with_mask": score, "without_mask": 1 - score}
    return Face(box=box, label="with_mask", score=score, detection_score=detection_score, probabilities=probs,
                track_id=track_id)


def test_the_number_is_face_score_times_class_probability():
    assert face_caption(_face((0, 0, 10, 10), score=1.0, detection_score=0.3)) == "with_mask 0.30"
    assert face_caption(_face((0, 0, 10, 10), score=0.8, detection_score=0.9, track_id=4)) == "#4 with_mask 0.72"


@pytest.mark.parametrize("box", [(90, 50, 119, 79), (0, 0, 30, 30), (95, 0, 119, 20), (5, 3, 60, 79)])
def test_a_caption_at_the_edge_stays_whole_inside_the_picture(box):
    image = np.zeros((80, 120, 3), np.uint8)
    face = _face(box)
    out = annotate(image, [face])
    filled = np.all(out == colour_for(face.label), axis=2)
    rows = np.flatnonzero(filled.sum(axis=1) > 10)  # the caption's filled band, not the box's thin lines
    band = filled[rows[0] : rows[-1] + 1]
    cols = np.flatnonzero(band.any(axis=0))
    font_scale = max(0.4, 120 / 1400)
    (tw, _), _ = cv2.getTextSize(face_caption(face), cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)
    assert cols[0] >= 0 and cols[-1] <= 119
    assert cols[-1] - cols[0] + 1 >= tw + 4  # the whole caption's background is drawn, none cut off
