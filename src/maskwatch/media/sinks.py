"""Where results go: JSON lines, annotated images and videos.

Every sink writes so that an interrupted run leaves valid files behind: JSON
lines are flushed one by one, annotated images are written to a temporary name
and renamed, and videos are closed (finalised) on exit.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Protocol

import cv2

from maskwatch.errors import InputError
from maskwatch.media.draw import annotate, blur_faces
from maskwatch.media.files import prepare_output_folder
from maskwatch.media.imageio import IMAGE_SUFFIXES, MAX_SIDE, make_public
from maskwatch.media.sources import Source
from maskwatch.pipeline import FrameResult


class Sink(Protocol):
    """Where each frame's result goes (``run_sources`` writes every frame to every sink, then closes them)."""

    def write(self, result: FrameResult, source: Source) -> None: ...

    def close(self) -> None: ...


class JsonLinesSink:
    """One JSON object per frame (``maskwatch.schemas.FrameOut``), to a file or stdout."""

    def __init__(self, target: str) -> None:
        self.target = target
        if target == "-":
            self.stream: IO[str] = sys.stdout
        else:
            path = Path(target)
            append = self.check_target(target)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                self.stream = path.open("a" if append else "w", encoding="utf-8")
                if append and not _ends_with_newline(path):  # a line cut short by a crash stays on its own line
                    self.stream.write("\n")
            except OSError as exc:
                raise InputError(f"{target}: cannot write JSON lines ({exc.strerror})") from None

    @staticmethod
    def check_target(target: str) -> bool:
        """Refuse an empty path or someone else's file before anything is written; True when lines will be appended."""
        if not target.strip():
            raise InputError("--json: empty path (use - for stdout)")
        path = Path(target)
        try:
            append = target != "-" and path.is_file() and path.stat().st_size > 0
            if append:
                check_appendable(path)
        except OSError as exc:
            raise InputError(f"{target}: cannot read JSON lines ({exc.strerror})") from None
        return append

    def write(self, result: FrameResult, source: Source | None = None) -> None:
        try:
            self.stream.write(result.to_schema().model_dump_json() + "\n")
            self.stream.flush()
        except OSError as exc:  # a full disk mid-run: name the file (the lines before it are kept)
            raise InputError(f"{self.target}: cannot write JSON lines ({exc.strerror or exc})") from None

    def close(self) -> None:
        if self.stream is not sys.stdout:
            with contextlib.suppress(OSError):  # every line was flushed as written; a failed one was reported then
                self.stream.close()


FRAME_LINE_START = b'{"source":'
"""How every JSON line maskwatch writes begins (FrameOut's first field), also one a crash cut short."""


def check_appendable(path: Path) -> None:
    """JSON lines are appended to an earlier run's file, never to someone else's: its first line must start like
    ours, or the file be blank."""
    with path.open("rb") as fh:
        first = fh.read(1 << 20).lstrip().split(b"\n", 1)[0]
    if first and not first.startswith(FRAME_LINE_START):
        raise InputError(f"{path}: exists and is not maskwatch JSON lines; choose another --json (runs append to it)")


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as fh:
        fh.seek(-1, os.SEEK_END)
        return fh.read(1) == b"\n"


def write_image_atomic(path: Path, image) -> None:
    """Encode then rename, so a crash never leaves a half-written picture."""
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix if path.suffix.lower() in IMAGE_SUFFIXES else ".jpg"
    if suffix.lower() in (".jpg", ".jpeg") and max(image.shape[:2]) > MAX_SIDE:
        size = f"{image.shape[1]}x{image.shape[0]}"
        raise InputError(f"{path}: a {size} picture is over JPEG's {MAX_SIDE} px a side; use .png")
    ok, data = cv2.imencode(suffix, image)
    if not ok:
        raise InputError(f"{path}: cannot encode image")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "wb") as fh:
        fh.write(data.tobytes())
        make_public(fh.fileno())
    os.replace(tmp, path)


VIDEO_OUTPUTS = (".mp4", ".webm", ".avi", ".mov", ".mkv")
"""Annotated output suffixes that OpenCV's wheels can write."""
VIDEO_CODECS = {".webm": "VP80"}
"""FourCC by output suffix: WebM (VP8) plays in any browser; every other container gets MPEG-4
Part 2 (``mp4v``), which OpenCV's wheels can always write but browsers do not play (their H.264
encoder is not in the wheels)."""
DEFAULT_VIDEO_CODEC = "mp4v"


