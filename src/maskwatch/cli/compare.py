"""``maskwatch compare``: training runs side by side (table, Markdown, CSV and a plot)."""

from __future__ import annotations

import typer
from rich.table import Table

from maskwatch.cli.app import app, console


@app.command()
def compare(
    runs: list[str] = typer.Argument(..., help="Finished training run folders (maskwatch train --out)."),
    out: str = typer.Option(None, "--out", "-o", help="Write compare.md, compare.csv and compare.png here."),
    heldout: str = typer.Option(
        None,
        "--heldout",
        help="A folder dataset from a source no run trained on (e.g. from collect-boxes --split test): "
        "every bundle is scored on it as evaluate scores it.",
    ),
    cache: str = typer.Option(
        None, help="Face-crop cache folder for --heldout [~/.cache/maskwatch]; 'none' disables it."
    ),
    threads: int = typer.Option(None, min=1, help="ONNX Runtime threads for the timing [as detect uses]."),
) -> None:
    """One table of runs: backbone, weights, input size, accuracy with its CI, parameters, size, speed here."""
    from maskwatch.cli.progress import RichReporter
    from maskwatch.evaluation.compare import COLUMNS, compare_runs, read_run, write_outputs
    from maskwatch.inference.onnx_runtime import default_threads
    from maskwatch.media.files import prepare_output_folder

    for folder in runs:  # every run is checked before --out is made or anything is timed
        read_run(folder)
    if out:
        prepare_output_folder(out)
    with RichReporter() as reporter:
        reporter.start("Measuring runs", len(runs))
        rows = compare_runs(runs, heldout, cache, threads, progress=lambda run: reporter.advance(1, run))
    table = Table(title=f"{len(rows)} runs; ms per crop: one crop per call, {threads or default_threads()} threads")
    for column in COLUMNS:
        table.add_column(column, justify="left" if column in ("run", "backbone", "weights") else "right")
    for row in rows:
        table.add_row(*row.cells())
    console.print(table)
    if out:
        written = write_outputs(rows, prepare_output_folder(out))
        console.print("written: " + ", ".join(str(p) for p in written.values()), highlight=False)
