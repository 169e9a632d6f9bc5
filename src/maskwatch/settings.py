"""Pipeline defaults shared by the Python API, every CLI command and the web server.

A module of plain constants, so that the CLI can show them in ``--help`` without importing
ONNX Runtime or OpenCV.
"""

DEFAULT_CONF = 0.5
"""Face detection score threshold: maskface's low-false-positive operating point (chosen on the scenes' train half)."""
DEFAULT_MIN_FACE = 16
"""Faces whose shorter side is below this many pixels are reported as too small, not classified."""
DEFAULT_HEAD_WEIGHT = 0.5
"""Share of a mask-aware detector's own class guess in a face's probabilities (the classifier has the rest).
Fixed at an even split, not tuned: both were trained on the scenes' train half, so it cannot tune it fairly."""
CURVE_CONF = 0.05
"""Detection threshold of the run that draws ``evaluate-scenes``' PR curves (AP over the whole curve, as detector
benchmarks score); the user's ``conf`` sets the operating point reported beside it."""
