"""``maskwatch bench``: reproducible speed figures of the installed pipeline."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from maskwatch.cli.app import app, console
from maskwatch.cli.options import Conf, FaceDetectorName, HeadWeight, MinFace, Model, pipeline_settings
from maskwatch.settings import DEFAULT_CONF, DEFAULT_HEAD_WEIGHT, DEFAULT_MIN_FACE


@app.command()
def bench(
    model: Model = None,
    detector: FaceDetectorName = None,
    conf: Conf = DEFAULT_CONF,
    min_face: MinFace = DEFAULT_MIN_FACE,
    head_weight: HeadWeight = DEFAULT_HEAD_WEIGHT,
    frames: int = typer.Option(200, "--frames", min=1, help="Frames timed per scenario."),
    faces: list[int] = typer.Option([1, 5], "--faces", min=1, max=6, help="Faces per frame, one scenario each."),
    size: str = typer.Option("640x480", "--size", help="Frame size WIDTHxHEIGHT, e.g. 1920x1080 for an HD stream."),
    out: Path = typer.Option(None, "--out", help="Also write the figures as JSON here."),
) -> None:
    """Frames per second (640×480 unless --size) with 1 and 5 faces on this machine, with time per stage."""
    from maskwatch.errors import InputError
    from maskwatch.evaluation.bench import machine_info, parse_size, run_bench
    from maskwatch.media.files import prepare_output_folder
    from maskwatch.pipeline import Detector

    frame_size = parse_size(size)
    if out is not None:  # checked before minutes of timing, not after
        if out.is_dir():
            raise InputError(f"--out {out}: is a folder; give a .json file name")
        prepare_output_folder(out.parent)
    pipeline = Detector.from_settings(pipeline_settings(model, detector, conf, min_face, head_weight))
    results = [run_bench(pipeline, n, frames=frames, size=frame_size) for n in faces]
    stages = sorted({s for r in results for s in r["ms_per_stage"]})
    width, height = frame_size
    table = Table(title=f"maskwatch bench — {width}×{height}, detector {pipeline.face_detector.name}")
    for column in ["faces", "found", "fps", "ms/frame", *[f"{s} ms" for s in stages]]:
        table.add_column(column, justify="right")
    for r in results:
        per_stage = [str(r["ms_per_stage"].get(s, "-")) for s in stages]
        table.add_row(
            str(r["faces_in_frame"]), str(r["faces_found_per_frame"]), str(r["fps"]), str(r["ms_per_frame"]), *per_stage
        )
    console.print(table)
    report = {"machine": machine_info(), "model": pipeline.model_info().model_dump(), "results": results}
    if out:
        try:
            out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        except OSError as exc:  # the figures above are printed; say which file could not take them
            raise InputError(f"{out}: cannot write the figures ({exc.strerror or exc})") from None
        console.print(f"wrote {out}")
