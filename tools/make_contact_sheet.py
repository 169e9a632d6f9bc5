"""Regenerate docs/synth_contact_sheet.png from a PyPI package's photo only (scikit-image's astronaut).

Usage: python tools/make_contact_sheet.py
Six variants of the public-domain astronaut portrait (mirrored, turned, darker, warmer,
smaller) go through ``maskwatch synth`` (one correct and two wrongly worn masks each);
the sheet shows each source beside its synthetic versions.
"""

import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import skimage.data

DOCS = Path(__file__).resolve().parent.parent / "docs"


def variants(photo: np.ndarray) -> dict[str, np.ndarray]:
    h, w = photo.shape[:2]

    def turn(angle: float) -> np.ndarray:
        matrix = cv2.getRotationMatrix2D((w / 2, h / 3), angle, 1.0)
        return cv2.warpAffine(photo, matrix, (w, h), borderMode=cv2.BORDER_REFLECT)

    warm = photo.astype(np.float32) * np.float32([0.85, 0.95, 1.12])  # BGR
    return {
        "astronaut": photo,
        "mirrored": photo[:, ::-1],
        "turned_left": turn(14),
        "turned_right": turn(-10),
        "darker": (photo * 0.55).astype(np.uint8),
        "warmer": np.clip(warm, 0, 255).astype(np.uint8),
    }


def main() -> None:
    photo = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)
    with tempfile.TemporaryDirectory() as tmp:
        sources, out = Path(tmp) / "faces", Path(tmp) / "out"
        sources.mkdir()
        for name, image in variants(photo).items():
            cv2.imwrite(str(sources / f"{name}.jpg"), image[:400, 40:440])
        command = [
            sys.executable,
            "-m",
            "maskwatch",
            "synth",
            "--from",
            str(sources),
            "--out",
            str(out),
            "--correct",
            "1",
            "--incorrect",
            "2",
            "--seed",
            "3",
            "--sheet",
            str(DOCS / "synth_contact_sheet.png"),
        ]
        subprocess.run(command, check=True)


if __name__ == "__main__":
    main()
