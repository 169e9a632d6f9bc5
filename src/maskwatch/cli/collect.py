"""``maskwatch collect``: build a labelled face dataset from a camera, video, stream or photo folder."""

from __future__ import annotations

import difflib
from pathlib import Path

import typer

from maskwatch.cli.app import app, console_err, say_error, say_warning
from maskwatch.cli.options import Conf, FaceDetectorName, MinFace
from maskwatch.settings import DEFAULT_CONF


@app.command()
def collect(
    sources: list[str] = typer.Argument(
        ..., help="Camera index (0), video file, rtsp:// / http(s):// stream, photo, photo folder or glob."
    ),
    label: str = typer.Option(..., "--label", "-l", help="Class name: crops go to OUT/LABEL/ (a plain folder name)."),
    out: Path = typer.Option(..., "--out", "-o", help="Dataset folder (one subfolder per class)."),
    count: int = typer.Option(None, "--count", "-n", min=1, help="Stop after saving this many faces [all]."),
    every: int = typer.Option(1, "--every", min=1, help="Look at every K-th video/camera frame only."),
    min_face: MinFace = 40,
    dedupe_bits: int = typer.Option(
        4, "--dedupe-bits", min=0, help="Skip a face whose perceptual hash is within this many bits of a recent save."
    ),
    no_dedupe: bool = typer.Option(False, "--no-dedupe", help="Keep near-duplicate faces too."),
    detector: FaceDetectorName = None,
    conf: Conf = DEFAULT_CONF,
    preview: bool = typer.Option(False, "--preview", help="Show each frame with its boxes and the count saved."),
    reconnects: int = typer.Option(5, "--reconnects", min=0, help="Reconnection attempts when a stream drops."),
) -> None:
    """Detect faces and save each one as a training crop in OUT/LABEL/ (never overwriting a file)."""
    from rich.progress import BarColumn, MofNCompleteColumn, SpinnerColumn, TextColumn, TimeElapsedColumn

    from maskwatch.cli.detect import setup_logging
    from maskwatch.cli.progress import progress_bar
    from maskwatch.data.collect import collect_faces, prepare_output
    from maskwatch.detectors import DEFAULT_DETECTOR, create_detector
    from maskwatch.errors import InputError, MaskwatchError
    from maskwatch.media.sources import expand_sources

    setup_logging()
    new_folders = [f for f in (out / label, out) if not f.exists()]
    target = prepare_output(out, label)  # bad label or unwritable folder: fail before opening any camera
    try:
        expanded, problems = expand_sources(sources, reconnects=reconnects)
        if not expanded:
            raise InputError("; ".join(problems) if problems else "no source given")
        face_detector = create_detector(detector or DEFAULT_DETECTOR, min_score=conf)
    except MaskwatchError:
        _remove_empty(new_folders)  # failed before the first frame: leave no empty folder behind
        raise
    if out / label in new_folders:  # a typo ('with_mak') would quietly start a class of its own
        others = {_folded(p.name): p.name for p in out.iterdir() if p.is_dir() and p.name != label}
        close = difflib.get_close_matches(_folded(label), list(others), n=1, cutoff=0.9)
        if close:
            say_warning(f"new class '{label}' in {out}, close to '{others[close[0]]}' (a typo?)")
    for problem in problems:
        say_warning(problem)
    window = _preview(preview)

    columns = [SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn()]
    with progress_bar(*columns, TextColumn("{task.fields[note]}"), TimeElapsedColumn()) as bar:
        task = bar.add_task(f"collecting {label}", total=count, note="")

        def on_frame(source, image, found, kept, summary) -> None:
            bar.update(
                task,
                completed=len(summary.saved),
                note=f"{summary.frames} frames · {summary.duplicates} dup · {summary.too_small} small",
            )
            if window is not None:
                window(source, image, found, kept, len(summary.saved))

        summary = collect_faces(
            expanded,
            out,
            label,
            count=count,
            every=every,
            min_face=min_face,
            detector=face_detector,
            dedupe_bits=None if no_dedupe else dedupe_bits,
            on_frame=on_frame,
        )
    failed = problems + summary.failed_sources
    if not summary.saved:
        _remove_empty(new_folders)
    if summary.failed_sources and not summary.saved and not summary.interrupted and len(failed) >= len(expanded):
        raise InputError("; ".join(summary.failed_sources))  # nothing worked: one line, no summary
    console_err.print(
        f"saved {len(summary.saved)} face(s) to {target} from {summary.frames} frame(s) "
        f"({summary.frames_processed} looked at, {summary.faces} face(s) found; skipped {summary.duplicates} "
        f"near-duplicate(s), {summary.too_small} under {min_face} px) in {summary.seconds:.1f}s",
        highlight=False,
    )
    if summary.saved:
        console_err.print(f"first {summary.saved[0].name}, last {summary.saved[-1].name}", highlight=False)
    for problem in summary.failed_sources:
        say_error(problem)
    if summary.interrupted:
        console_err.print("interrupted; every face saved so far is complete")
        raise typer.Exit(130)
    if failed:
        raise typer.Exit(2)


