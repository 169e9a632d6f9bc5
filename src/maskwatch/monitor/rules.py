"""Alert rules over one source's tracked faces: no mask for N seconds (once per person), low compliance.

Pure logic on ``Face`` lists and times, so the same rules run in ``watch`` and in tests on any timeline.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from maskwatch.faces import TOO_SMALL, Face
from maskwatch.monitor.config import RulesConfig

NO_MASK = "no_mask"
LOW_COMPLIANCE = "low_compliance"


@dataclass
class Alert:
    """An event a rule raised: which rule, when (source time), and the face or figure behind it."""

    rule: str
    t: float
    track_id: int | None = None
    label: str | None = None
    face: Face | None = None
    details: dict = field(default_factory=dict)


@dataclass
class _TrackState:
    bad_since: float | None = None
    alerted: bool = False
    last_seen: float = 0.0
    label: str = ""
    hits: int = 0


class RuleEngine:
    """Feed it each frame's tracked faces with the frame's time; it returns the alerts raised at that frame."""

    def __init__(self, rules: RulesConfig, min_hits: int = 3) -> None:
        self.rules = rules
        self.min_hits = min_hits
        self.tracks: dict[int, _TrackState] = {}
        self.last_no_mask: float | None = None
        self.last_compliance: float | None = None
        self.suppressed = 0
        """Alerts a cooldown held back."""

    def update(self, t: float, faces: list[Face]) -> list[Alert]:
        alerts = []
        for face in faces:
            if face.track_id is None or face.label == TOO_SMALL:
                continue
            state = self.tracks.setdefault(face.track_id, _TrackState())
            state.last_seen, state.label = t, face.label
            state.hits += 1
            alert = self._no_mask(t, face, state)
            if alert is not None:
                alerts.append(alert)
        alert = self._compliance(t)
        if alert is not None:
            alerts.append(alert)
        self._forget(t)
        return alerts

    def _no_mask(self, t: float, face: Face, state: _TrackState) -> Alert | None:
        rules = self.rules
        if rules.no_mask_seconds is None or face.label not in rules.no_mask_classes:
            state.bad_since = None
            return None
        if state.bad_since is None:
            state.bad_since = t
        if state.alerted or t - state.bad_since < rules.no_mask_seconds or state.hits < self.min_hits:
            return None
        state.alerted = True  # once per track, also when a cooldown holds this one back
        if self.last_no_mask is not None and t - self.last_no_mask < rules.no_mask_cooldown:
            self.suppressed += 1
            return None
        self.last_no_mask = t
        details = {"seconds": round(t - state.bad_since, 3), "box": [round(float(v), 1) for v in face.box]}
        return Alert(NO_MASK, t, face.track_id, face.label, face, details)

    def compliance(self, t: float) -> tuple[float | None, int]:
        """Masked share of the people seen in the last ``compliance_window`` minutes, and how many they are."""
        since = t - self.rules.compliance_window * 60.0
        people = [s for s in self.tracks.values() if s.last_seen >= since and s.hits >= self.min_hits]
        if not people:
            return None, 0
        masked = sum(s.label in self.rules.masked_classes for s in people)
        return masked / len(people), len(people)

    def _compliance(self, t: float) -> Alert | None:
        rules = self.rules
        if rules.compliance_below is None:
            return None
        share, people = self.compliance(t)
        if share is None or people < rules.compliance_min_people or share * 100.0 >= rules.compliance_below:
            return None
        if self.last_compliance is not None and t - self.last_compliance < rules.compliance_cooldown:
            return None
        self.last_compliance = t
        details = {"compliance": round(share, 4), "people": people, "window_minutes": rules.compliance_window}
        return Alert(LOW_COMPLIANCE, t, details=details)

    def _forget(self, t: float) -> None:
        """Tracks out of the compliance window and past the no-mask time are dropped (a day-long run stays small)."""
        keep = max(self.rules.compliance_window * 60.0, (self.rules.no_mask_seconds or 0.0) + 60.0)
        if len(self.tracks) > 256:
            self.tracks = {k: s for k, s in self.tracks.items() if t - s.last_seen <= keep}
