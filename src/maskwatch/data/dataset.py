"""Folder datasets: scanning, content and perceptual hashes, near-duplicate groups, split manifests.

A dataset is a folder with one subfolder per class. Splits are made over *groups*
of images, never single files: exact copies, near-duplicates (perceptual hash)
and files a dataset's naming marks as copies of one original end up on the same
side of a split, so validation and test never score a model on images it saw in
training. No TensorFlow here: ``evaluate`` and other commands reuse this module.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
from PIL import Image

from maskwatch.errors import InputError
from maskwatch.faces import TOO_SMALL
from maskwatch.media.imageio import is_image_path, read_image

if TYPE_CHECKING:
    pass

SPLITS = ("train", "val", "test")
DEFAULT_FRACTIONS = (0.8, 0.1, 0.1)
NEAR_DUPLICATE_BITS = 8
"""Two images whose 64-bit pHash (or the pHash of one's mirror image) differ in at most this many bits are
treated as near-duplicates. On ../shared/data/face-mask, pairs at 0-6 bits are all but one within a class
(copies), at 8 bits 4 of 78 cross classes, at 10 bits 20 of 235: 8 errs on the side of grouping too much."""

MANIFEST_COLUMNS = ("path", "class", "split", "sha256", "phash", "group")

NAME_GROUP_RULES: tuple[tuple[str, str], ...] = (
    # "0_0_0 copy 3.jpg", "0_0_0 copy.jpg", "2020-06-23-120048 (another copy).jpg" are copies of one original
    (r"^(?P<key>.+?)(?: copy(?:[ _]\d+)*| \(another copy\))$", "copy:{cls}/{key}"),
    # "augmented_image_17.jpg": rotated/flipped/brightened copies of a few dozen portraits, subjects unknown
    (r"^(?P<key>augmented_image)_\d+$", "augmented:{cls}/{key}"),
    # RMFD crops "0_0_anhu_12.jpg": one celebrity per name, in both classes; keep each person on one side
    (r"^\d+_\d+_(?P<key>[a-z]+)_\d+$", "subject:{key}"),
    # "<stem>__synth-correct-1.jpg": `maskwatch synth` drew a mask on "<stem>.jpg"; keep them with their source
    (r"^(?P<key>.+?)__synth-[a-z_]+-\d+$", "synth:{key}"),
    # "<photo>__box-03.jpg": `maskwatch collect-boxes` cut face 3 of an annotated photo; one photo, one side
    (r"^(?P<key>.+?)__box-\d+$", "photo:{key}"),
)
"""Filename rules that put files in one group, as SOURCE.md of the face-mask data documents them. A perceptual
hash cannot see that a rotated, flipped copy or another photo of the same person belongs with its original."""


@dataclass(frozen=True)
class ImageRecord:
    """One image of a dataset: where it is, its class, hashes and, once split, its group and split."""

    path: str
    """Relative to the dataset root, with forward slashes."""
    label: str
    sha256: str
    phash: str
    group: str = ""
    split: str = ""


@dataclass
class Dataset:
    """The readable images of a dataset folder and what was skipped (with the reason)."""

    root: Path
    classes: list[str]
    records: list[ImageRecord]
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def file(self, record: ImageRecord) -> Path:
        return self.root / record.path

    def counts(self, split: str | None = None) -> dict[str, int]:
        """Images per class (in one split if given), in class order."""
        counter = Counter(r.label for r in self.records if split is None or r.split == split)
        return {c: counter.get(c, 0) for c in self.classes}


def check_out_outside_dataset(out: str | Path, dataset: str | Path) -> None:
    """Outputs (a run's split, checkpoint, bundle, reports; an evaluation's plots) never land inside the dataset they
    read: a report's PNGs in a class folder would be scored, and trained on, as images of that class."""
    root, target = Path(dataset).resolve(), Path(out).resolve()
    if target == root or root in target.parents:
        raise InputError(f"{out}: --out is inside the dataset folder {dataset}; choose a folder outside it")


def class_folders(root: str | Path, min_classes: int = 2) -> list[Path]:
    """The class subfolders of a dataset folder, or a one-line ``InputError`` why it is not one."""
    root = Path(root)
    if not root.exists():
        raise InputError(f"{root}: dataset folder not found")
    if not root.is_dir():
        raise InputError(f"{root}: a dataset is a folder with one subfolder per class")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise InputError(f"{root}: empty dataset (no class subfolders)")
    if len(folders) < min_classes:
        raise InputError(f"{root}: only one class ({folders[0].name!r}); training needs at least 2 class subfolders")
    if any(p.name == TOO_SMALL for p in folders):
        raise InputError(f"{root / TOO_SMALL}: '{TOO_SMALL}' is reserved (faces too small to classify); rename it")
    return folders


def identical_across_classes(records: Iterable[ImageRecord]) -> list[tuple[str, str]]:
    """Pairs of byte-identical files filed under two classes: at most one label can be right, and a model trained on
    both learns nothing from either."""
    first: dict[str, ImageRecord] = {}
    pairs = []
    for record in records:
        seen = first.setdefault(record.sha256, record)
        if seen.label != record.label:
            pairs.append((seen.path, record.path))
    return pairs


def describe_identical(pairs: Sequence[tuple[str, str]]) -> str:
    """The warning about ``identical_across_classes`` pairs, as train and evaluate both give it."""
    return f"{len(pairs)} file(s) are byte-identical to a file of another class ({pairs[0][0]} = {pairs[0][1]})"


_PHASH_SIDE = 32
_DCT = 2.0 * np.cos(np.pi * np.arange(_PHASH_SIDE)[:, None] * (2 * np.arange(_PHASH_SIDE)[None, :] + 1) / 64)
"""Unnormalised DCT-II matrix (the convention of ``scipy.fftpack.dct``), one row per frequency."""
_DCT_NOISE = 1e-9 * 4 * _PHASH_SIDE**2 * 255
"""Coefficients below this are rounding noise of exact zeros (flat or striped images): counted as 0, as an FFT
gives them, so that a median tie breaks the same way."""


def phash(image: Image.Image) -> str:
    """64-bit perceptual hash as 16 hex digits, bit for bit the ``imagehash.phash`` of the same image.

    Grey, 32 x 32 Lanczos, 2-D DCT, the 8 x 8 lowest frequencies above their median. Split manifests store these
    hashes, so they must not change; the NumPy version spares the install SciPy and PyWavelets.
    """
    pixels = np.asarray(image.convert("L").resize((_PHASH_SIDE, _PHASH_SIDE), Image.Resampling.LANCZOS), np.float64)
    low = (_DCT[:8] @ pixels @ _DCT[:8].T).ravel()
    low[np.abs(low) < _DCT_NOISE] = 0.0
    return f"{int(''.join('1' if b else '0' for b in low > np.median(low)), 2):016x}"


def hamming(a: str, b: str) -> int:
    """Bits in which two hex hashes differ."""
    return (int(a, 16) ^ int(b, 16)).bit_count()


def _perceptual_hashes(image_bgr: np.ndarray) -> tuple[str, str]:
    """pHash of the image and of its mirror image: flipped copies must count as near-duplicates."""

    rgb = Image.fromarray(cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB))
    return phash(rgb), phash(rgb.transpose(Image.Transpose.FLIP_LEFT_RIGHT))


