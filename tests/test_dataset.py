"""Split rules on hand-made records: stratification with mixed groups, determinism, manifest round trip."""

from __future__ import annotations

from collections import Counter

import pytest

from maskwatch.data.dataset import ImageRecord, stratified_group_split


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
