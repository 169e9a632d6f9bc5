"""``maskwatch batch``: process video archives and photo sets on Ray, with per-input reports."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import typer
from rich.table import Table
from rich.text import Text

from maskwatch.cli.app import app, console_err
from maskwatch.cli.options import Conf, FaceDetectorName, HeadWeight, MinFace, Model, pipeline_settings
from maskwatch.settings import DEFAULT_CONF, DEFAULT_HEAD_WEIGHT, DEFAULT_MIN_FACE


@app.command()
def batch(
    inputs: list[str] = typer.Argument(
        ..., help="Folders, globs, video/image files or URLs, or .txt files listing one of those per line."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder: one sub-folder per video or photo set."),
    ray_address: str = typer.Option(
        None, "--ray-address", help="Ray cluster to run on (auto, ray://host:10001); default: a local Ray instance."
    ),
    workers: int = typer.Option(
        None, "--workers", "-w", min=1, help="Worker actors (one CPU each) (default: all CPUs of the Ray instance)."
    ),
    model: Model = None,
    detector: FaceDetectorName = None,
    conf: Conf = DEFAULT_CONF,
    min_face: MinFace = DEFAULT_MIN_FACE,
    head_weight: HeadWeight = DEFAULT_HEAD_WEIGHT,
    resume: bool = typer.Option(False, "--resume", help="Skip inputs whose outputs are complete from an earlier run."),
    chunk_frames: int = typer.Option(256, "--chunk-frames", min=1, help="Frames per video chunk (scheduling grain)."),
    photo_batch: int = typer.Option(32, "--photo-batch", min=1, help="Photos per chunk."),
    retries: int = typer.Option(
        3, "--retries", min=0, help="Times Ray re-runs a chunk whose worker died (then once more on a fresh worker)."
    ),
    no_track: bool = typer.Option(False, "--no-track", help="Do not track faces across video frames."),
) -> None:
    """Run detection over many videos and photos on Ray; write JSON lines, CSV counts, summaries and plots."""
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from maskwatch.cli.progress import progress_bar
    from maskwatch.errors import require_extra

    require_extra("ray", "batch", "maskwatch batch")
    from maskwatch.batch import BatchOptions, run_batch
    from maskwatch.cli.detect import setup_logging

    setup_logging()
    options = BatchOptions(
        out=out,
        pipeline=pipeline_settings(model, detector, conf, min_face, head_weight),
        workers=workers,
        ray_address=ray_address,
        resume=resume,
        chunk_frames=chunk_frames,
        photo_batch=photo_batch,
        retries=retries,
        track=not no_track,
    )
    bar = progress_bar(
        TextColumn("[bold]chunks"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[frames]} frames · {task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    state = {"task": None, "frames": 0, "start": None}
    handlers = [h for h in logging.getLogger("maskwatch").handlers if isinstance(h, logging.StreamHandler)]
    previous: list = []

    def progress(total_chunks: int | None = None, advance: int = 0, frames: int = 0) -> None:
        import time

        if total_chunks is not None:
            # The bar starts once the work does (Ray is up): an error before that stays one line, with no empty bar.
            bar.start()
            # Log lines go through the bar's redirected stderr, so they print above it instead of through it.
            previous.extend(h.setStream(sys.stderr) for h in handlers)
            state["task"] = bar.add_task("chunks", total=total_chunks, frames=0, rate="")
            state["start"] = time.perf_counter()
            return
        state["frames"] += frames
        elapsed = time.perf_counter() - state["start"]
        rate = f"{state['frames'] / elapsed:.1f} frames/s" if elapsed > 0 else ""
        bar.update(state["task"], advance=advance, frames=state["frames"], rate=rate)

    try:
        report = run_batch(inputs, options, progress=progress)
    finally:
        if state["start"] is not None:
            bar.stop()
        for handler, stream in zip(handlers, previous):
            if stream is not None:
                handler.setStream(stream)
    _print_report(report, out)
    if report.interrupted:
        console_err.print("interrupted; finished inputs are complete, run again with --resume")
        raise typer.Exit(130)
    if report.has_problems:  # as `detect`: every result is written, but something was skipped, failed or bad
        raise typer.Exit(2)


def _print_report(report, out: Path) -> None:
    classes = report.classes or sorted({c for u in report.units for c in u.people_per_class})
    table = Table(title="maskwatch batch", show_header=True, header_style="bold")
    table.add_column("input", overflow="fold")
    table.add_column("kind")
    table.add_column("status")
    table.add_column("frames", justify="right")
    table.add_column("faces", justify="right")
    for c in classes:
        table.add_column(f"people {c}", justify="right")
    table.add_column("masked", justify="right")
    for u in report.units:
        style = {"failed": "red", "resumed": "dim"}.get(u.status, "")
        status = u.status
        if u.errors and u.status != "failed":
            style, status = "yellow", f"{u.status}, {len(u.errors)} error{'s' if len(u.errors) > 1 else ''}"
        table.add_row(
            u.input,
            u.kind,
            Text(status, style=style),
            str(u.frames),
            str(u.faces),
            *[str(u.people_per_class.get(c, 0)) if u.kind == "video" else "-" for c in classes],
            "-" if u.masked_share is None else f"{u.masked_share:.0%}",
        )
    console_err.print(table)
    console_err.print(
        f"{report.frames} frame(s) in {report.seconds:.1f}s ({report.fps:.1f} frames/s) on {report.workers} worker(s); "
        f"{report.chunks} chunk(s), {report.retried_chunks} retried"
    )
    console_err.print(f"wrote {out / 'summary.csv'}", highlight=False, soft_wrap=True)
    # Each problem was logged once as it happened (above the progress bar); one closing line counts them.
    counts = [
        (len(report.problems), "input(s) skipped"),
        (len(report.failed), "failed"),
        (len(report.with_errors), "with errors"),
    ]
    parts = [f"{n} {what}" for n, what in counts if n]
    if parts:
        console_err.print(
            f"[red]problems:[/] {', '.join(parts)}; see the errors above and in summary.csv's errors column",
            highlight=False,
            markup=True,
        )