def _preview(enabled: bool):
    """A callback showing frames with boxes and the saved count, or None (said clearly) without a display."""
    if not enabled:
        return None
    from maskwatch.cli.detect import display_available

    reason = display_available()
    if reason:
        say_warning(f"--preview: {reason}; collecting without a window")
        return None
    import cv2

    def show(source, image, found, kept, saved: int) -> None:
        frame = image.copy()
        thickness = max(2, round(max(frame.shape[:2]) / 300))
        for d in found:  # green: saved now; grey: too small or a near-duplicate
            x1, y1, x2, y2 = (round(v) for v in d.box)
            cv2.rectangle(frame, (x1, y1), (x2, y2), (60, 180, 75) if d in kept else (160, 160, 160), thickness)
        cv2.putText(frame, f"saved {saved}", (10, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.9, (255, 255, 255), 2, cv2.LINE_AA)
        cv2.imshow("maskwatch collect", frame)
        if cv2.waitKey(1 if source.kind != "image" else 200) & 0xFF in (ord("q"), 27):
            raise KeyboardInterrupt

    return show


def _folded(name: str) -> str:
    """A class name as a typo compares: With_mask, with-mask and with mask are with_mask."""
    return name.lower().replace("-", "_").replace(" ", "_")


def _remove_empty(folders: list[Path]) -> None:
    """Remove the folders this run created (class, then dataset) when nothing went into them."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return


@app.command("collect-boxes")
def collect_boxes_command(
    images_dir: Path = typer.Argument(..., help="Folder of the annotated photos."),
    annotations: Path = typer.Argument(..., help="Folder of Pascal VOC .xml files, one .xml, or a COCO .json."),
    out: Path = typer.Option(..., "--out", "-o", help="Dataset folder (one subfolder per class)."),
    split: str = typer.Option(
        "train", "--split", help="train/test: the fixed scenes split (even image number train, odd test); or all."
    ),
    class_map: str = typer.Option(
        None, "--class-map", help="DATASET=FOLDER[,..] or a JSON file; FOLDER '-' leaves that class out."
    ),
    min_face: int = typer.Option(8, "--min-face", min=1, help="Skip faces whose shorter side is under this (px)."),
    keep_difficult: bool = typer.Option(False, "--keep-difficult", help="Also cut faces flagged difficult."),
) -> None:
    """Cut the annotated faces of box-annotated photos into OUT/CLASS/ as training crops (never overwriting)."""
    from maskwatch.cli.scenes import check_dataset_classes, parse_class_map
    from maskwatch.data.annotations import load_annotations, select_split
    from maskwatch.data.collect import collect_boxes, validate_label
    from maskwatch.errors import InputError

    if not images_dir.is_dir():
        raise InputError(f"{images_dir}: no such folder of images")
    annotated = load_annotations(annotations, images_dir)
    mapping = parse_class_map(class_map)
    check_dataset_classes(mapping, {o.label for i in annotated for o in i.objects})
    for folder in {*mapping.values()} - {"-"}:  # checked before the first crop is written
        try:
            validate_label(folder)
        except InputError as exc:
            raise InputError(f"--class-map: {exc}") from None
    images = select_split(annotated, split)
    if not images:
        raise InputError(f"{annotations}: no annotated images (split {split})")
    summary = collect_boxes(images, out, mapping, min_face=min_face, keep_difficult=keep_difficult)
    if summary.unreadable and len(summary.unreadable) == len(images):
        raise InputError(f"{summary.unreadable[0]}: cannot read image (none of {len(images)} could be read)")
    counts = ", ".join(f"{label} {len(paths)}" for label, paths in sorted(summary.saved.items())) or "none"
    console_err.print(
        f"saved {sum(len(p) for p in summary.saved.values())} face(s) to {out} ({counts}) from "
        f"{len(images) - len(summary.unreadable)} photo(s); skipped {summary.existing} already there, "
        f"{summary.too_small} under {min_face} px, {summary.difficult} difficult, "
        f"{sum(summary.ignored_classes.values())} of ignored classes",
        highlight=False,
    )
    for path in summary.unreadable:
        reason = "cannot read image" if Path(path).is_file() else "image named by its annotation not found"
        say_error(f"{path}: {reason}")
    if summary.unreadable:
        raise typer.Exit(2)
