"""Classifier recipes judged out of fold on the scenes' train half, never touching its test half.

The scene faces of the train half (``collect-boxes``) are split into folds by photo;
each fold's faces are classified by a model trained on face-mask plus the other folds'
faces, with the recipe's ``maskwatch train`` options. Reported per recipe, over all
scene faces: accuracy, recall per class, "argmax AP" (a face counts only under its
predicted class, ranked by that class's probability, as the scene mAP counts it) and
ranking AP. With ``--pipeline`` also the whole pipeline (the README's crowd settings)
on each fold's photos with that fold's bundle, pooled: the detector was trained on these
photos, so those figures read higher than the test half and only compare recipes.

This is how the recipe of ``maskwatch:scenes`` was chosen (its model card). Runs are
kept in ``--work`` and reused, so an interrupted benchmark continues. Example::

    python benchmarks/bench_scene_folds.py --recipe default= --recipe balanced=--balance-sources \\
        --pipeline --json benchmarks/results/scene_folds.json
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from bench_scenes import machine, merge_results
from sklearn.metrics import average_precision_score

from maskwatch.data.annotations import load_annotations, scene_fold, select_split
from maskwatch.evaluation.classification import classify_folder
from maskwatch.evaluation.scene_metrics import compute_metrics, voc_ap
from maskwatch.evaluation.scene_run import evaluate_scenes
from maskwatch.inference.bundle import load_bundle
from maskwatch.media.imageio import is_image_path

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
CLASSES = ["with_mask", "without_mask"]
CLASS_MAP = {"mask_weared_incorrect": "-"}


def cli(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "maskwatch", *args], check=True, stdout=subprocess.DEVNULL)


def link_tree(source: Path, target: Path, keep=lambda path: True) -> None:
    """Symbolic links to every kept image (the shared data is never copied)."""
    target.mkdir(parents=True, exist_ok=True)
    for path in sorted(source.iterdir()):
        if is_image_path(path) and keep(path) and not (target / path.name).exists():
            os.symlink(path.resolve(), target / path.name)


def build_folds(work: Path, folds: int) -> None:
    """WORK/scene_faces (collect-boxes, train half), WORK/fold<k> (train sets), WORK/held<k> (held-out faces)."""
    faces = work / "scene_faces"
    if not faces.is_dir():  # the scenes bundle's recipe: mask_weared_incorrect left out
        scenes = SHARED / "data" / "scenes"
        class_map = ",".join(f"{k}={v}" for k, v in CLASS_MAP.items())
        images, annotations = str(scenes / "images"), str(scenes / "annotations")
        cli("collect-boxes", images, annotations, "--out", str(faces), "--class-map", class_map)
    for k in range(folds):
        for cls in CLASSES:
            link_tree(SHARED / "data" / "face-mask" / cls, work / f"fold{k}" / cls / "face-mask")
            link_tree(faces / cls, work / f"fold{k}" / cls / "scenes", lambda p, k=k: scene_fold(p.name, folds) != k)
            link_tree(faces / cls, work / f"held{k}" / cls, lambda p, k=k: scene_fold(p.name, folds) == k)


def train_folds(work: Path, recipe: str, options: list[str], folds: int, weights: Path) -> list[Path]:
    bundles = []
    for k in range(folds):
        run = work / "runs" / recipe / f"fold{k}"
        if not (run / "bundle" / "bundle.json").is_file():
            shutil.rmtree(run, ignore_errors=True)  # an interrupted run: start that fold again
            print(f"training {recipe} fold {k} ...", flush=True)
            cli("train", str(work / f"fold{k}"), "--out", str(run), "--weights", str(weights), *options)
        bundles.append(run / "bundle")
    return bundles


def held_out_probabilities(bundle_dir: Path, held: Path) -> tuple[np.ndarray, np.ndarray]:
    """Labels and class probabilities (in CLASSES order) of the held-out crops, cut as training cut them."""
    bundle = load_bundle(bundle_dir)
    scored = classify_folder(bundle, held)
    order = [list(bundle.meta.classes).index(c) for c in CLASSES]
    return np.array([CLASSES.index(r.label) for r in scored.records]), scored.probabilities[:, order]


def argmax_ap(labels: np.ndarray, probabilities: np.ndarray, cls: int) -> float:
    """AP of one class when each face is reported only under its predicted class."""
    mine = probabilities.argmax(1) == cls
    order = np.argsort(-probabilities[mine, cls], kind="stable")
    hits = (labels[mine] == cls)[order]
    tp = np.cumsum(hits)
    return voc_ap(tp / max(1, (labels == cls).sum()), tp / np.arange(1, len(hits) + 1))


def crop_figures(labels: np.ndarray, probabilities: np.ndarray) -> dict:
    predicted = probabilities.argmax(1)
    argmax = {c: round(argmax_ap(labels, probabilities, i), 4) for i, c in enumerate(CLASSES)}
    return {
        "faces": int(len(labels)),
        "accuracy": round(float((predicted == labels).mean()), 4),
        "recall": {c: round(float((predicted[labels == i] == i).mean()), 4) for i, c in enumerate(CLASSES)},
        "argmax_ap": argmax,
        "argmax_ap_mean": round(float(np.mean(list(argmax.values()))), 4),
        "ranking_ap": {
            c: round(float(average_precision_score(labels == i, probabilities[:, i])), 4) for i, c in enumerate(CLASSES)
        },
    }


def pipeline_figures(bundles: list[Path], folds: int) -> dict:
    from maskwatch import Detector

    scenes = SHARED / "data" / "scenes"
    photos = select_split(load_annotations(scenes / "annotations", scenes / "images"), "train")
    results = []
    for k, bundle in enumerate(bundles):
        mine = [p for p in photos if scene_fold(p.image_path.name, folds) == k]
        detector = Detector(model=str(bundle), detector="maskface-multiscale", conf=0.2, min_face=4)
        results += evaluate_scenes(mine, detector, CLASSES, CLASS_MAP, ious=(0.5,)).results
    metrics = compute_metrics(results, 0.5, CLASSES)
    return {
        "photos": len(results),
        "mAP": round(metrics.mean_ap(CLASSES), 4),
        "ap": {c: round(metrics.per_class[c].ap, 4) for c in CLASSES},
        "accuracy_on_found_faces": round(metrics.accuracy, 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", action="append", required=True, help="NAME=TRAIN OPTIONS (may be empty)")
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--work", type=Path, default=Path("runs/scene_folds"))
    parser.add_argument("--weights", type=Path, default=SHARED / "weights" / "mobilenet_v2_0.35_no_top.weights.h5")
    parser.add_argument("--pipeline", action="store_true", help="Also the whole pipeline on each fold's photos.")
    parser.add_argument("--json", type=Path, help="Merge the results into this file (keyed by recipe).")
    args = parser.parse_args()

    build_folds(args.work, args.folds)
    results = {}
    for spec in args.recipe:
        name, _, option_text = spec.partition("=")
        options = shlex.split(option_text)
        bundles = train_folds(args.work, name, options, args.folds, args.weights)
        held = [held_out_probabilities(b, args.work / f"held{k}") for k, b in enumerate(bundles)]
        labels = np.concatenate([h[0] for h in held])
        probabilities = np.concatenate([h[1] for h in held])
        results[name] = {"train_options": options, "out_of_fold": crop_figures(labels, probabilities)}
        if args.pipeline:
            results[name]["pipeline_held_out_photos"] = pipeline_figures(bundles, args.folds)
        print(name, results[name], flush=True)
    if args.json:
        merge_results(args.json, "recipes", results, folds=args.folds, machine=machine())


if __name__ == "__main__":
    main()
