"""``maskwatch detect``: the product's main job on images, folders, videos, cameras and streams."""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

import typer
from rich.table import Table

from maskwatch.cli.app import app, console_err
from maskwatch.cli.options import Conf, FaceDetectorName, HeadWeight, MinFace, Model, pipeline_settings
from maskwatch.settings import DEFAULT_CONF, DEFAULT_HEAD_WEIGHT, DEFAULT_MIN_FACE

log = logging.getLogger("maskwatch")


class _PlainFormatter(logging.Formatter):
    """'error: …', 'warning: …': the same lower-case prefix as the CLI's own one-line errors."""

    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname.lower()}: {record.getMessage()}"


def setup_logging() -> None:
    """Warnings (dropped streams, skipped files) go to stderr as plain lines."""
    if not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(_PlainFormatter())
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False


def display_available() -> str | None:
    """None when a window can be shown, else the reason it cannot."""
    import cv2

    if os.name != "nt" and not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        return "no display found (DISPLAY is not set)"
    if "GUI" in cv2.getBuildInformation() and "NONE" in cv2.getBuildInformation().split("GUI:")[-1][:200]:
        return "this OpenCV build has no window support (pip install opencv-python for --show)"
    return None


@app.command()
def detect(
    sources: list[str] = typer.Argument(
        ..., help="Images, folders, globs, video files, camera indices (0) or rtsp:// / http(s):// streams."
    ),
    model: Model = None,
    detector: FaceDetectorName = None,
    out: str = typer.Option(None, "--out", "-o", help="Annotated output: a file for one source, else a folder."),
    json_out: str = typer.Option(None, "--json", help="Write JSON lines per frame to this file, or - for stdout."),
    show: bool = typer.Option(False, "--show", help="Show annotated frames in a window (needs a display)."),
    conf: Conf = DEFAULT_CONF,
    min_face: MinFace = DEFAULT_MIN_FACE,
    head_weight: HeadWeight = DEFAULT_HEAD_WEIGHT,
    no_track: bool = typer.Option(False, "--no-track", help="Do not track faces across video frames."),
    reconnects: int = typer.Option(5, "--reconnects", min=0, help="Reconnection attempts when a stream drops."),
    report: str = typer.Option(
        None,
        "--report",
        help="CSV with one row per interval of each video or stream: frames, faces, people, compliance.",
    ),
    report_interval: float = typer.Option(60.0, "--report-interval", min=0.001, help="Seconds per --report row."),
    blur_faces: bool = typer.Option(False, "--blur-faces", help="Blur the faces in annotated outputs (privacy)."),
) -> None:
    """Find faces and classify each one; write annotated output, JSON lines and a summary."""
    from maskwatch.errors import InputError
    from maskwatch.media.runner import run_sources
    from maskwatch.media.sinks import AnnotatedSink, JsonLinesSink
    from maskwatch.media.sources import expand_sources
    from maskwatch.monitor.live import RunCounts
    from maskwatch.monitor.status import StatusLine
    from maskwatch.pipeline import Detector

    setup_logging()
    expanded, problems = expand_sources(sources, reconnects=reconnects)
    if not expanded:
        raise InputError("; ".join(problems) if problems else "no source given")
    for problem in problems:
        log.error("%s", problem)
    pipeline = Detector.from_settings(pipeline_settings(model, detector, conf, min_face, head_weight))
    annotated = AnnotatedSink(out, single_source=len(expanded) == 1, blur=blur_faces) if out is not None else None
    if json_out is not None:  # before --out's folder is made: a refusal leaves nothing behind
        if json_out.strip() and json_out != "-":
            _check_json_target(Path(json_out), expanded, annotated)
        JsonLinesSink.check_target(json_out)
    if annotated is not None:
        annotated.check(expanded)
    if report is not None:
        _check_report_target(Path(report), expanded)
    long_run = any(s.kind != "image" for s in expanded)
    status = StatusLine(console_err) if long_run else None
    counts = RunCounts(pipeline.classes, Path(report) if report else None, report_interval, status)
    sinks = [JsonLinesSink(json_out)] if json_out is not None else []
    if annotated is not None:
        sinks.append(annotated)
    window = _window(show)
    if window is not None:
        sinks.append(window)
    sinks.append(counts)  # closed by the runner, also on Ctrl-C: the interval in progress is written
    with status or contextlib.nullcontext():
        summary = run_sources(pipeline, expanded, sinks, track=not no_track)
    summary.failed_sources = problems + summary.failed_sources
    _print_summary(summary, annotated.written if annotated else [])
    if report is not None:
        console_err.print(f"wrote {report} ({counts.rows} row(s))", highlight=False)
    if summary.interrupted:
        console_err.print("interrupted; outputs closed")
        raise typer.Exit(130)
    if summary.failed_sources:
        raise typer.Exit(2)


def _check_json_target(target: Path, sources, annotated) -> None:
    """JSON lines are appended: never to an input, nor to the file an annotated output will replace."""
    from maskwatch.errors import InputError

    taken = {Path(s.path).resolve() for s in sources if hasattr(s, "path")}
    if annotated is not None:
        taken |= {annotated.target_for(s.name, video=s.kind != "image").resolve() for s in sources}
    if target.resolve() in taken:
        raise InputError(f"--json {target}: is an input or an annotated output; choose another file")


def _check_report_target(target: Path, sources) -> None:
    """The report is a CSV of its own: never an input file, never a folder."""
    from maskwatch.errors import InputError

    if not str(target).strip():
        raise InputError("--report: empty path")
    if target.is_dir():
        raise InputError(f"--report {target}: is a folder; give a file name such as report.csv")
    if target.resolve() in {Path(s.path).resolve() for s in sources if hasattr(s, "path")}:
        raise InputError(f"--report {target}: is an input; choose another file")


class _WindowSink:
    """Annotated frames shown in a window; q or Esc stops the run as Ctrl-C does."""

    def write(self, result, source) -> None:
        import cv2

        from maskwatch.media.draw import annotate

        cv2.imshow("maskwatch", annotate(result.image, result.faces))
        if cv2.waitKey(1 if source.kind != "image" else 500) & 0xFF in (ord("q"), 27):
            raise KeyboardInterrupt

    def close(self) -> None:
        pass


def _window(show: bool) -> _WindowSink | None:
    """A sink drawing frames in a window, or None (with a clear note) when there is no display."""
    if not show:
        return None
    reason = display_available()
    if reason:
        log.warning("--show: %s; continuing without a window", reason)
        return None
    return _WindowSink()


def _print_summary(summary, written: list[Path]) -> None:
    if summary.frames == 0 and summary.failed_sources:
        return  # nothing was read: the error lines above say it all; an empty table would only be noise
    table = Table(title="maskwatch detect", show_header=True, header_style="bold")
    table.add_column("class")
    table.add_column("faces", justify="right")
    table.add_column("people (tracked)", justify="right")
    for label in sorted(set(summary.faces_per_class) | set(summary.people_per_class)):
        table.add_row(label, str(summary.faces_per_class.get(label, 0)), str(summary.people_per_class.get(label, "-")))
    console_err.print(table)
    console_err.print(
        f"{summary.frames} frame(s), {summary.faces} face(s) in {summary.seconds:.2f}s ({summary.fps:.1f} fps)"
    )
    for path in written:
        console_err.print(f"wrote {path}")
    if summary.failed_sources:
        console_err.print(f"{len(summary.failed_sources)} source(s) failed", style="red")
