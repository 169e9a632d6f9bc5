"""``maskwatch watch CONFIG.toml``: watch cameras and streams until stopped; counts, reports, events and alerts."""

from __future__ import annotations

import logging
import signal
import time

import typer
from rich.table import Table

from maskwatch.cli.app import app, console_err

log = logging.getLogger("maskwatch")

LOG_STATUS_SECONDS = 60.0
"""Off a terminal (a service's log), one status line this often."""


@app.command()
def watch(
    config: str = typer.Argument(..., help="Watch file (TOML): sources, rules, storage, report and alert sinks."),
    report: str = typer.Option(None, "--report", help="CSV file with one row per source and interval [config's]."),
    blur_faces: bool = typer.Option(False, "--blur-faces", help="Blur faces in saved snapshots and clips."),
) -> None:
    """Watch every source of CONFIG (each on its own; one failing leaves the others running) until Ctrl-C."""
    from pathlib import Path

    from maskwatch.cli.detect import setup_logging
    from maskwatch.monitor.config import load_config
    from maskwatch.monitor.status import StatusLine
    from maskwatch.monitor.watch import Monitor

    setup_logging()
    settings = load_config(config, blur_faces=blur_faces)
    if report is not None:
        settings.report.path = Path(report)
    monitor = Monitor(settings)
    console_err.print(
        f"watching {len(settings.sources)} source(s); events in {settings.storage.folder} (Ctrl-C stops)",
        highlight=False,
    )
    status = StatusLine(console_err)
    logged = [time.monotonic()]

    def tick(m: Monitor) -> None:
        """On a terminal the status line; in a log, the same text once every LOG_STATUS_SECONDS."""
        if status.enabled:
            if status.due():
                status.update(m.status_text())
        elif time.monotonic() - logged[0] >= LOG_STATUS_SECONDS:
            logged[0] = time.monotonic()
            log.info("%s", m.status_text())

    interrupted = False
    signal.signal(signal.SIGTERM, _stop_on_sigterm)  # a service manager's stop: the same clean end as Ctrl-C
    monitor.start()
    try:
        with status:
            monitor.wait(on_tick=tick)
    except KeyboardInterrupt:
        interrupted = True
    summary = monitor.stop()
    print_watch_summary(summary)
    if interrupted:
        raise typer.Exit(130)
    if any(s.status == "failed" for s in summary.sources):
        raise typer.Exit(2)


def _stop_on_sigterm(_signum, _frame) -> None:
    raise KeyboardInterrupt


def print_watch_summary(summary) -> None:
    table = Table(title="maskwatch watch", show_header=True, header_style="bold")
    for column in ("source", "status", "frames", "fps", "dropped", "people (tracked)", "events"):
        table.add_column(column, justify="left" if column in ("source", "status", "people (tracked)") else "right")
    for s in summary.sources:
        people = ", ".join(f"{k} {v}" for k, v in sorted(s.people.items())) or "-"
        table.add_row(s.name, s.status, str(s.frames), f"{s.fps:.1f}", str(s.dropped), people, str(s.events))
    console_err.print(table)
    for s in summary.sources:
        if s.error and s.status == "failed":
            console_err.print(f"{s.name}: {s.error}", highlight=False)
    sent, failed = sum(summary.delivered.values()), sum(summary.failed.values())
    console_err.print(
        f"alerts: {sent} delivered, {failed} failed attempt(s), {summary.dropped} dropped from the queue, "
        f"{summary.pending} pending (kept; delivered on the next run)",
        highlight=False,
    )
