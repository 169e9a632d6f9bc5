"""Split rules on hand-made records: stratification with mixed groups, determinism, manifest round trip."""

from __future__ import annotations

from collections import Counter

import cv2
import numpy as np
import pytest
from PIL import Image

from maskwatch.data.dataset import ImageRecord, hamming, phash, stratified_group_split


def _records() -> list[ImageRecord]:
    """600 single images per real class, plus 150 'source face + correct + incorrect synthetic' triples."""
    out = []
    for cls in ("with_mask", "without_mask"):
        out += [ImageRecord(f"{cls}/{i}.jpg", cls, f"{cls}{i}", "0" * 16, group=f"{cls}{i}") for i in range(600)]
    for i in range(150):
        for cls in ("without_mask", "with_mask", "incorrect_mask"):
            out.append(ImageRecord(f"{cls}/s{i}.jpg", cls, f"s{cls}{i}", "0" * 16, group=f"synth{i}"))
    return out


def test_every_class_gets_its_share_even_when_it_only_comes_in_mixed_groups():
    records = stratified_group_split(_records(), ["incorrect_mask", "with_mask", "without_mask"], seed=0)
    totals = Counter(r.label for r in records)
    for split, share in (("train", 0.8), ("val", 0.1), ("test", 0.1)):
        counts = Counter(r.label for r in records if r.split == split)
        for cls, total in totals.items():
            assert counts[cls] / total == pytest.approx(share, abs=0.02), (split, cls)
    by_group: dict[str, set[str]] = {}
    for r in records:
        by_group.setdefault(r.group, set()).add(r.split)
    assert all(len(splits) == 1 for splits in by_group.values())


def test_split_depends_on_seed_not_on_order():
    records = _records()
    first = stratified_group_split(records, ["incorrect_mask", "with_mask", "without_mask"], seed=3)
    shuffled = stratified_group_split(records[::-1], ["incorrect_mask", "with_mask", "without_mask"], seed=3)
    assert sorted((r.path, r.split) for r in first) == sorted((r.path, r.split) for r in shuffled)
    other = stratified_group_split(records, ["incorrect_mask", "with_mask", "without_mask"], seed=4)
    assert sorted((r.path, r.split) for r in first) != sorted((r.path, r.split) for r in other)


def test_bad_fractions_are_refused():
    from maskwatch.errors import InputError

    with pytest.raises(InputError, match="sum to 1"):
        stratified_group_split(_records(), ["with_mask"], fractions=(0.5, 0.2, 0.2))


def _phash_cases(astronaut_rgb: np.ndarray) -> list[Image.Image]:
    """A real face, its crops and mirror, noise of many sizes, and the degenerate flat and striped images."""
    rng = np.random.default_rng(3)
    face = Image.fromarray(astronaut_rgb)
    cases = [face, face.transpose(Image.Transpose.FLIP_LEFT_RIGHT), face.crop((120, 30, 330, 250)), face.convert("L")]
    cases += [face.crop((x, y, x + s, y + s)) for x, y, s in rng.integers(0, 250, (40, 3)) + (0, 0, 12)]
    sizes = rng.integers(6, 200, (60, 2))
    cases += [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for h, w in sizes]
    cases += [Image.fromarray(np.full((40, 30, 3), v, np.uint8)) for v in (0, 1, 128, 255)]
    for period in range(1, 20):
        stripes = np.tile((np.arange(64) // period % 2 * 255).astype(np.uint8), (64, 1))
        cases += [Image.fromarray(stripes), Image.fromarray(np.ascontiguousarray(stripes.T))]
    return cases


def test_phash_is_bit_for_bit_imagehash(astronaut_bgr):
    """Split manifests store these hashes: the NumPy pHash must give imagehash's exactly, edge cases included."""
    imagehash = pytest.importorskip("imagehash")
    for i, image in enumerate(_phash_cases(cv2.cvtColor(astronaut_bgr, cv2.COLOR_BGR2RGB))):
        assert phash(image) == str(imagehash.phash(image)), i


def test_phash_hand_checked_cases():
    flat = Image.fromarray(np.full((10, 10), 77, np.uint8))
    assert phash(flat) == "8000000000000000"  # only the DC coefficient is above the median (0)
    ramp = Image.fromarray(np.tile(np.arange(0, 256, 8, dtype=np.uint8), (32, 1)))
    assert phash(ramp) != phash(ramp.transpose(Image.Transpose.FLIP_LEFT_RIGHT))
    assert hamming("8000000000000000", "8000000000000003") == 2
    assert hamming(phash(ramp), phash(ramp)) == 0
