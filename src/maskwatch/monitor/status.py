"""A live status line on a terminal (frames, fps, people by class, masked share); nothing in a log or a pipe."""

from __future__ import annotations

import threading
import time

from rich.console import Console
from rich.live import Live
from rich.text import Text

from maskwatch.faces import TOO_SMALL


def people_text(people: dict[str, int], masked: tuple[str, ...] = ("with_mask",)) -> str:
    """'with_mask 3, without_mask 1, masked 75%' (no share with nobody seen)."""
    shown = {k: v for k, v in sorted(people.items()) if k != TOO_SMALL}
    total = sum(shown.values())
    parts = [f"{k} {v}" for k, v in shown.items()] or ["no people yet"]
    if total:
        parts.append(f"masked {100.0 * sum(shown.get(c, 0) for c in masked) / total:.0f}%")
    return ", ".join(parts)


class StatusLine:
    """Redraws at most ``per_second`` times a second; ``update`` is cheap enough to call every frame."""

    def __init__(self, console: Console, per_second: float = 4.0) -> None:
        self.console = console
        self.enabled = console.is_terminal
        self.period = 1.0 / per_second
        self.last = 0.0
        self.lock = threading.Lock()
        self.live = Live(Text(""), console=console, transient=True, auto_refresh=False) if self.enabled else None

    def __enter__(self) -> StatusLine:
        if self.live is not None:
            self.live.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.live is not None:
            self.live.stop()

    def due(self) -> bool:
        """Whether a redraw is due (build the text only then)."""
        return self.enabled and time.monotonic() - self.last >= self.period

    def update(self, text: str) -> None:
        if self.live is None:
            return
        with self.lock:
            self.last = time.monotonic()
            self.live.update(Text(text, no_wrap=True, overflow="ellipsis"), refresh=True)


class FrameStats:
    """Frames, a smoothed fps and the running people count of one run, for the status line."""

    def __init__(self) -> None:
        self.frames = 0
        self.start = time.monotonic()
        self.recent: list[float] = []

    def tick(self) -> None:
        self.frames += 1
        now = time.monotonic()
        self.recent.append(now)
        if len(self.recent) > 60:
            del self.recent[: len(self.recent) - 60]

    @property
    def fps(self) -> float:
        if len(self.recent) < 2:
            return 0.0
        span = self.recent[-1] - self.recent[0]
        return (len(self.recent) - 1) / span if span > 0 else 0.0
