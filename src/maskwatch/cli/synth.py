"""``maskwatch synth``: correctly and wrongly masked faces drawn onto unmasked ones, for training data."""

from __future__ import annotations

from pathlib import Path

import typer

from maskwatch.cli.app import app, console_err, say_warning


@app.command()
def synth(
    source: Path = typer.Option(..., "--from", help="Folder of unmasked face photos (e.g. DATASET/without_mask)."),
    out: Path = typer.Option(..., "--out", "-o", help="Dataset folder to add with_mask/ and incorrect_mask/ to."),
    correct: int = typer.Option(1, "--correct", min=0, help="Correctly worn masks to make per face."),
    incorrect: int = typer.Option(1, "--incorrect", min=0, help="Wrongly worn masks (below nose / on chin) per face."),
    seed: int = typer.Option(0, "--seed", help="Base random seed; each output's own seed goes to synth.csv."),
    styles: str = typer.Option("surgical,cloth,n95", "--styles", help="Comma-separated mask styles to draw from."),
    limit: int = typer.Option(None, "--limit", min=1, help="Use only the first N source images (sorted)."),
    copy_originals: bool = typer.Option(
        False, "--copy-originals", help="Also copy each usable source face to OUT/without_mask/."
    ),
    sheet: Path = typer.Option(None, "--sheet", help="Also write a contact sheet PNG of this run's first faces."),
) -> None:
    """Draw masks fitted to each face's landmarks: with_mask (nose to chin) and incorrect_mask (below nose, chin)."""
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

    from maskwatch.cli.progress import progress_bar
    from maskwatch.data.synth import contact_sheet, synthesize
    from maskwatch.errors import InputError
    from maskwatch.media.files import prepare_output_folder

    if sheet is not None:  # checked before the run, not after every image is drawn
        if sheet.suffix.lower() != ".png":
            raise InputError(f"--sheet {sheet}: give a .png file name")
        prepare_output_folder(sheet.parent)

    wanted = tuple(s.strip() for s in styles.split(",") if s.strip())
    columns = [TextColumn("synth"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[note]}")]
    with progress_bar(*columns, TimeElapsedColumn()) as bar:
        task = bar.add_task("synth", total=None, note="")

        def progress(done: int, total: int, summary) -> None:
            note = f"{len(summary.written)} written · {len(summary.no_landmarks)} without landmarks"
            bar.update(task, completed=done, total=total, note=note)

        summary = synthesize(
            source,
            out,
            correct=correct,
            incorrect=incorrect,
            seed=seed,
            styles=wanted,
            limit=limit,
            copy_originals=copy_originals,
            progress=progress,
        )
    classes = ", ".join(f"{n} {name}" for name, n in sorted(summary.by_class.items()))
    console_err.print(
        f"wrote {len(summary.written)} image(s) ({classes or 'none'}) to {out} from {summary.sources} source(s); "
        f"skipped {len(summary.no_landmarks)} without face landmarks, {len(summary.unreadable)} unreadable"
        + (f", {summary.already} made by an earlier run" if summary.already else "")
        + (f"; copied {summary.copied} original(s) to without_mask" if copy_originals else ""),
        highlight=False,
    )
    console_err.print(f"provenance: {out / 'synth.csv'}", highlight=False)
    if sheet is not None and summary.written:
        import cv2

        if not cv2.imwrite(str(sheet), contact_sheet(out, summary.written)):
            raise InputError(f"--sheet {sheet}: cannot write")
        console_err.print(f"contact sheet: {sheet}", highlight=False)
    for problem in summary.unreadable:
        say_warning(problem)
    if summary.interrupted:
        console_err.print("interrupted; every image written so far is complete and recorded")
        raise typer.Exit(130)
