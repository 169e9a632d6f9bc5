"""The driver's side of a unit: put chunk results back in order, track, and write the unit's outputs.

Chunks come back in any order; each unit keeps the ones that arrive early until
their predecessors are in, then replays ``FaceTracker`` over the frames in order —
the same tracker, fed the same faces in the same order as ``maskwatch detect``, so
track ids, smoothed labels and people counts equal a single-process run's exactly.

Every output is written to a temporary name and renamed; ``DONE`` is written
last and removed first, so a folder with ``DONE`` is always complete.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np

from maskwatch.batch.plan import Unit
from maskwatch.batch.worker import ChunkResult, FrameRecord
from maskwatch.evaluation.reports import pyplot
from maskwatch.faces import TOO_SMALL
from maskwatch.inference.tracker import FaceTracker
from maskwatch.media.sinks import JsonLinesSink
from maskwatch.pipeline import FrameResult

FRAMES_FILE = "frames.jsonl"
COUNTS_FILE = "counts.csv"
SUMMARY_FILE = "summary.json"
PLOT_FILE = "masked_share.png"
DONE_FILE = "DONE"
MAX_BINS = 200
TRUNCATED_SHARE = 0.9
"""A video that ends before this share of its container's frame count is reported truncated (as ``detect`` does)."""

_NOT_MASKED_WORDS = ("without", "no_mask", "nomask", "no-mask", "unmasked", "incorrect", "wrong", "improper", "bad")


def masked_classes(classes: list[str]) -> list[str]:
    """Classes that mean a properly worn mask: names with "mask" that do not say without/incorrect/…"""
    out = []
    for name in classes:
        low = name.lower()
        if "mask" in low and not any(word in low for word in _NOT_MASKED_WORDS):
            out.append(name)
    return out


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write to a temporary file beside ``path``, fsync, rename: readers see the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; outputs are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def done_record(unit: Unit, options: dict) -> dict:
    return {"input": unit.name, "fingerprint": unit.fingerprint(), "options": options}


