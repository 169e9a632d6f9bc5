"""Regenerate src/maskwatch/assets/ from scikit-image's sample photos (PyPI package scikit-image).

Usage: pip install scikit-image && python tools/make_assets.py
astronaut.jpg: NASA's public-domain portrait of Eileen Collins, as shipped by
``skimage.data.astronaut()``; the benchmark's face source.
demo.jpg: that photo twice, side by side, the right one with a surgical mask drawn by
``maskwatch.data.synth`` (fitted to the face mesh): the README's demo input, one face of each class.
"""

from pathlib import Path

import cv2
import numpy as np
import skimage.data

from maskwatch.data.synth import find_landmarks, render_mask
from maskwatch.detectors import create_detector
from maskwatch.inference.landmarks import FaceMesh

ASSETS = Path(__file__).resolve().parent.parent / "src" / "maskwatch" / "assets"


def main() -> None:
    ASSETS.mkdir(parents=True, exist_ok=True)
    astronaut = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)
    cv2.imwrite(str(ASSETS / "astronaut.jpg"), astronaut, [cv2.IMWRITE_JPEG_QUALITY, 88])
    print(f"wrote {ASSETS / 'astronaut.jpg'}")
    landmarks = find_landmarks(astronaut, create_detector("blazeface"), FaceMesh())
    masked = render_mask(astronaut, landmarks, "correct", "surgical", np.random.default_rng(7)).image
    head = (slice(0, 384), slice(32, 416))  # the head and shoulders: faces stay large enough at 768x384
    demo = np.hstack([astronaut[head], masked[head]])
    cv2.imwrite(str(ASSETS / "demo.jpg"), demo, [cv2.IMWRITE_JPEG_QUALITY, 85])
    print(f"wrote {ASSETS / 'demo.jpg'}")


if __name__ == "__main__":
    main()