def scan_dataset(
    root: str | Path,
    progress: Callable[[int, int], None] | None = None,
    require_images: bool = True,
    min_classes: int = 2,
) -> tuple[Dataset, dict[str, str]]:
    """Read every image once: content hash, perceptual hash; unreadable files are skipped and listed.

    Returns the dataset and the mirror-image pHash of each record (by path), which only grouping needs.
    Raises ``InputError`` for a missing or empty dataset, one class only, or (with ``require_images``) a class
    folder without a readable image.
    """
    root = Path(root)
    folders = class_folders(root, min_classes)
    files: list[tuple[Path, str]] = []
    skipped: list[tuple[str, str]] = []
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if path.is_dir() or any(part.startswith(".") for part in path.relative_to(root).parts):
                continue
            if is_image_path(path):
                files.append((path, folder.name))
            else:
                skipped.append((path.relative_to(root).as_posix(), "not an image file"))
    records: list[ImageRecord] = []
    mirrored: dict[str, str] = {}
    for i, (path, label) in enumerate(files):
        rel = path.relative_to(root).as_posix()
        try:
            data = path.read_bytes()
            image = read_image(path)
        except InputError as exc:
            skipped.append((rel, str(exc).split(": ", 1)[-1]))
            continue
        except OSError as exc:  # its message is the path again; the reason is strerror (a dangling link: not found)
            skipped.append((rel, f"cannot read ({exc.strerror or type(exc).__name__})"))
            continue
        finally:
            if progress:
                progress(i + 1, len(files))
        ph, ph_mirror = _perceptual_hashes(image)
        records.append(ImageRecord(rel, label, hashlib.sha256(data).hexdigest(), ph))
        mirrored[rel] = ph_mirror
    classes = [f.name for f in folders]
    if require_images:
        counts = Counter(r.label for r in records)
        for name in classes:
            if counts.get(name, 0) == 0:
                raise InputError(f"{root / name}: class folder has no readable images")
    return Dataset(root, classes, records, skipped), mirrored


