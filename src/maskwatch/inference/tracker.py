"""Face tracks across frames: stable ids, smoothed classes, unique people per class.

Greedy IoU matching keeps the stage dependency-free; each face is matched against a track's last box and
against where the track's own motion puts it now, so a face crossing the frame fast (or a low frame rate)
keeps its id. The class of a track is the mean of its last ``window`` probability vectors so labels do
not flicker.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field

import numpy as np

from maskwatch.faces import TOO_SMALL, Face
from maskwatch.inference.boxes import iou_matrix


@dataclass
class Track:
    track_id: int
    box: tuple[float, float, float, float]
    last_frame: int
    hits: int = 0
    history: deque = field(default_factory=deque)
    votes: Counter = field(default_factory=Counter)
    velocity: tuple[float, float] = (0.0, 0.0)
    """Centre motion in pixels per frame, from the track's last two matches (smoothed)."""

    def predicted(self, frame_index: int) -> tuple[float, float, float, float]:
        """The last box moved on by the track's velocity to ``frame_index``."""
        steps = frame_index - self.last_frame
        dx, dy = self.velocity[0] * steps, self.velocity[1] * steps
        x1, y1, x2, y2 = self.box
        return (x1 + dx, y1 + dy, x2 + dx, y2 + dy)

    def move_to(self, box: tuple[float, float, float, float], frame_index: int) -> None:
        if self.hits:
            steps = max(1, frame_index - self.last_frame)
            vx = ((box[0] + box[2]) - (self.box[0] + self.box[2])) / 2 / steps
            vy = ((box[1] + box[3]) - (self.box[1] + self.box[3])) / 2 / steps
            self.velocity = (vx, vy) if self.hits == 1 else ((self.velocity[0] + vx) / 2, (self.velocity[1] + vy) / 2)
        self.box, self.last_frame = box, frame_index
        self.hits += 1


class FaceTracker:
    """Assigns track ids to each frame's faces and smooths their classes."""

    def __init__(
        self, classes: list[str], iou_threshold: float = 0.3, max_age: int = 15, window: int = 8, min_hits: int = 3
    ) -> None:
        self.classes = classes
        self.iou_threshold = iou_threshold
        self.max_age = max_age
        self.window = window
        self.min_hits = min_hits
        self.tracks: list[Track] = []
        self.finished: list[Track] = []
        self.next_id = 1

    def update(self, faces: list[Face], frame_index: int) -> list[Face]:
        """Faces of this frame with track ids and smoothed labels, in the same order."""
        self._retire(frame_index)
        boxes = np.array([f.box for f in faces], np.float32).reshape(-1, 4)
        last = np.array([t.box for t in self.tracks], np.float32).reshape(-1, 4)
        moved = np.array([t.predicted(frame_index) for t in self.tracks], np.float32).reshape(-1, 4)
        overlaps = np.maximum(iou_matrix(boxes, last), iou_matrix(boxes, moved))
        assigned: dict[int, Track] = {}
        used: set[int] = set()
        for flat in np.argsort(-overlaps, axis=None):
            i, j = divmod(int(flat), max(1, len(self.tracks)))
            if overlaps.size == 0 or overlaps[i, j] < self.iou_threshold:
                break
            if i in assigned or j in used:
                continue
            assigned[i] = self.tracks[j]
            used.add(j)
        out = []
        for i, face in enumerate(faces):
            track = assigned.get(i) or self._new_track(face, frame_index)
            track.move_to(face.box, frame_index)
            out.append(self._smooth(face, track))
        return out

    def people_per_class(self) -> dict[str, int]:
        """Unique people per class: tracks seen at least ``min_hits`` times, by their majority label."""
        counts: Counter = Counter()
        for track in self.finished + self.tracks:
            if track.hits >= self.min_hits and track.votes:
                counts[track.votes.most_common(1)[0][0]] += 1
        return dict(counts)

    def _new_track(self, face: Face, frame_index: int) -> Track:
        track = Track(self.next_id, face.box, frame_index, history=deque(maxlen=self.window))
        self.next_id += 1
        self.tracks.append(track)
        return track

    def _retire(self, frame_index: int) -> None:
        alive = []
        for track in self.tracks:
            (alive if frame_index - track.last_frame <= self.max_age else self.finished).append(track)
        self.tracks = alive

    def _smooth(self, face: Face, track: Track) -> Face:
        if face.label == TOO_SMALL or not face.probabilities:
            return face.with_track(track.track_id, face.label, face.score, face.probabilities)
        track.history.append(np.array([face.probabilities.get(c, 0.0) for c in self.classes], np.float32))
        mean = np.mean(track.history, axis=0)
        best = int(np.argmax(mean))
        label = self.classes[best]
        track.votes[label] += 1
        probabilities = {c: float(p) for c, p in zip(self.classes, mean)}
        return face.with_track(track.track_id, label, float(mean[best]), probabilities)
