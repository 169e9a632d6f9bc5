"""Tiling for small faces: run a detector on the whole frame and on zoomed, overlapping tiles.

BlazeFace sees every frame shrunk to 256 px, so a 14-px face in a 512-px crowd
photo becomes 7 px and vanishes. Cutting the frame into overlapping tiles that
are each blown up to the detector's input lets it see those faces at two to
three times the size; the whole-frame pass still finds the large faces a tile
would cut in half. Detections from all passes are merged by weighted NMS.

192-px tiles were chosen on the scenes TRAIN half (docs/results-log.md): same
recall as 128-px tiles at half the false positives and half the time; requiring
0.6 for faces seen only in a tile cuts false positives by a third more. Tiling
costs one BlazeFace pass per tile (13 for 640×480), so it is meant for photos
and offline video, not for the 60-fps live path.
"""

from __future__ import annotations

import numpy as np

from maskwatch.detectors.base import (
    FaceDetector,
    create_detector,
    detector_version,
    fingerprint,
    register_detector,
)
from maskwatch.faces import Detection
from maskwatch.inference.boxes import inside_larger, weighted_nms

EDGE = 2.0
"""A box within this many pixels of a tile edge that is not a frame edge is a cut face: dropped."""


def tile_origins(length: int, tile: int, overlap: float) -> list[int]:
    """Start offsets of tiles of ``tile`` px covering ``length`` px with at least ``overlap`` shared."""
    if length <= tile:
        return [0]
    step = max(1, int(tile * (1.0 - overlap)))
    count = int(np.ceil((length - tile) / step)) + 1
    starts = np.linspace(0, length - tile, count)
    return sorted({int(round(s)) for s in starts})


class TiledDetector:
    """Whole-frame pass plus tile passes of a base detector, merged by weighted NMS.

    ``tiles`` are tile sides in frame pixels (each tile is resized to the base
    detector's input); ``tile_min_score`` is a stricter score for faces found only
    in a zoomed tile (zoomed clutter fools BlazeFace more often); ``max_tiles`` keeps
    large frames affordable by growing the tiles so that no pass has more than
    ``max_tiles`` tiles.
    """

    def __init__(
        self,
        base: str = "blazeface",
        tiles: tuple[int, ...] = (192,),
        overlap: float = 0.3,
        min_score: float = 0.5,
        nms_iou: float = 0.3,
        max_tiles: int = 48,
        box_scale: tuple[float, float] = (1.0, 1.0),
        tile_min_score: float | None = 0.6,
        threads: int | None = None,
    ) -> None:
        self.base: FaceDetector = create_detector(base, min_score=min_score, threads=threads)
        self.name = f"{self.base.name}-tiled"
        self.tiles = tuple(tiles)
        self.overlap = overlap
        self.nms_iou = nms_iou
        self.max_tiles = max_tiles
        self.box_scale = box_scale
        self.tile_min_score = min_score if tile_min_score is None else max(min_score, tile_min_score)
        settings = f"{self.tiles}-{overlap:g}-{nms_iou:g}-{max_tiles}-{box_scale}-{self.tile_min_score:g}"
        self.version = fingerprint(detector_version(self.base), settings)

    def detect(self, image_bgr: np.ndarray) -> list[Detection]:
        h, w = image_bgr.shape[:2]
        found = list(self.base.detect(image_bgr))
        whole = np.array([d.box for d in found], np.float32).reshape(-1, 4)
        for tile in self.tiles:
            tile = self._affordable(tile, w, h)
            if tile >= max(w, h):
                continue  # the whole-frame pass already saw the frame at this scale or larger
            for y0 in tile_origins(h, tile, self.overlap):
                for x0 in tile_origins(w, tile, self.overlap):
                    patch = image_bgr[y0 : y0 + tile, x0 : x0 + tile]
                    ph, pw = patch.shape[:2]
                    for d in self.base.detect(patch):
                        if d.score < self.tile_min_score:
                            continue
                        if cut_by_tile_edge(d.box, pw, ph, x0 > 0, y0 > 0, x0 + pw < w, y0 + ph < h):
                            continue
                        x1, y1, x2, y2 = d.box
                        if inside_larger((x1 + x0, y1 + y0, x2 + x0, y2 + y0), whole):
                            continue
                        found.append(
                            Detection(
                                (x1 + x0, y1 + y0, x2 + x0, y2 + y0),
                                d.score,
                                tuple((px + x0, py + y0) for px, py in d.keypoints),
                            )
                        )
        return self._merge(found, w, h)

    def _affordable(self, tile: int, w: int, h: int) -> int:
        """Grow the tile until one pass needs at most ``max_tiles`` tiles."""
        while len(tile_origins(w, tile, self.overlap)) * len(tile_origins(h, tile, self.overlap)) > self.max_tiles:
            tile = int(tile * 1.25) + 1
        return tile

    def _merge(self, found: list[Detection], w: int, h: int) -> list[Detection]:
        if not found:
            return []
        boxes = np.array([d.box for d in found], np.float32)
        scores = np.array([d.score for d in found], np.float32)
        n_points = min(len(d.keypoints) for d in found)
        points = np.array([[c for p in d.keypoints[:n_points] for c in p] for d in found], np.float32)
        boxes, scores, points = weighted_nms(boxes, scores, self.nms_iou, points if n_points else None)
        sx, sy = self.box_scale
        out = []
        for i, (box, score) in enumerate(zip(boxes, scores)):
            cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
            hw, hh = (box[2] - box[0]) * sx / 2, (box[3] - box[1]) * sy / 2
            x1, y1, x2, y2 = max(0.0, cx - hw), max(0.0, cy - hh), min(float(w), cx + hw), min(float(h), cy + hh)
            if x2 <= x1 or y2 <= y1:
                continue
            kp = () if points is None else tuple((float(x), float(y)) for x, y in points[i].reshape(-1, 2))
            out.append(Detection((float(x1), float(y1), float(x2), float(y2)), float(score), kp))
        return out


def cut_by_tile_edge(
    box: tuple[float, ...], pw: int, ph: int, left: bool, top: bool, right: bool, bottom: bool
) -> bool:
    """Whether a box touches a tile edge that lies inside the frame (the face is likely cut there)."""
    x1, y1, x2, y2 = box
    return (left and x1 <= EDGE) or (top and y1 <= EDGE) or (right and x2 >= pw - EDGE) or (bottom and y2 >= ph - EDGE)


register_detector("blazeface-tiled", lambda **kw: TiledDetector("blazeface", **kw))
