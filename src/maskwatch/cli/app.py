"""The Typer application object and the consoles every command prints through."""

import typer
from rich.console import Console

app = typer.Typer(
    name="maskwatch",
    help="Find every face and tell whether it wears a mask properly, wrongly or not at all.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help texts are plain: "[default bundle]" must stay, not be read as a style tag
)
console = Console()
console_err = Console(stderr=True)


@app.callback()
def _root() -> None:
    """Find every face and tell whether it wears a mask properly, wrongly or not at all."""


def format_recall(value: float | None) -> str:
    """A recall for people: four places, or why there is none (a class with no images in that split)."""
    return "n/a (no images)" if value is None else f"{value:.4f}"
