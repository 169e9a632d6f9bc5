"""Safe image decoding: clear errors for missing, empty, corrupt and oversized input."""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from maskwatch.errors import EmptyInputError, InputError, InputTooLargeError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
MAX_PIXELS = 50_000_000
"""Refuse images above this many pixels: guards against decompression bombs."""
MAX_SIDE = 65_500
"""JPEG's longest side: a longer image can be read (as PNG or TIFF) but not annotated as a JPEG."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


UMASK = _umask()
"""The process's umask, read once at import (reading it means setting it, which is not thread-safe later)."""


def make_public(fd: int) -> None:
    """Give a ``mkstemp`` file (created 0600) the mode a plain ``open`` would: outputs others may read."""
    os.fchmod(fd, 0o666 & ~UMASK)


def is_image_path(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def decode_image(data: bytes, name: str = "image", max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode encoded image bytes into a BGR uint8 array, or raise ``InputError``."""
    if not data:
        raise EmptyInputError(f"{name}: empty file")
    width, height = _header_size(data, name, max_pixels)
    if width * height > max_pixels:
        raise InputTooLargeError(f"{name}: {width}x{height} pixels is over the limit of {max_pixels}")
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None or image.size == 0:
        if max(width, height) > MAX_SIDE:  # e.g. OpenCV's PNG decoder stops at 1,000,000 px a side
            raise InputError(f"{name}: cannot decode a {width}x{height} image (a side beyond the decoder's limit?)")
        raise InputError(f"{name}: not a readable image (corrupt or unsupported format)")
    if image.shape[0] * image.shape[1] > max_pixels:
        raise InputTooLargeError(f"{name}: {image.shape[1]}x{image.shape[0]} pixels is over the limit of {max_pixels}")
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


def _header_size(data: bytes, name: str, max_pixels: int) -> tuple[int, int]:
    """Width and height from the file's header, read by Pillow without decoding pixels.

    Pillow reads JPEG, PNG, WebP, TIFF, BMP … headers however far into the file they lie, so a
    decompression bomb is refused before OpenCV allocates its pixels. Bytes Pillow cannot identify
    are refused too: OpenCV alone also decodes formats (Radiance HDR, OpenEXR …) whose size would
    only be known after decoding them in full.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                return image.size
    except Image.DecompressionBombError:  # over Pillow's own limit (~179 Mpx), far over ours
        raise InputTooLargeError(f"{name}: over the limit of {max_pixels} pixels") from None
    except (OSError, ValueError, SyntaxError):  # not an image Pillow knows: refused before OpenCV sees it
        raise InputError(f"{name}: not a readable image (corrupt or unsupported format)") from None