def name_group(record: ImageRecord, rules: Sequence[tuple[str, str]] = NAME_GROUP_RULES) -> str | None:
    """The group a file's name puts it in (see ``NAME_GROUP_RULES``), or None."""
    stem = Path(record.path).stem
    for pattern, template in rules:
        match = re.match(pattern, stem)
        if match:
            return template.format(cls=record.label, key=match.group("key"))
    return None


def _bits(hashes: Iterable[str]) -> np.ndarray:
    values = np.array([int(h, 16) for h in hashes], dtype=np.uint64)
    return np.unpackbits(values.view(np.uint8).reshape(-1, 8), axis=1).astype(np.float32)


def hamming_matrix(a: Sequence[str], b: Sequence[str]) -> np.ndarray:
    """Pairwise bit differences between two lists of 64-bit hex hashes."""
    x, y = _bits(a), _bits(b)
    return (x @ (1.0 - y).T + (1.0 - x) @ y.T).round().astype(np.int16)


def assign_groups(
    records: Sequence[ImageRecord],
    mirrored: dict[str, str] | None = None,
    max_bits: int = NEAR_DUPLICATE_BITS,
    name_rules: Sequence[tuple[str, str]] = NAME_GROUP_RULES,
) -> list[ImageRecord]:
    """Union exact copies, near-duplicates (pHash, mirror-aware) and name-rule groups into one group id each."""
    n = len(records)
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(i: int, j: int) -> None:
        ri, rj = find(i), find(j)
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)

    named_keys = [name_group(r, name_rules) for r in records]
    synth_keys = {k for k in named_keys if k and k.startswith("synth:")}
    first_by_key: dict[str, int] = {}
    for i, r in enumerate(records):
        keys = [f"sha:{r.sha256}"]
        named = named_keys[i]
        if named:
            keys.append(named)
        if f"synth:{Path(r.path).stem}" in synth_keys:  # the source face of synthetic images, in any class
            keys.append(f"synth:{Path(r.path).stem}")
        for key in keys:
            if key in first_by_key:
                union(first_by_key[key], i)
            else:
                first_by_key[key] = i
    if n and max_bits >= 0:
        hashes = [r.phash for r in records]
        mirrors = [(mirrored or {}).get(r.path, r.phash) for r in records]
        for start in range(0, n, 1024):  # blocks keep memory flat on large datasets
            block = slice(start, min(n, start + 1024))
            close = hamming_matrix(hashes[block], hashes) <= max_bits
            close |= hamming_matrix(mirrors[block], hashes) <= max_bits
            for i, j in zip(*np.nonzero(close)):
                if start + i != j:
                    union(start + int(i), int(j))
    roots = [find(i) for i in range(n)]
    return [replace(r, group=f"g{roots[i]:05d}-{records[roots[i]].sha256[:8]}") for i, r in enumerate(records)]


def stratified_group_split(
    records: Sequence[ImageRecord],
    classes: Sequence[str],
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    seed: int = 0,
) -> list[ImageRecord]:
    """Assign whole groups to train/val/test so each split gets about its fraction of every class.

    Groups are placed largest first (big near-duplicate clusters land in train, where the quota is largest),
    ties in a seeded random order; each goes to the split that misses the largest share of its rarest class
    (then of all its classes).
    The result depends only on the records, fractions and seed, not on file-system order.
    """
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-6:
        raise InputError(f"split fractions must be three non-negative numbers that sum to 1, got {list(fractions)}")
    members: dict[str, list[ImageRecord]] = defaultdict(list)
    for r in records:
        members[r.group or f"sha:{r.sha256}"].append(r)
    totals = Counter(r.label for r in records)
    target = {s: {c: totals[c] * f for c in classes} for s, f in zip(SPLITS, fractions)}
    assigned = {s: dict.fromkeys(classes, 0.0) for s in SPLITS}
    keys = sorted(members)
    rng = np.random.default_rng(seed)
    order = [keys[i] for i in rng.permutation(len(keys))]
    order.sort(key=lambda k: -len(members[k]))  # stable: equal sizes keep the seeded order
    split_of: dict[str, str] = {}
    for key in order:
        counts = Counter(r.label for r in members[key])

        rarest = min(counts, key=lambda c: (totals[c], c))

        def need(split: str, counts: Counter[str] = counts, rarest: str = rarest) -> tuple[float, float]:
            # First the number still missing of the group's rarest class (so a rare class that only comes in
            # mixed groups, e.g. synthetic images beside their source, is spread too), then of all its classes.
            rare = target[split][rarest] - assigned[split][rarest]
            return rare, sum(n * (target[split][c] - assigned[split][c]) / totals[c] for c, n in counts.items())

        best = max((s for s, f in zip(SPLITS, fractions) if f > 0), key=need)
        split_of[key] = best
        for c, n in counts.items():
            assigned[best][c] += n
    return [replace(r, split=split_of[r.group or f"sha:{r.sha256}"]) for r in records]


