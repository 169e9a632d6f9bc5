"""``maskwatch evaluate-scenes``: the whole pipeline scored on box-annotated photos (mAP, recall by size)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import typer
from rich.table import Table

from maskwatch.cli.app import app, console, console_err
from maskwatch.cli.options import Conf, FaceDetectorName, HeadWeight, MinFace, Model, pipeline_settings
from maskwatch.settings import CURVE_CONF, DEFAULT_CONF, DEFAULT_HEAD_WEIGHT, DEFAULT_MIN_FACE

KNOWN_ALIASES = {
    "mask_weared_incorrect": "incorrect_mask",
    "mask_worn_incorrectly": "incorrect_mask",
    "incorrect": "incorrect_mask",
    "mask": "with_mask",
    "masked": "with_mask",
    "face_mask": "with_mask",
    "no_mask": "without_mask",
    "nomask": "without_mask",
}
"""Dataset spellings mapped to the usual bundle classes when the bundle lacks the dataset's name."""


def parse_class_map(spec: str | None) -> dict[str, str]:
    """``a=b,c=d`` or a JSON file holding {"a": "b"}; ``b`` may be ``-`` to ignore class ``a``."""
    from maskwatch.errors import InputError
    from maskwatch.media.files import read_json_input

    if not spec:
        return {}
    path = Path(spec)
    if spec.endswith(".json") or path.is_file():
        data = read_json_input(path, f"--class-map {spec}")
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            raise InputError(f"--class-map {spec}: expected a JSON object of dataset name → bundle name")
        return {str(k): v for k, v in data.items()}
    out = {}
    for item in spec.split(","):
        if item.count("=") != 1 or not all(part.strip() for part in item.split("=")):
            raise InputError(f"--class-map: {item!r} is not DATASET_NAME=BUNDLE_NAME")
        source, target = (part.strip() for part in item.split("="))
        out[source] = target
    return out


def check_bundle_classes(names: list[str], bundle: list[str], option: str) -> None:
    """A one-line error for the first name in ``names`` that is not one of the bundle's classes."""
    from maskwatch.errors import InputError

    for name in names:
        if name not in bundle:
            raise InputError(f"{option}: the model has no class {name!r} (its classes: {', '.join(bundle)})")


def check_dataset_classes(explicit: dict[str, str], dataset: set[str]) -> None:
    """A ``--class-map`` source the annotations never use is a typo, not a no-op: one line naming their classes."""
    from maskwatch.errors import InputError

    for name in explicit:
        if name not in dataset:
            known = ", ".join(sorted(dataset)) or "none"
            raise InputError(f"--class-map: the annotations have no class {name!r} (their classes: {known})")


def resolve_class_map(explicit: dict[str, str], dataset: set[str], bundle: list[str]) -> dict[str, str]:
    """Explicit mappings first; then known aliases for dataset classes the bundle does not know.

    An explicit target must be one of the bundle's classes, or ``-`` (ignore that dataset class).
    """
    from maskwatch.evaluation.scene_metrics import IGNORE

    check_bundle_classes([t for t in explicit.values() if t != IGNORE], bundle, "--class-map")
    out = dict(explicit)
    for name in sorted(dataset):
        if name not in out and name not in bundle and KNOWN_ALIASES.get(name) in bundle:
            out[name] = KNOWN_ALIASES[name]
    return out