def is_complete(folder: Path, unit: Unit, options: dict) -> bool:
    """True when ``folder`` holds a finished run of the same inputs with the same options (for ``--resume``)."""
    done = folder / DONE_FILE
    if not done.is_file() or not all((folder / name).is_file() for name in (SUMMARY_FILE, FRAMES_FILE, COUNTS_FILE)):
        return False
    try:
        record = json.loads(done.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    return record == json.loads(json.dumps(done_record(unit, options)))


class UnitAssembler:
    """Collects one unit's chunk results, tracks in frame order and writes its outputs."""

    def __init__(self, unit: Unit, out_root: Path, classes: list[str], options: dict, track: bool = True) -> None:
        self.unit = unit
        self.folder = out_root / unit.safe_name
        self.classes = classes
        self.masked = set(masked_classes(classes))
        self.options = options
        self.tracker = FaceTracker(classes) if track and unit.kind == "video" else None
        self.pending: dict[int, ChunkResult] = {}
        self.next_seq = 0
        self.errors: list[str] = []
        self.fatal: str | None = None
        self.frames = 0
        self.next_index = 0
        """The frame number expected next (videos): a jump means frames in between did not decode."""
        self.faces = 0
        self.faces_per_class: Counter = Counter()
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / DONE_FILE).unlink(missing_ok=True)
        self._jsonl_tmp = self.folder / f".{FRAMES_FILE}.partial"
        self._jsonl_tmp.unlink(missing_ok=True)
        self.sink = JsonLinesSink(str(self._jsonl_tmp))
        self._csv_tmp = self.folder / f".{COUNTS_FILE}.partial"
        try:
            self._csv_file = self._csv_tmp.open("w", encoding="utf-8", newline="")
        except OSError:
            self.sink.close()  # the unit fails; its open JSON-lines file must not leak
            raise
        self._csv = csv.DictWriter(
            self._csv_file, fieldnames=["source", "frame", "timestamp", "faces", *classes, TOO_SMALL, "masked_share"]
        )
        self._csv.writeheader()
        # Masked share over time, in bins: seconds for a video with a frame rate, else frames or photos.
        self._timed = unit.kind == "video" and bool(unit.fps)
        span = unit.frame_count / unit.fps if self._timed else (unit.frame_count or len(unit.items))
        self._bin_width = max(1.0, span / MAX_BINS)
        self._bins: dict[int, list[int]] = {}

    @property
    def complete(self) -> bool:
        return self.fatal is not None or self.next_seq >= len(self.unit.chunks)

    def add(self, result: ChunkResult) -> int:
        """Take a chunk's result; returns how many frames became final (written) now."""
        if self.fatal is not None:
            return 0
        if result.fatal is not None:
            self.fail(result.fatal)
            return 0
        self.pending[result.seq] = result
        written = 0
        while self.next_seq in self.pending:
            chunk = self.pending.pop(self.next_seq)
            self.errors.extend(chunk.errors)
            for record in chunk.frames:
                self._write_frame(record)
                written += 1
            self.next_seq += 1
        return written

    def fail(self, reason: str) -> None:
        """Give the unit up: close and remove its partial files (best effort: the disk may be what failed)."""
        self.fatal = reason
        for close in (self.sink.close, self._csv_file.close):
            with contextlib.suppress(OSError):
                close()
        for partial in (self._jsonl_tmp, self._csv_tmp):
            with contextlib.suppress(OSError):
                partial.unlink(missing_ok=True)

    def _write_frame(self, record: FrameRecord) -> None:
        if self.unit.kind == "video":
            if record.index > self.next_index:  # a chunk came back short, a later one did not: a hole
                of = f" of {self.unit.frame_count}" if self.unit.frame_count else ""
                self.errors.append(
                    f"{self.unit.name}: frames {self.next_index}-{record.index - 1}{of} could not be decoded "
                    "(corrupt video?)"
                )
            self.next_index = max(self.next_index, record.index + 1)
        faces = record.faces
        if self.tracker is not None:
            faces = self.tracker.update(faces, record.index)
        # FrameResult only reads the image's shape: a zero-strided view carries it without pixels.
        shape_only = np.broadcast_to(np.zeros((1, 1, 3), np.uint8), (record.height, record.width, 3))
        self.sink.write(FrameResult(record.source, record.index, record.timestamp, shape_only, faces))
        labels = Counter(f.label for f in faces)
        self.frames += 1
        self.faces += len(faces)
        self.faces_per_class.update(labels)
        classified = sum(n for label, n in labels.items() if label != TOO_SMALL)
        masked = sum(labels.get(c, 0) for c in self.masked)
        self._csv.writerow(
            {
                "source": record.source,
                "frame": record.index,
                "timestamp": "" if record.timestamp is None else round(record.timestamp, 3),
                "faces": len(faces),
                **{c: labels.get(c, 0) for c in [*self.classes, TOO_SMALL]},
                "masked_share": round(masked / classified, 4) if classified else "",
            }
        )
        position = record.timestamp if self._timed and record.timestamp is not None else float(self.frames - 1)
        acc = self._bins.setdefault(int(position // self._bin_width), [0, 0])
        acc[0] += masked
        acc[1] += classified

    def finish(self) -> dict:
        """Write counts, summary and plot, rename the JSON lines into place, then ``DONE``; returns the summary."""
        self.sink.close()
        expected = self.unit.frame_count
        if self.unit.kind == "video" and expected and self.next_index < expected * TRUNCATED_SHARE:
            self.errors.append(
                f"{self.unit.name}: video ended after {self.next_index} of {expected} frames (truncated?)"
            )
        people = self.tracker.people_per_class() if self.tracker is not None else {}
        classified = sum(n for label, n in self.faces_per_class.items() if label != TOO_SMALL)
        masked = sum(self.faces_per_class.get(c, 0) for c in self.masked)
        summary = {
            "input": self.unit.name,
            "kind": self.unit.kind,
            "frames": self.frames,
            "fps": self.unit.fps,
            "faces": self.faces,
            "faces_per_class": dict(sorted(self.faces_per_class.items())),
            "people_per_class": dict(sorted(people.items())),
            "masked_classes": sorted(self.masked),
            "masked_share": round(masked / classified, 4) if classified else None,
            "masked_share_over_time": self._share_over_time(),
            "errors": self.errors,
            "options": self.options,
        }
        self._csv_file.flush()
        os.fsync(self._csv_file.fileno())
        self._csv_file.close()
        os.replace(self._csv_tmp, self.folder / COUNTS_FILE)
        if self.unit.kind == "video" and pyplot() is not None:
            write_bytes_atomic(self.folder / PLOT_FILE, self._plot(summary["masked_share_over_time"]))
        write_text_atomic(self.folder / SUMMARY_FILE, json.dumps(summary, indent=2) + "\n")
        with self._jsonl_tmp.open("rb") as fh:
            os.fsync(fh.fileno())
        os.replace(self._jsonl_tmp, self.folder / FRAMES_FILE)
        write_text_atomic(self.folder / DONE_FILE, json.dumps(done_record(self.unit, self.options)) + "\n")
        return summary

    def _share_over_time(self) -> list[dict]:
        unit = "s" if self._timed else ("frame" if self.unit.kind == "video" else "photo")
        w = self._bin_width
        return [
            {
                "start": round(b * w, 3),
                "end": round((b + 1) * w, 3),
                "unit": unit,
                "faces": n,
                "masked_share": round(m / n, 4) if n else None,
            }
            for b, (m, n) in sorted(self._bins.items())
        ]

    def _plot(self, series: list[dict]) -> bytes:
        plt = pyplot()

        fig, ax = plt.subplots(figsize=(8, 3.2), dpi=100)
        xs = [(b["start"] + b["end"]) / 2 for b in series if b["masked_share"] is not None]
        ys = [b["masked_share"] for b in series if b["masked_share"] is not None]
        if xs:
            ax.plot(xs, ys, marker="o" if len(xs) < 40 else None, linewidth=1.5)
        else:
            ax.text(0.5, 0.5, "no classified face", ha="center", va="center", transform=ax.transAxes)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("time (s)" if series and series[0]["unit"] == "s" else "frame")
        ax.set_ylabel("share of faces masked")
        masked = ", ".join(sorted(self.masked)) or "none of the model's classes"
        ax.set_title(f"{Path(self.unit.name).name} — masked = {masked}", fontsize=9)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        out = io.BytesIO()
        fig.savefig(out, format="png")
        plt.close(fig)
        return out.getvalue()
