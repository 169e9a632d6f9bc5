"""A synth run: masks drawn onto every unmasked face of a folder, recorded in ``synth.csv`` (see the package)."""

from __future__ import annotations

import contextlib
import csv
import re
import shutil
import zlib
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from maskwatch.data.synth.geometry import CLASS_OF_PLACEMENT, INCORRECT_PLACEMENTS, STYLES
from maskwatch.data.synth.rendering import render_mask
from maskwatch.errors import InputError
from maskwatch.faces import Detection
from maskwatch.inference.landmarks import FaceLandmarks, FaceMesh
from maskwatch.media.imageio import is_image_path, read_image

CSV_NAME = "synth.csv"
CSV_COLUMNS = ("file", "source", "style", "placement", "seed", "details")
SYNTH_NAME = re.compile(r"^(?P<stem>.+?)__synth-(?P<placement>[a-z_]+)-(?P<n>\d+)$")
"""Stem of a synthetic image: the source's stem, the placement and a counter (matches dataset.py's rule)."""


def find_landmarks(image_bgr: np.ndarray, detector, mesh: FaceMesh) -> FaceLandmarks | None:
    """Landmarks of the largest face, or None; tight face crops are padded so the detector sees a whole head."""
    h, w = image_bgr.shape[:2]
    detections = detector.detect(image_bgr)
    pad = 0
    work = image_bgr
    if not detections:
        pad = int(0.3 * max(h, w))
        work = cv2.copyMakeBorder(image_bgr, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        detections = detector.detect(work)
    if not detections:  # a crop that is all face: let the mesh judge the whole image
        detections = [Detection((float(pad), float(pad), float(pad + w), float(pad + h)), 0.0)]
    best = max(detections, key=lambda d: (d.box[2] - d.box[0]) * (d.box[3] - d.box[1]))
    found = mesh.landmarks(work, best)
    if found is None:
        return None
    if pad:
        points = found.points.copy()
        points[:, :2] -= pad
        found = FaceLandmarks(points=points, score=found.score)
    return found


def output_seed(seed: int, source: str, placement: str, k: int) -> int:
    """A 31-bit seed for one output, independent of the order in which sources are processed."""
    return zlib.crc32(f"{seed}:{source}:{placement}:{k}".encode()) & 0x7FFFFFFF


@dataclass
class SynthSummary:
    out_dir: Path
    sources: int = 0
    written: list[Path] = field(default_factory=list)
    by_class: Counter = field(default_factory=Counter)
    no_landmarks: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    copied: int = 0
    already: int = 0
    """Outputs a run before made (their seeds are in synth.csv): a rerun adds no byte-identical copies."""
    interrupted: bool = False


def list_images(folder: Path) -> list[Path]:
    if not folder.exists():
        raise InputError(f"{folder}: no such folder")
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder of face images")
    images = sorted(p for p in folder.rglob("*") if p.is_file() and is_image_path(p) and not p.name.startswith("."))
    if not images:
        raise InputError(f"{folder}: no images found")
    return images


def recorded_seeds(csv_path: Path) -> set[tuple[str, int]]:
    """(source file, seed) of each output an earlier run recorded in ``synth.csv``."""
    try:
        with csv_path.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        return {
            (str(Path(row["source"]).resolve()), int(row["seed"]))
            for row in rows
            if row.get("source") and (row.get("seed") or "").isdigit()
        }
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{csv_path}: cannot read the provenance of earlier runs ({exc})") from None


def _next_free(folder: Path, stem: str, placement: str) -> Path:
    n = 1
    while True:
        path = folder / f"{stem}__synth-{placement}-{n}.jpg"
        if not path.exists():
            return path
        n += 1


def synthesize(
    source_dir: str | Path,
    out_dir: str | Path,
    correct: int = 1,
    incorrect: int = 1,
    seed: int = 0,
    styles: Iterable[str] = STYLES,
    limit: int | None = None,
    copy_originals: bool = False,
    detector=None,
    mesh: FaceMesh | None = None,
    progress: Callable[[int, int, SynthSummary], None] | None = None,
) -> SynthSummary:
    """Make ``correct`` correctly and ``incorrect`` wrongly masked versions of every face in ``source_dir``.

    Outputs go to ``out_dir/with_mask`` and ``out_dir/incorrect_mask`` (never overwriting a file) and are
    appended to ``out_dir/synth.csv``. Sources without landmarks are skipped and listed; if no source has
    any, ``InputError``. Ctrl-C stops with every written image complete and recorded.
    """
    from maskwatch.data.collect import write_new_image

    source_dir, out_dir = Path(source_dir), Path(out_dir)
    styles = tuple(styles)
    unknown = [s for s in styles if s not in STYLES]
    if unknown or not styles:
        raise InputError(f"unknown mask style {', '.join(unknown) or '(none)'}; choose from {', '.join(STYLES)}")
    if correct < 0 or incorrect < 0 or correct + incorrect == 0:
        raise InputError("ask for at least one output per face (--correct and --incorrect are both 0)")
    images = list_images(source_dir)
    if limit:
        images = images[:limit]
    folders = {name: out_dir / name for name in ("with_mask", "incorrect_mask")}
    if copy_originals:
        folders["without_mask"] = out_dir / "without_mask"
    try:
        for folder in folders.values():
            folder.mkdir(parents=True, exist_ok=True)
        csv_path = out_dir / CSV_NAME
        new_csv = not csv_path.exists()
        csv_file = csv_path.open("a", newline="", encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{out_dir}: output folder is not writable ({exc.strerror or exc})") from None
    if detector is None:
        from maskwatch.detectors import DEFAULT_DETECTOR, create_detector

        detector = create_detector(DEFAULT_DETECTOR)
    mesh = mesh or FaceMesh()
    summary = SynthSummary(out_dir=out_dir)
    made = set() if new_csv else recorded_seeds(csv_path)
    writer = csv.writer(csv_file, lineterminator="\n")
    if new_csv:
        writer.writerow(CSV_COLUMNS)
    try:
        for index, path in enumerate(images):
            rel = path.relative_to(source_dir).as_posix()
            summary.sources += 1
            jobs = [("correct", k) for k in range(correct)] + [("incorrect", k) for k in range(incorrect)]
            source_key = str(path.resolve())
            todo = [(kind, k) for kind, k in jobs if (source_key, output_seed(seed, rel, kind, k)) not in made]
            summary.already += len(jobs) - len(todo)
            original_wanted = copy_originals and not (folders["without_mask"] / path.name).exists()
            if not todo and not original_wanted:  # all made by an earlier run of this source with this seed
                if progress is not None:
                    progress(index + 1, len(images), summary)
                continue
            try:
                image = read_image(path)
            except InputError as exc:
                summary.unreadable.append(str(exc))
                continue
            landmarks = find_landmarks(image, detector, mesh)
            if landmarks is None:
                summary.no_landmarks.append(rel)
            else:
                if copy_originals and not (folders["without_mask"] / path.name).exists():
                    shutil.copy2(path, folders["without_mask"] / path.name)
                    summary.copied += 1
                for kind, k in todo:
                    out_seed = output_seed(seed, rel, kind, k)
                    choose = np.random.default_rng([out_seed, 1])
                    placement = "correct" if kind == "correct" else INCORRECT_PLACEMENTS[int(choose.integers(2))]
                    style = styles[int(choose.integers(len(styles)))]
                    rendered = render_mask(image, landmarks, placement, style, np.random.default_rng(out_seed))
                    folder = folders[CLASS_OF_PLACEMENT[placement]]
                    while True:
                        target = _next_free(folder, path.stem, placement)
                        if write_new_image(target, rendered.image):
                            break
                    writer.writerow(
                        [
                            target.relative_to(out_dir).as_posix(),
                            str(path),
                            style,
                            placement,
                            out_seed,
                            rendered.details,
                        ]
                    )
                    csv_file.flush()
                    summary.written.append(target)
                    summary.by_class[CLASS_OF_PLACEMENT[placement]] += 1
            if progress is not None:
                progress(index + 1, len(images), summary)
    except KeyboardInterrupt:
        summary.interrupted = True
    finally:
        csv_file.close()
        if not summary.written and new_csv:
            _remove_empty_outputs(csv_path, folders.values(), out_dir)
    if not summary.written and not summary.interrupted and not summary.already:
        what = f"{len(summary.no_landmarks)} of {len(images)} image(s) had no face landmarks"
        if summary.unreadable:
            what += f", {len(summary.unreadable)} unreadable"
        raise InputError(f"{source_dir}: no face landmarks found in any image ({what})")
    return summary


def _remove_empty_outputs(csv_path: Path, folders: Iterable[Path], out_dir: Path) -> None:
    """Undo a run that wrote nothing: the header-only CSV and the folders it created, if empty."""
    csv_path.unlink(missing_ok=True)
    for folder in [*folders, out_dir]:
        with contextlib.suppress(OSError):
            folder.rmdir()


def contact_sheet(out_dir: str | Path, files: Iterable[Path], max_sources: int = 8, cell: int = 144) -> np.ndarray:
    """A grid image (BGR) of synthetic outputs: one row per source face, the source first, then its masks.

    ``files`` are outputs under ``out_dir`` (e.g. ``SynthSummary.written``); their sources come from
    ``synth.csv``. Each cell is captioned with its placement (``correct`` is with_mask, the others
    incorrect_mask) and style.
    """
    out_dir = Path(out_dir)
    wanted = {Path(f).resolve() for f in files}
    with (out_dir / CSV_NAME).open(newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if (out_dir / r["file"]).resolve() in wanted]
    by_source: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        if row["source"] in by_source or len(by_source) < max_sources:
            by_source.setdefault(row["source"], []).append(row)
    if not by_source:
        raise InputError(f"{out_dir}: no synthetic images to put on a contact sheet")
    columns = 1 + max(len(v) for v in by_source.values())

    def tile(image: np.ndarray | None, caption: str) -> np.ndarray:
        canvas = np.full((cell, cell, 3), 245, np.uint8)
        if image is not None:
            h, w = image.shape[:2]
            scale = cell / max(h, w)
            small = cv2.resize(
                image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA
            )
            y, x = (cell - small.shape[0]) // 2, (cell - small.shape[1]) // 2
            canvas[y : y + small.shape[0], x : x + small.shape[1]] = small
        if caption:
            cv2.rectangle(canvas, (0, cell - 16), (cell, cell), (40, 40, 40), -1)
            cv2.putText(canvas, caption, (4, cell - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
        return canvas

    lines = []
    for source, items in by_source.items():
        tiles = [tile(cv2.imread(source), "source")]
        for row in items:
            caption = f"{row['placement'].replace('_', ' ')} - {row['style']}"
            tiles.append(tile(cv2.imread(str(out_dir / row["file"])), caption))
        tiles += [tile(None, "")] * (columns - len(tiles))
        lines.append(np.concatenate(tiles, axis=1))
    return np.concatenate(lines, axis=0)