@contextlib.contextmanager
def _stderr_silenced() -> Iterator[None]:
    """OpenCV's FFmpeg backend prints a harmless codec-tag notice for WebM straight to fd 2."""
    try:
        saved = os.dup(2)
    except OSError:  # no usable stderr (e.g. a daemon): nothing to silence
        yield
        return
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def open_video_writer(target: Path, fps: float, size: tuple[int, int]) -> cv2.VideoWriter:
    """A video writer whose codec suits the file's suffix; ``InputError`` if it cannot be opened."""
    codec = VIDEO_CODECS.get(target.suffix.lower(), DEFAULT_VIDEO_CODEC)
    with _stderr_silenced():
        writer = cv2.VideoWriter(str(target), cv2.VideoWriter_fourcc(*codec), fps, size)
    if not writer.isOpened():
        raise InputError(f"{target}: cannot write video (use {', '.join(VIDEO_OUTPUTS)})")
    return writer


class AnnotatedSink:
    """Annotated output: a picture per image source, a video (MP4, or WebM by suffix) per video or stream.

    ``out`` is a file name when there is a single source of a matching kind
    (``photo.jpg`` → ``out.jpg``), otherwise a folder holding one output per source. Passing
    the ``sources`` checks everything that can be checked before the first frame: the suffix
    suits the source, no output would replace an input, and the folder can be created.
    """

    def __init__(self, out: str, single_source: bool, sources: Sequence[Source] = (), blur: bool = False) -> None:
        if not out.strip():
            raise InputError("--out: empty path")
        self.out = Path(out)
        self.blur = blur
        """Faces blurred in the output (privacy), boxes drawn over the blur."""
        self.single_file = single_source and self.out.suffix != ""
        self.writers: dict[str, cv2.VideoWriter] = {}
        self.written: list[Path] = []
        self.targets: dict[str, Path] = {}
        if sources:
            self.check(sources)

    def check(self, sources: Sequence[Source]) -> None:
        """Everything that can be checked before the first frame; creates the output folder."""
        suffix = self.out.suffix.lower()
        if len(sources) > 1 and suffix in (*IMAGE_SUFFIXES, *VIDEO_OUTPUTS) and not self.out.is_dir():
            raise InputError(
                f"{self.out}: {len(sources)} sources need a folder for --out (one output each), not a file name"
            )
        if self.single_file:
            suffix, kind = self.out.suffix.lower(), sources[0].kind
            if kind == "image" and suffix not in IMAGE_SUFFIXES:
                names = ", ".join(sorted(IMAGE_SUFFIXES))
                raise InputError(f"{self.out}: an image source needs an image file name ({names})")
            if kind != "image" and suffix not in VIDEO_OUTPUTS:
                raise InputError(f"{self.out}: a video source needs a video file name ({', '.join(VIDEO_OUTPUTS)})")
        inputs = {Path(s.path).resolve() for s in sources if hasattr(s, "path")}
        for source in sources:
            target = self.target_for(source.name, video=source.kind != "image")
            if target.resolve() in inputs:
                raise InputError(f"{target}: would overwrite an input; choose another --out")
        prepare_output_folder(self.out.parent if self.single_file else self.out)

    def target_for(self, source: str, video: bool) -> Path:
        """The output for a source; two sources with the same file name get ``_2``, ``_3`` … instead of one."""
        if source in self.targets:
            return self.targets[source]
        if self.single_file:
            target = self.out
        else:
            base = Path(Path(source.replace("://", "_").replace(":", "_")).name or "stream").stem
            suffix = ".mp4" if video else ".jpg"
            target, n = self.out / f"{base}_annotated{suffix}", 1
            while target in self.targets.values():
                n += 1
                target = self.out / f"{base}_{n}_annotated{suffix}"
        self.targets[source] = target
        return target

    def write(self, result: FrameResult, source: Source) -> None:
        image = annotate(blur_faces(result.image, result.faces) if self.blur else result.image, result.faces)
        if source.kind == "image":
            target = self.target_for(result.source, video=False)
            write_image_atomic(target, image)
            self.written.append(target)
            return
        writer = self.writers.get(result.source)
        if writer is None:
            target = self.target_for(result.source, video=True)
            target.parent.mkdir(parents=True, exist_ok=True)
            h, w = image.shape[:2]
            writer = open_video_writer(target, source.fps or 25.0, (w, h))
            self.writers[result.source] = writer
            self.written.append(target)
        writer.write(image)

    def close(self) -> None:
        for writer in self.writers.values():
            writer.release()
        self.writers.clear()
