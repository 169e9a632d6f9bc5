"""What a batch run will do: inputs grouped into units (one per video, one per photo set) and split into chunks.

A unit is what gets its own output folder and its own ``DONE`` marker: each
video (file or URL) is one, and the photos named by one INPUT argument (a
folder, a glob, a list file) form one photo set. Chunks are the scheduling
grain: frame ranges of a video, batches of photos. Video chunks are read by
seeking, so workers never decode frames they do not own.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import cv2

from maskwatch.errors import EmptyInputError, InputError
from maskwatch.media.imageio import IMAGE_SUFFIXES
from maskwatch.media.sources import STREAM_SCHEMES, CaptureSource, ImageSource, VideoSource, expand_sources

LIST_SUFFIXES = frozenset({".txt", ".lst", ".list"})
"""A file INPUT with one of these suffixes lists one path, glob or URL per line."""

DEFAULT_CHUNK_FRAMES = 256
DEFAULT_PHOTO_BATCH = 32


@dataclass(frozen=True)
class Item:
    """One readable thing: ``name`` is how outputs call it (as ``detect`` would), ``target`` what a worker opens."""

    name: str
    target: str


@dataclass(frozen=True)
class Chunk:
    """The scheduling grain: frames [start, stop) of one video, or a batch of photos of one set.

    ``stop`` is None for the last chunk of a video: it reads to the real end, so a
    frame count that the container misreports loses no frames.
    """

    unit: int
    seq: int
    kind: str  # "video" | "images"
    items: tuple[Item, ...]
    start: int = 0
    stop: int | None = None
    fps: float | None = None

    @property
    def planned_frames(self) -> int:
        """Frames this chunk should hold, for progress; 1 per photo."""
        if self.kind == "images":
            return len(self.items)
        return max(0, self.stop - self.start) if self.stop is not None else 0


@dataclass
class Unit:
    """One output folder's worth of work: a video or a photo set."""

    index: int
    kind: str  # "video" | "images"
    name: str
    items: list[Item]
    safe_name: str
    frame_count: int = 0
    fps: float | None = None
    chunks: list[Chunk] = field(default_factory=list)

    def fingerprint(self) -> list[list]:
        """What the inputs looked like (name, size, mtime) so ``--resume`` can tell an input changed."""
        out = []
        for item in self.items:
            path = Path(item.target)
            if _is_url(item.target) or not path.is_file():
                out.append([item.name, None, None])
            else:
                stat = path.stat()
                out.append([item.name, stat.st_size, stat.st_mtime_ns])
        return out


def _is_url(spec: str) -> bool:
    return spec.lower().startswith(STREAM_SCHEMES)


def safe_name(name: str) -> str:
    """A folder name for an input: readable stem plus a hash of the full name, so two ``clip.mp4`` never collide."""
    if _is_url(name):
        parsed = urlparse(name)
        stem = Path(parsed.path).stem or parsed.netloc or "stream"
    else:
        stem = Path(name.rstrip("/\\")).name or "input"
        stem = Path(stem).stem if Path(stem).suffix else stem
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._") or "input"
    digest = hashlib.sha1(name.encode("utf-8")).hexdigest()[:8]
    return f"{stem[:60]}-{digest}"


def read_list_file(path: Path) -> list[str]:
    """Non-empty, non-comment lines of a list file; relative paths are taken relative to the list."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read list file ({getattr(exc, 'strerror', None) or exc})") from None
    specs = []
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not _is_url(line) and not Path(line).is_absolute() and not line.isdigit():
            line = str(path.parent / line)
        specs.append(line)
    return specs


def collect_units(inputs: list[str]) -> tuple[list[Unit], list[str]]:
    """Group INPUTS into units; problems (missing paths, cameras, unsupported files) are returned, not raised."""
    units: list[Unit] = []
    problems: list[str] = []
    seen: set[str] = set()

    def add(kind: str, name: str, items: list[Item]) -> None:
        units.append(Unit(len(units), kind, name, items, safe_name(name)))

    for spec in inputs:
        path = Path(spec)
        if not _is_url(spec) and path.is_file() and path.suffix.lower() in LIST_SUFFIXES:
            try:
                specs = read_list_file(path)
            except InputError as exc:
                problems.append(str(exc))
                continue
            if not specs:
                problems.append(f"{spec}: list file names no input")
            set_name = spec
        else:
            specs, set_name = [spec], spec
        photos: list[Item] = []
        for sub in specs:
            if _is_url(sub) and Path(urlparse(sub).path).suffix.lower() in IMAGE_SUFFIXES:
                if sub not in seen:
                    seen.add(sub)
                    photos.append(Item(sub, sub))
                continue
            sources, found_problems = expand_sources([sub])
            problems.extend(found_problems)
            for source in sources:
                if source.name in seen:
                    continue
                seen.add(source.name)
                if isinstance(source, ImageSource):
                    photos.append(Item(source.name, str(source.path.resolve())))
                elif isinstance(source, VideoSource):
                    add("video", source.name, [Item(source.name, str(source.path.resolve()))])
                elif isinstance(source, CaptureSource) and source.kind == "stream":
                    add("video", source.name, [Item(source.name, str(source.target))])
                else:
                    problems.append(f"{source.name}: a live camera is not an archive; use `maskwatch detect` for it")
        if photos:
            add("images", set_name, photos)
    return units, problems


def probe_video(target: str) -> tuple[int, float | None]:
    """Frame count (0 when the container does not say) and frame rate, or ``InputError`` for an unreadable video."""
    if not _is_url(target):
        path = Path(target)
        if not path.is_file():
            raise InputError(f"{target}: no such file")
        if path.stat().st_size == 0:
            raise EmptyInputError(f"{target}: empty file")
    capture = cv2.VideoCapture(target)
    try:
        if not capture.isOpened():
            if _is_url(target):  # as detect says it (sources.CaptureSource)
                raise InputError(f"{target}: stream unreachable or not a video")
            raise InputError(f"{target}: not a readable video (corrupt or unsupported format)")
        ok, image = capture.read()
        if not ok or image is None:
            raise InputError(f"{target}: no decodable frames (corrupt or truncated video)")
        fps = capture.get(cv2.CAP_PROP_FPS)
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        return max(count, 0), (fps if fps and 0 < fps < 1000 else None)
    finally:
        capture.release()


def plan_chunks(unit: Unit, chunk_frames: int = DEFAULT_CHUNK_FRAMES, photo_batch: int = DEFAULT_PHOTO_BATCH) -> None:
    """Fill ``unit.chunks``; a video must have been probed (``frame_count``, ``fps``) first.

    A video whose frame count is unknown (some streams and containers) is one chunk read to its end.
    """
    if unit.kind == "images":
        batches = [unit.items[i : i + photo_batch] for i in range(0, len(unit.items), photo_batch)]
        unit.chunks = [Chunk(unit.index, seq, "images", tuple(batch)) for seq, batch in enumerate(batches)]
        return
    starts = list(range(0, unit.frame_count, chunk_frames)) or [0]
    unit.chunks = [
        Chunk(
            unit.index,
            seq,
            "video",
            tuple(unit.items),
            start=start,
            stop=starts[seq + 1] if seq + 1 < len(starts) else None,
            fps=unit.fps,
        )
        for seq, start in enumerate(starts)
    ]
