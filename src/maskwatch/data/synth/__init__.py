"""Synthetic masked faces drawn onto unmasked ones, fitted by face landmarks (see ``run`` for the recipe)."""

from maskwatch.data.synth.run import (
    CLASS_OF_PLACEMENT,
    CSV_COLUMNS,
    CSV_NAME,
    INCORRECT_PLACEMENTS,
    PLACEMENTS,
    STYLES,
    SYNTH_NAME,
    SynthSummary,
    contact_sheet,
    find_landmarks,
    render_mask,
    synthesize,
)

__all__ = [
    "CLASS_OF_PLACEMENT",
    "CSV_COLUMNS",
    "CSV_NAME",
    "INCORRECT_PLACEMENTS",
    "PLACEMENTS",
    "STYLES",
    "SYNTH_NAME",
    "SynthSummary",
    "contact_sheet",
    "find_landmarks",
    "render_mask",
    "synthesize",
]
