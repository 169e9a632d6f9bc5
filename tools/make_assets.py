"""Regenerate src/maskwatch/assets/ from scikit-image's sample photos (PyPI package scikit-image).

Usage: pip install scikit-image && python tools/make_assets.py
astronaut.jpg: NASA's public-domain portrait of Eileen Collins, as shipped by
``skimage.data.astronaut()``; the demo input and the benchmark's face source.
"""

from pathlib import Path

import cv2
import skimage.data

ASSETS = Path(__file__).resolve().parent.parent / "src" / "maskwatch" / "assets"


def main() -> None:
    ASSETS.mkdir(parents=True, exist_ok=True)
    astronaut = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)
    cv2.imwrite(str(ASSETS / "astronaut.jpg"), astronaut, [cv2.IMWRITE_JPEG_QUALITY, 88])
    print(f"wrote {ASSETS / 'astronaut.jpg'}")


if __name__ == "__main__":
    main()
