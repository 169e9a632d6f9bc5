"""A Rich progress bar behind the small ``Reporter`` interface the library talks to."""

from __future__ import annotations

from types import TracebackType

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from maskwatch.cli.app import console_err


def progress_bar(*columns: str | ProgressColumn) -> Progress:
    """A progress bar on stderr, drawn only on a terminal: in a log or a pipe it would print its last state (an
    empty line or a 0/? bar) above an error's one line."""
    return Progress(*columns, console=console_err, transient=False, disable=not console_err.is_terminal)


class RichReporter:
    """One bar per stage (description, steps, ETA); messages print above the bars."""

    def __init__(self) -> None:
        self.progress = progress_bar(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[status]}"),
        )
        self.task: int | None = None

    def __enter__(self) -> RichReporter:
        self.progress.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if kind is not None and not issubclass(kind, KeyboardInterrupt):
            for task in list(self.progress.task_ids):  # an error: its one line alone, no half-drawn bar above it
                self.progress.remove_task(task)
        else:
            self._log_stage()
        self.progress.stop()

    def start(self, description: str, total: int) -> None:
        self._log_stage()
        self.task = self.progress.add_task(description, total=max(total, 1), status="")

    def _log_stage(self) -> None:
        """Off a terminal (a log file) no bar is drawn: each finished stage gets one line instead."""
        if self.task is None or not self.progress.disable:
            return
        task = self.progress.tasks[self.task]
        status = f"; {task.fields['status']}" if task.fields.get("status") else ""
        elapsed = task.elapsed or 0.0
        self.message(f"{task.description}: {task.completed:g}/{task.total:g} in {elapsed:.0f} s{status}")

    def advance(self, steps: int = 1, status: str = "") -> None:
        if self.task is not None:
            self.progress.update(self.task, advance=steps, status=status)

    def message(self, text: str) -> None:
        self.progress.console.print(text, highlight=False, markup=False)
