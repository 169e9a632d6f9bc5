"""Synthetic masked faces: draw a procedurally generated mask, fitted by face landmarks, onto unmasked faces.

For every source face the 468 face-mesh landmarks (``maskwatch.inference.landmarks``) give the face's outline, nose,
mouth and chin in the photo, so the mask follows the face's pose (roll, yaw, scale) rather than a fixed
template. A mask is a surface spanned between a *top edge* (a curve from cheek to cheek through the
placement's top point) and the *bottom edge* (the jaw line from the landmarks, pushed out a little and down
under the chin). A texture made in that surface's (u, v) coordinates (pleats, cloth patterns, an N95-like
cup with seam and nose clip) is shaded like a curved surface, mapped onto the photo through a dense inverse map,
matched to the photo's exposure, colour cast and noise, and blended in with feathered, slightly blurred
edges so that a sharp outline does not give the synthetic images away.

Placements:

* ``correct``: nose bridge to under the chin → class ``with_mask``;
* ``below_nose``: nose uncovered, mouth and chin covered → class ``incorrect_mask``;
* ``chin``: on the chin only, mouth and nose uncovered → class ``incorrect_mask``.

Every output is named ``<source stem>__synth-<placement>-<n>.jpg`` (``SYNTH_NAME``) so that dataset splits
can keep all images made from one face with that face (``maskwatch.data.dataset.NAME_GROUP_RULES``), and is
recorded in ``synth.csv`` with its source, style, placement and seed so any image can be made again.

Modules: ``geometry`` (placements, the mask surface), ``textures``, ``rendering`` (one mask on one photo) and
``run`` (a folder in, images and ``synth.csv`` out).
"""

from maskwatch.data.synth.geometry import CLASS_OF_PLACEMENT, INCORRECT_PLACEMENTS, PLACEMENTS, STYLES
from maskwatch.data.synth.rendering import render_mask
from maskwatch.data.synth.run import (
    CSV_COLUMNS,
    CSV_NAME,
    SYNTH_NAME,
    SynthSummary,
    contact_sheet,
    find_landmarks,
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
