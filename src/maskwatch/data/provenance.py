"""Which annotated photos a model learnt from, recorded by content.

A model scored on the photos it trained on reads better than it is. Training records a short
SHA-256 of every annotated photo it learnt from in the model's metadata (``trained_on_photos``),
so ``evaluate-scenes`` can say so whatever the photos are called or wherever they lie.
``collect-boxes`` leaves the same record beside its crops (``photos.csv``), through which
``maskwatch train`` finds the photos behind a classifier's scene faces.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterable, Mapping
from pathlib import Path

TRAINED_ON = "trained_on_photos"
"""Metadata key (bundle.json, a detector's JSON) of the sorted photo digests a model learnt from."""
DIGEST_CHARS = 16
"""Hex characters kept of each SHA-256: 64 bits, no collisions among any realistic photo set."""
PHOTOS_FILE = "photos.csv"
"""Written by ``collect-boxes`` into its output: each crop (``CLASS/NAME``) and the digest of its photo."""


def photo_digest(path: str | Path) -> str:
    """The first ``DIGEST_CHARS`` hex characters of the file's SHA-256."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:DIGEST_CHARS]


def photo_digests(paths: Iterable[str | Path]) -> list[str]:
    """Sorted distinct digests of the files (what a model's metadata records)."""
    return sorted({photo_digest(p) for p in paths})


def recorded_digests(meta: Mapping | None) -> set[str]:
    """The digests a model's metadata records; empty for a model that records none (or a malformed record)."""
    value = (meta or {}).get(TRAINED_ON)
    if not isinstance(value, list):
        return set()
    return {v for v in value if isinstance(v, str)}


def append_crop_records(out: Path, rows: Iterable[tuple[str, str]]) -> None:
    """Add (``CLASS/NAME`` of a crop, digest of its photo) rows to ``out/photos.csv``."""
    rows = list(rows)
    if not rows:
        return
    path = out / PHOTOS_FILE
    new = not path.is_file()
    with path.open("a", newline="") as handle:
        writer = csv.writer(handle)
        if new:
            writer.writerow(["crop", "photo_sha256"])
        writer.writerows(rows)


def crop_photo_digest(crop: str | Path, cache: dict[Path, dict[str, str]] | None = None) -> str | None:
    """The digest of the photo a ``collect-boxes`` crop was cut from, found beside the crop's real file (links
    followed); None for any other image."""
    real = Path(crop).resolve()
    root = real.parent.parent
    cache = {} if cache is None else cache
    if root not in cache:
        cache[root] = _read_records(root / PHOTOS_FILE)
    return cache[root].get(f"{real.parent.name}/{real.name}")


def _read_records(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    try:
        with path.open(newline="") as handle:
            return {
                row["crop"]: row["photo_sha256"]
                for row in csv.DictReader(handle)
                if row.get("crop") and row.get("photo_sha256")
            }
    except (OSError, UnicodeDecodeError, csv.Error):
        return {}  # a damaged record only costs the note, never a training run
