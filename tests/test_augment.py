"""Crop augmentation: the low-resolution option makes a sharp crop look like a small face cut from a photo."""

from __future__ import annotations

import numpy as np

from maskwatch.training.classifier.augment import AugmentConfig, augment_batch, augment_one, shrink_and_enlarge

STILL = AugmentConfig(
    rotation=0.0, zoom=0.0, shift=0.0, shear=0.0, flip=False, brightness=0.0, contrast=0.0, blur=0.0, jpeg=0.0
)
"""Every other transform off, so only the low-resolution step can change a crop."""


def checkerboard(size: int = 128, cell: int = 2) -> np.ndarray:
    """Fine detail (2-px cells) that a crop shrunk to a few dozen pixels cannot keep."""
    yy, xx = np.indices((size, size))
    board = (((yy // cell) + (xx // cell)) % 2 * 255).astype(np.uint8)
    return np.repeat(board[..., None], 3, axis=2)


def detail(image: np.ndarray) -> float:
    """Mean absolute difference between horizontal neighbours: high for fine texture, ~0 for a smooth crop."""
    pixels = image.astype(np.float32)
    return float(np.abs(np.diff(pixels, axis=1)).mean())


def test_shrink_and_enlarge_keeps_shape_and_drops_fine_detail() -> None:
    board = checkerboard()
    out = shrink_and_enlarge(board, 16)
    assert out.shape == board.shape and out.dtype == np.uint8
    assert detail(board) > 100
    assert detail(out) < 10  # 2-px cells averaged away at 16 px
    assert abs(float(out.mean()) - float(board.mean())) < 8  # area averaging keeps the brightness


def test_shrink_and_enlarge_leaves_a_crop_no_larger_than_the_side_alone() -> None:
    board = checkerboard(size=32)
    assert np.array_equal(shrink_and_enlarge(board, 32), board)
    assert np.array_equal(shrink_and_enlarge(board, 48), board)


def test_low_res_share_is_applied_as_asked() -> None:
    board = checkerboard()
    batch = np.stack([board] * 40)
    never = augment_batch(batch, np.random.default_rng(0), STILL)
    assert np.array_equal(never, batch)  # low_res defaults to 0: crops stay as sharp as before
    always = augment_batch(batch, np.random.default_rng(0), AugmentConfig(**{**STILL.__dict__, "low_res": 1.0}))
    assert all(detail(img) < 40 for img in always)  # 12-48 px cannot hold 2-px cells
    half = augment_batch(batch, np.random.default_rng(0), AugmentConfig(**{**STILL.__dict__, "low_res": 0.5}))
    blurred = sum(detail(img) < 40 for img in half)
    assert 8 <= blurred <= 32


def test_sides_come_from_the_configured_range() -> None:
    board = checkerboard(cell=4)
    cfg = AugmentConfig(**{**STILL.__dict__, "low_res": 1.0, "low_res_sides": (64, 64)})
    out = augment_one(board, np.random.default_rng(1), cfg)
    assert np.array_equal(out, shrink_and_enlarge(board, 64))