def make_split(
    dataset: Dataset,
    mirrored: dict[str, str] | None = None,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    seed: int = 0,
    max_bits: int = NEAR_DUPLICATE_BITS,
) -> Dataset:
    """Group and split a scanned dataset (a new ``Dataset``; the input is left as it was)."""
    grouped = assign_groups(dataset.records, mirrored, max_bits)
    records = stratified_group_split(grouped, dataset.classes, fractions, seed)
    return Dataset(dataset.root, list(dataset.classes), records, list(dataset.skipped))


def write_manifest(dataset: Dataset, path: str | Path) -> str:
    """Write the split as CSV (one row per image, sorted by path) and return the file's SHA-256."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(MANIFEST_COLUMNS)
    for r in sorted(dataset.records, key=lambda r: r.path):
        writer.writerow([r.path, r.label, r.split, r.sha256, r.phash, r.group])
    data = buffer.getvalue().encode("utf-8")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return hashlib.sha256(data).hexdigest()


def manifest_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def read_manifest(path: str | Path, root: str | Path, classes: Sequence[str] | None = None) -> Dataset:
    """Load a split manifest for the dataset at ``root``; every listed file must still have its content hash.

    Reusing a manifest is how later runs train and test on exactly the same split; a file that changed or
    vanished would silently change that, so it is an error.
    """
    path, root = Path(path), Path(root)
    if not path.is_file():
        raise InputError(f"{path}: split manifest not found")
    try:
        rows = list(csv.DictReader(path.read_text(encoding="utf-8").splitlines()))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{path}: not a split manifest ({exc})") from None
    if not rows or any(col not in rows[0] for col in MANIFEST_COLUMNS):
        raise InputError(f"{path}: not a split manifest (needs columns {', '.join(MANIFEST_COLUMNS)})")
    records = []
    for line, row in enumerate(rows, start=2):
        if row["split"] not in SPLITS:
            raise InputError(f"{path}:{line}: unknown split {row['split']!r}")
        records.append(ImageRecord(row["path"], row["class"], row["sha256"], row["phash"], row["group"], row["split"]))
    found = sorted({r.label for r in records})
    classes = list(classes) if classes is not None else found
    unknown = sorted(set(found) - set(classes))
    if unknown:
        raise InputError(f"{path}: classes {unknown} are not class folders of {root}")
    for r in records:
        file = root / r.path
        if not file.is_file():
            raise InputError(f"{path}: listed image {r.path!r} is missing from {root}")
        if hashlib.sha256(file.read_bytes()).hexdigest() != r.sha256:
            raise InputError(f"{path}: {r.path!r} changed since the manifest was written (content hash differs)")
    return Dataset(root, classes, records)


def split_leaks(records: Sequence[ImageRecord], max_bits: int = NEAR_DUPLICATE_BITS) -> list[tuple[str, str]]:
    """Pairs of images in different splits that are exact or near duplicates (should be empty)."""
    leaks: list[tuple[str, str]] = []
    by_split = {s: [r for r in records if r.split == s] for s in SPLITS}
    for i, a in enumerate(SPLITS):
        for b in SPLITS[i + 1 :]:
            ra, rb = by_split[a], by_split[b]
            if not ra or not rb:
                continue
            close = hamming_matrix([r.phash for r in ra], [r.phash for r in rb]) <= max_bits
            shas = {r.sha256: r for r in rb}
            leaks += [(ra[i].path, rb[j].path) for i, j in zip(*np.nonzero(close))]
            leaks += [(r.path, shas[r.sha256].path) for r in ra if r.sha256 in shas]
    return leaks
