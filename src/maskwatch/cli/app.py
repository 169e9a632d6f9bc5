"""The Typer application object and the consoles every command prints through."""

import typer
from rich.console import Console
from rich.markup import escape

app = typer.Typer(
    name="maskwatch",
    help="Find every face and tell whether it wears a mask properly, wrongly or not at all.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help texts are plain: "[default bundle]" must stay, not be read as a style tag
)
# Printed text is plain (a path's "[1]" is not a style tag; markup only where asked for) and stderr never wraps: a
# message is one line in a log, however long its paths.
console = Console(markup=False)
console_err = Console(stderr=True, soft_wrap=True, markup=False)


@app.callback()
def _root() -> None:
    """Find every face and tell whether it wears a mask properly, wrongly or not at all."""


def say_error(text: str) -> None:
    """``error: TEXT`` on stderr, TEXT printed as it is (a path's "[1]" is not a style tag)."""
    console_err.print(f"[red]error:[/] {escape(text)}", highlight=False, markup=True)


def say_warning(text: str) -> None:
    console_err.print(f"[yellow]warning:[/] {escape(text)}", highlight=False, markup=True)


def format_recall(value: float | None) -> str:
    """A recall for people: four places, or why there is none (a class with no images in that split)."""
    return "n/a (no images)" if value is None else f"{value:.4f}"
