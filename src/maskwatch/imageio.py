"""Safe image decoding: clear errors for missing, empty, corrupt and oversized input."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from maskwatch.errors import InputError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
MAX_PIXELS = 50_000_000
"""Refuse images above this many pixels: guards against decompression bombs."""


def is_image_path(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def decode_image(data: bytes, name: str = "image", max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode encoded image bytes into a BGR uint8 array, or raise ``InputError``."""
    if not data:
        raise InputError(f"{name}: empty file")
    buffer = np.frombuffer(data, dtype=np.uint8)
    width, height = _header_size(buffer)
    if width * height > max_pixels:
        raise InputError(f"{name}: {width}x{height} pixels is over the limit of {max_pixels}")
    image = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
    if image is None or image.size == 0:
        raise InputError(f"{name}: not a readable image (corrupt or unsupported format)")
    if image.shape[0] * image.shape[1] > max_pixels:
        raise InputError(f"{name}: {image.shape[1]}x{image.shape[0]} pixels is over the limit of {max_pixels}")
    return image


def read_image(path: str | Path, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Read an image file as BGR uint8, or raise ``InputError`` with a one-line reason."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a folder, not an image")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    return decode_image(data, str(path), max_pixels)


def _header_size(buffer: np.ndarray) -> tuple[int, int]:
    """Width and height from a PNG/JPEG header without decoding pixels (0, 0 if unknown)."""
    data = buffer[:65536].tobytes()
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data[:2] == b"\xff\xd8":
        i = 2
        while i + 9 < len(data):
            if data[i] != 0xFF:
                i += 1
                continue
            marker = data[i + 1]
            if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
                return int.from_bytes(data[i + 7 : i + 9], "big"), int.from_bytes(data[i + 5 : i + 7], "big")
            i += 2 + int.from_bytes(data[i + 2 : i + 4], "big")
    return 0, 0
