"""Which photos a model learnt from: collect-boxes' records, the bundle's list, and evaluate-scenes' overlap count."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from maskwatch.data.annotations import AnnotatedImage
from maskwatch.data.dataset import Dataset, ImageRecord
from maskwatch.data.provenance import (
    TRAINED_ON,
    append_crop_records,
    crop_photo_digest,
    photo_digest,
    photo_digests,
    recorded_digests,
)
from maskwatch.evaluation.scene_run import training_overlap
from maskwatch.inference.bundle import BundleMeta
from maskwatch.training.classifier.trainer import photos_learnt_from


def write_photo(path: Path, value: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((20, 20, 3), value, np.uint8))
    return path


def test_digest_follows_content_not_name(tmp_path: Path) -> None:
    a = write_photo(tmp_path / "a.png", 10)
    b = write_photo(tmp_path / "renamed" / "b.png", 10)
    c = write_photo(tmp_path / "c.png", 200)
    assert photo_digest(a) == photo_digest(b) != photo_digest(c)
    assert len(photo_digest(a)) == 16
    assert photo_digests([c, a, b]) == sorted({photo_digest(a), photo_digest(c)})


def test_recorded_digests_ignores_what_is_not_a_list_of_strings() -> None:
    assert recorded_digests({TRAINED_ON: ["ab", 3, "cd"]}) == {"ab", "cd"}
    assert recorded_digests({TRAINED_ON: "ab"}) == set()
    assert recorded_digests(None) == set() and recorded_digests({}) == set()


def test_crop_records_are_found_through_links(tmp_path: Path) -> None:
    """A training folder of links into collect-boxes' output still finds each crop's photo."""
    faces = tmp_path / "faces"
    crop = write_photo(faces / "with_mask" / "p1__box-00.jpg", 50)
    other = write_photo(faces / "with_mask" / "p2__box-00.jpg", 60)
    append_crop_records(faces, [("with_mask/p1__box-00.jpg", "aaaa")])
    append_crop_records(faces, [("with_mask/p2__box-00.jpg", "bbbb")])  # a second run appends
    link = tmp_path / "data" / "with_mask" / "scenes" / "p1__box-00.jpg"
    link.parent.mkdir(parents=True)
    os.symlink(crop.resolve(), link)
    cache: dict = {}
    assert crop_photo_digest(link, cache) == "aaaa"
    assert crop_photo_digest(other, cache) == "bbbb"
    assert crop_photo_digest(write_photo(tmp_path / "loose" / "x.jpg", 1)) is None  # no record: not a scene face
    (faces / "photos.csv").write_bytes(b"\xff\xfe broken")
    assert crop_photo_digest(crop) is None  # a damaged record costs the note, never the run


def test_bundle_records_photos_of_train_and_val_crops_only(tmp_path: Path) -> None:
    faces = tmp_path / "faces"
    for name, digest in (("a", "1111"), ("b", "2222"), ("c", "3333")):
        write_photo(faces / "x" / f"{name}__box-00.jpg", 9)
        append_crop_records(faces, [(f"x/{name}__box-00.jpg", digest)])
    write_photo(faces / "y" / "plain.jpg", 3)
    records = [
        ImageRecord("x/a__box-00.jpg", "x", "", "", split="train"),
        ImageRecord("x/b__box-00.jpg", "x", "", "", split="val"),
        ImageRecord("x/c__box-00.jpg", "x", "", "", split="test"),  # scored, never learnt from
        ImageRecord("y/plain.jpg", "y", "", "", split="train"),
    ]
    assert photos_learnt_from(Dataset(faces, ["x", "y"], records)) == ["1111", "2222"]
    assert BundleMeta(classes=["x", "y"], input_size=64).trained_on_photos == []  # older bundles record none


def test_overlap_counts_each_model_of_the_pipeline(tmp_path: Path) -> None:
    photos = [write_photo(tmp_path / f"p{i}.png", 40 * i) for i in range(3)]
    digests = [photo_digest(p) for p in photos]
    images = [AnnotatedImage(p, 20, 20) for p in photos]
    bundle = SimpleNamespace(name="maskwatch:default", meta=SimpleNamespace(trained_on_photos=digests))
    member = SimpleNamespace(name="maskface", meta={TRAINED_ON: digests[:1]}, members=[], base=None)
    blind = SimpleNamespace(name="blazeface", members=[], base=None)  # records nothing
    ensemble = SimpleNamespace(name="maskface+blazeface", members=[member, blind], base=None)
    pipeline = SimpleNamespace(classifier=SimpleNamespace(bundle=bundle), photo_detector=ensemble)
    assert training_overlap(pipeline, images) == {"maskwatch:default": 3, "maskface": 1}
    bundle.meta.trained_on_photos = ["0" * 16]
    assert training_overlap(pipeline, images[1:]) == {}  # the detector's photo is not among these


@pytest.mark.parametrize("name", ["maskwatch:default", "maskwatch:scenes"])
def test_packaged_models_record_the_scene_photos_they_learnt_from(name: str) -> None:
    from maskwatch.detectors.maskface import load_meta
    from maskwatch.inference.bundle import load_bundle

    # train and validation crops' photos: at most both halves' 425 distinct photos (one of the 426 is there twice)
    assert 200 <= len(load_bundle(name).meta.trained_on_photos) <= 425
    assert len(recorded_digests(load_meta())) == 213  # maskface: the train half


def test_a_detector_run_records_its_scenes_and_those_of_the_model_it_started_from() -> None:
    from maskwatch.training.detector.loop import photos_learnt_from as detector_photos

    scenes = [SimpleNamespace(photo="b"), SimpleNamespace(photo="a"), SimpleNamespace(photo="")]
    assert detector_photos(scenes) == {TRAINED_ON: ["a", "b"]}
    assert detector_photos(scenes, {TRAINED_ON: ["c", "a"]}) == {TRAINED_ON: ["a", "b", "c"]}