@app.command("evaluate-scenes")
def evaluate_scenes_command(
    images_dir: Path = typer.Argument(..., help="Folder of the annotated photos."),
    annotations: Path = typer.Argument(..., help="Folder of Pascal VOC .xml files, one .xml, or a COCO .json."),
    model: Model = None,
    detector: FaceDetectorName = None,
    out: Path = typer.Option(Path("scene_eval"), "--out", "-o", help="Folder for the JSON, PR curves and HTML."),
    class_map: str = typer.Option(
        None, "--class-map", help="DATASET=BUNDLE[,..] or a JSON file; BUNDLE '-' ignores that class."
    ),
    split: str = typer.Option(
        "all", "--split", help="all, or train/test: the fixed scenes split (even image number train, odd test)."
    ),
    map_classes: str = typer.Option(
        None, "--map-classes", help="Comma-separated classes for the headline mAP [every class with ground truth]."
    ),
    conf: Conf = DEFAULT_CONF,
    curve_conf: float = typer.Option(
        CURVE_CONF,
        "--curve-conf",
        min=0.0,
        max=1.0,
        help="Detection threshold of the second run that draws the PR curve for AP (as detector benchmarks do);"
        " at or above --conf: one run, AP of the operating point's own curve.",
    ),
    min_face: MinFace = DEFAULT_MIN_FACE,
    head_weight: HeadWeight = DEFAULT_HEAD_WEIGHT,
    iou: list[float] = typer.Option([0.5, 0.3], "--iou", help="IoU thresholds for a match (repeatable)."),
    worst: int = typer.Option(12, "--worst", min=0, help="How many of the worst images to draw in the report."),
    limit: int = typer.Option(0, "--limit", min=0, help="Evaluate only the first N images (0: all)."),
) -> None:
    """Run the full pipeline on box-annotated photos and report AP, recall by face size and the worst images.

    AP is over the whole precision-recall curve: the same pipeline is run a second time with only its
    detection threshold lowered to --curve-conf. Precision, recall, the confusion table and the worst
    images are of the pipeline as set (--conf, --min-face): what a user gets.
    """
    from maskwatch.cli.detect import setup_logging
    from maskwatch.data.annotations import load_annotations, select_split
    from maskwatch.errors import InputError
    from maskwatch.evaluation.scene_report import trained_on_text, write_report
    from maskwatch.evaluation.scene_run import evaluate_scenes
    from maskwatch.media.files import prepare_output_folder
    from maskwatch.pipeline import Detector

    setup_logging()  # "warning: …" lines, e.g. plots skipped without matplotlib
    if not images_dir.is_dir():
        raise InputError(f"{images_dir}: no such folder of images")
    if any(not 0.0 < t <= 1.0 for t in iou):
        raise InputError("--iou: thresholds must be in (0, 1]")
    annotated = load_annotations(annotations, images_dir)
    explicit_map = parse_class_map(class_map)
    check_dataset_classes(explicit_map, {o.label for i in annotated for o in i.objects})  # any split, any --limit
    images = select_split(annotated, split)
    if limit:
        images = images[:limit]
    if not images:
        raise InputError(f"{annotations}: no annotated images to evaluate (split {split})")
    missing = [i.image_path for i in images if not i.image_path.is_file()]
    if missing:
        raise InputError(f"{missing[0]}: image named by an annotation not found ({len(missing)} missing in all)")

    chosen = pipeline_settings(model, detector, conf, min_face, head_weight)
    pipeline = Detector.from_settings(chosen)
    curve_pipeline = Detector.from_settings(replace(chosen, conf=curve_conf)) if curve_conf < conf else None
    dataset_classes = {o.label for i in images for o in i.objects}
    mapping = resolve_class_map(explicit_map, dataset_classes, pipeline.classes)
    selected = [c.strip() for c in map_classes.split(",") if c.strip()] if map_classes else None
    check_bundle_classes(selected or [], pipeline.classes, "--map-classes")
    settings = {
        "images_dir": str(images_dir),
        "annotations": str(annotations),
        "split": split,
        "model": pipeline.classifier.bundle.source,
        "detector": pipeline.photo_detector.name,  # scene photos are still photos
        "conf": conf,
        "curve_conf": min(conf, curve_conf),
        "min_face": min_face,
        "head_weight": head_weight,
        "class_map": mapping,
        "ranking_score": "detection_score * class probability",
    }
    prepare_output_folder(out)  # a bad --out is refused now, not after the whole evaluation
    with console_err.status("evaluating") as status:
        report = evaluate_scenes(
            images,
            pipeline,
            classes=pipeline.classes,
            class_map=mapping,
            ious=tuple(iou),
            map_classes=selected,
            settings=settings,
            progress=lambda i, n: status.update(f"evaluating {i}/{n}"),
            curve_detector=curve_pipeline,
        )
    written = write_report(report, out, worst=worst)
    _print(report)
    if report.trained_on:
        console_err.print(f"warning: {trained_on_text(report)}", highlight=False)
    for kind in ("json", "html"):
        console_err.print(f"wrote {written[kind]}")


def _print(report) -> None:
    from maskwatch.evaluation.scene_metrics import SIZE_BUCKETS

    conf, curve_conf = report.settings.get("conf"), report.settings.get("curve_conf")
    at = f" at conf {conf:g}" if isinstance(conf, float | int) else ""
    ap = f"AP (score ≥ {curve_conf:g})" if isinstance(curve_conf, float | int) else "AP"
    for iou, m in report.metrics.items():
        table = Table(title=f"IoU ≥ {iou:g}", header_style="bold")
        for col in ("class", ap, f"precision{at}", f"recall{at}", "faces"):
            table.add_column(col, justify="left" if col == "class" else "right")
        for name, cm in [*m.per_class.items(), ("face (any class)", m.face)]:
            table.add_row(name, _f(cm.ap), _f(cm.precision), _f(cm.recall), str(cm.n_gt))
        console.print(table)
        sizes = ", ".join(f"{b} {_f(m.recall_for(b))} ({m.recall_by_size[b][1]})" for b, _, _ in SIZE_BUCKETS)
        found, total = m.recall_min_side
        console.print(
            f"mAP {_f(report.metrics[iou].mean_ap(report.map_classes))}"
            + (f" over {', '.join(report.map_classes)}" if report.map_classes else "")
            + f" · detection recall: {sizes}; ≥ 24 px {_f(found / total if total else float('nan'))} ({total})"
            + _budget_text(m)
            + f" · accuracy on found faces {_f(m.accuracy)} ({m.matched})",
            highlight=False,
        )


def _budget_text(m) -> str:
    """The ≥ 24 px recall at the bar's false-positive budget, strict and COCO-sized (see recall_at_fp_budget)."""
    from maskwatch.evaluation.scene_metrics import MAX_FP_PER_IMAGE

    strict, sized = m.at_fp_budget.get("all"), m.at_fp_budget.get("sized")
    if strict is None or sized is None:
        return ""
    return (
        f"; at ≤ {MAX_FP_PER_IMAGE:g} false faces/img {_f(strict.recall)} (score ≥ {_f(strict.threshold)}),"
        f" {_f(sized.recall)} counting only false faces ≥ 24 px"
    )


def _f(value: float) -> str:
    return "–" if value != value else f"{value:.3f}"
