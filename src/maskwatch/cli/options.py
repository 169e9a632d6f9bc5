"""The pipeline's command-line options, declared once and shared by every command that runs the pipeline.

``detect``, ``serve``, ``batch``, ``bench``, ``evaluate-scenes`` (and ``collect``, which runs the face detector
only) take them with the same names, ranges and help, so a result of one can be reproduced through another.
Each command keeps its own default in its signature (``collect`` skips faces under 40 px, for example).
"""

from __future__ import annotations

from typing import Annotated

import typer

from maskwatch.settings import PipelineSettings

Model = Annotated[
    str | None,
    typer.Option(
        "--model", "-m", help="Model bundle folder or maskwatch:NAME [default bundle] ($MASKWATCH_MODEL sets it)."
    ),
]
FaceDetectorName = Annotated[
    str | None,
    typer.Option(
        "--detector",
        help="Face detector (see `maskwatch info`) [the bundle's, for still photos its multi-scale sibling; "
        "collect: maskface].",
    ),
]
Conf = Annotated[float, typer.Option("--conf", min=0.0, max=1.0, help="Face detection score threshold.")]
MinFace = Annotated[
    int,
    typer.Option(
        "--min-face",
        min=1,
        help="Faces whose shorter side is under this (px) are too_small: not classified (collect: not saved).",
    ),
]
HeadWeight = Annotated[
    float,
    typer.Option("--head-weight", min=0.0, max=1.0, help="Share of maskface's own class guess blended into the class."),
]


def pipeline_settings(
    model: str | None, detector: str | None, conf: float, min_face: int, head_weight: float
) -> PipelineSettings:
    """The options above as one ``PipelineSettings``."""
    return PipelineSettings(model=model, detector=detector, conf=conf, min_face=min_face, head_weight=head_weight)
