"""Writing a scene evaluation to disk: JSON figures, per-image JSON lines, PR curves, an HTML report.

The HTML puts the worst images first, ground truth beside prediction, because a
number alone never tells whether the detector missed faces or the classifier
named them wrongly.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from maskwatch.errors import InputError
from maskwatch.evaluation.reports import _require_pyplot, pyplot
from maskwatch.evaluation.scene_metrics import (
    MAX_FP_PER_IMAGE,
    RECALL_MIN_SIDE,
    SIZE_BUCKETS,
    ImageResult,
    SceneMetrics,
)
from maskwatch.evaluation.scene_run import SceneReport
from maskwatch.faces import TOO_SMALL
from maskwatch.media.draw import colour_for

JSON_FILE = "scene_report.json"
IMAGES_FILE = "scene_images.jsonl"
PR_FILE = "pr_curves.png"
HTML_FILE = "scene_report.html"
WORST_DIR = "worst"
WORST_LIST = ".drawn"
"""In the worst-images folder: the names the last run drew, the only files a later run may remove."""


def write_report(
    report: SceneReport,
    out_dir: str | Path,
    worst: int = 12,
    read: Any = None,
) -> dict[str, Path]:
    """Write every artefact of ``report`` under ``out_dir``; returns what was written, by kind."""
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{out}: cannot create output folder ({exc.strerror})") from None
    written = {"json": out / JSON_FILE, "images": out / IMAGES_FILE, "pr": out / PR_FILE, "html": out / HTML_FILE}
    written["json"].write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
    _write_images(report, written["images"])
    if pyplot() is None:
        del written["pr"]
    else:
        plot_pr_curves(report, written["pr"])
    gallery = draw_worst(report, out / WORST_DIR, worst, read)
    written["html"].write_text(render_html(report, gallery, pr_plot="pr" in written), encoding="utf-8")
    return written


def _write_images(report: SceneReport, path: Path) -> None:
    """One JSON line per image: ground truth and predictions, for re-scoring without re-running."""
    with path.open("w", encoding="utf-8") as fh:
        for r in report.results:
            row = {
                "image": str(r.image_path),
                "seconds": round(r.seconds, 4),
                "ground_truth": [
                    {"label": g.label, "box": list(g.box), "difficult": g.difficult} for g in r.ground_truth
                ],
                "predictions": [
                    {
                        "label": p.label,
                        "box": [round(v, 1) for v in p.box],
                        "score": round(p.score, 4),
                        "detection_score": round(p.detection_score, 4),
                    }
                    for p in r.predictions
                ],
            }
            fh.write(json.dumps(row) + "\n")


def plot_pr_curves(report: SceneReport, path: Path) -> Path:
    """Precision-recall per class and for face detection, one panel per IoU threshold."""
    plt = _require_pyplot()

    ious = list(report.metrics)
    fig, axes = plt.subplots(1, len(ious), figsize=(5.5 * len(ious), 4.6), squeeze=False)
    for ax, iou in zip(axes[0], ious):
        m = report.metrics[iou]
        for name, cm in [*m.per_class.items(), ("face (any class)", m.face)]:
            if cm.n_gt == 0:
                continue
            rec = np.concatenate([[0.0], cm.curve_recall])
            prec = np.concatenate([[1.0], cm.curve_precision])
            style = "--" if cm is m.face else "-"
            colour = "black" if cm is m.face else np.array(colour_for(name)[::-1]) / 255.0
            ax.step(rec, prec, style, where="post", color=colour, label=f"{name}: AP {cm.ap:.3f}")
        ax.set(
            xlim=(0, 1.0),
            ylim=(0, 1.02),
            xlabel="recall",
            ylabel="precision",
            title=f"IoU ≥ {iou:g}   mAP {report.metrics[iou].mean_ap(report.map_classes):.3f}",
        )
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:  # no class with ground truth: no curve to name
            ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def draw_pair(image_bgr: np.ndarray, result: ImageResult, metrics: SceneMetrics, index: int) -> np.ndarray:
    """Ground truth (left) beside predictions (right); missed faces and spurious boxes are marked."""
    errors = metrics.images[index]
    left, right = image_bgr.copy(), image_bgr.copy()
    scale = max(1.0, 480.0 / max(image_bgr.shape[:2]))
    if scale > 1.0:
        size = (round(image_bgr.shape[1] * scale), round(image_bgr.shape[0] * scale))
        left, right = (cv2.resize(x, size, interpolation=cv2.INTER_LINEAR) for x in (left, right))
    for j, g in enumerate(result.ground_truth):
        note = "difficult" if g.difficult else ("miss" if not errors.gt_found[j] else "")
        _box(left, g.box, scale, colour_for(g.label), note, thick=not note)
    for p, status in zip(result.predictions, errors.pred_status):
        caption = "small" if p.label == TOO_SMALL else f"{p.score:.2f}"
        if status == 0:
            caption += " FP"
        _box(right, p.box, scale, colour_for(p.label), caption, thick=status != 0)
    gap = np.full((left.shape[0], 8, 3), 255, np.uint8)
    return np.concatenate([left, gap, right], axis=1)


def _box(img: np.ndarray, box: Any, scale: float, colour: tuple[int, int, int], caption: str, thick: bool) -> None:
    x1, y1, x2, y2 = (round(v * scale) for v in box)
    cv2.rectangle(img, (x1, y1), (x2, y2), colour, 3 if thick else 1)
    cv2.putText(img, caption, (x1, max(10, y1 - 3)), cv2.FONT_HERSHEY_SIMPLEX, 0.35, colour, 1, cv2.LINE_AA)


def worst_indices(metrics: SceneMetrics, n: int) -> list[int]:
    """Images with most errors (missed + spurious + misclassified) first; ties keep dataset order."""
    order = sorted(range(len(metrics.images)), key=lambda i: -metrics.images[i].total)
    return [i for i in order[:n] if metrics.images[i].total > 0]


def draw_worst(report: SceneReport, folder: Path, n: int, read: Any = None) -> list[tuple[ImageResult, Path]]:
    """Draw the ``n`` worst images at IoU 0.5 (or the first threshold) as JPEGs; returns (result, file)."""
    from maskwatch.media.imageio import read_image

    if n <= 0 or not report.results:
        _remove_stale_worst(folder, keep=set())
        return []
    read = read or read_image
    metrics = report.metrics.get(0.5) or next(iter(report.metrics.values()))
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for rank, i in enumerate(worst_indices(metrics, n)):
        result = report.results[i]
        path = folder / f"{rank + 1:02d}_{Path(result.name).stem}.jpg"
        cv2.imwrite(str(path), draw_pair(read(result.image_path), result, metrics, i))
        out.append((result, path))
    _remove_stale_worst(folder, keep={path.name for _, path in out})
    return out


def _remove_stale_worst(folder: Path, keep: set[str]) -> None:
    """Delete the images an earlier run drew (as listed in ``WORST_LIST``) that this report does not show.

    A file the list does not name is never touched, whatever its name: it is the user's.
    Done after the new images are drawn, so a run that fails half-way never leaves fewer
    pictures than it found; the list is then rewritten with this run's names.
    """
    if not folder.is_dir():
        return
    listing = folder / WORST_LIST
    try:
        earlier = set(listing.read_text(encoding="utf-8").split("\n")) if listing.is_file() else set()
    except (OSError, UnicodeDecodeError):
        earlier = set()
    for name in sorted(earlier - keep - {""}):
        path = folder / Path(name).name  # a name only: never a path out of the folder
        if path.is_symlink() or not path.is_file():
            continue
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise InputError(f"{path}: cannot remove the stale worst image ({exc.strerror})") from None
    try:
        listing.write_text("\n".join(sorted(keep)), encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{listing}: cannot write ({exc.strerror})") from None


def _fmt(value: float | None, digits: int = 3) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def trained_on_text(report: SceneReport) -> str:
    """One sentence naming the models that learnt from the evaluated photos (empty when none did)."""
    if not report.trained_on:
        return ""
    named = ", ".join(f"{name} from {n}" for name, n in report.trained_on.items())
    return f"models learnt from these photos ({named} of {len(report.results)}): the figures flatter them"


def render_html(report: SceneReport, gallery: list[tuple[ImageResult, Path]], pr_plot: bool = True) -> str:
    """A self-contained page (images referenced relatively) with every table and the worst images."""
    e = html.escape
    data = report.to_dict()
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>maskwatch scene evaluation</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:1400px}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f3f3f3}"
        "td:first-child,th:first-child{text-align:left}img{max-width:100%}figure{margin:1em 0}</style></head><body>",
        "<h1>Scene evaluation</h1>",
        f"<p>{data['images']} images, {data['faces']} faces (difficult ones excluded); "
        f"{_fmt(data['seconds_per_image'], 3)} s per image.</p>",
        "<table>" + "".join(f"<tr><th>{e(str(k))}</th><td>{e(str(v))}</td></tr>" for k, v in report.settings.items()),
        "</table>",
    ]
    if report.trained_on:
        parts.append(f"<p><b>Not a result:</b> {e(trained_on_text(report))}.</p>")
    for iou, m in report.metrics.items():
        parts.append(f"<h2>IoU ≥ {iou:g}</h2>")
        selected = f" (over {', '.join(report.map_classes)})" if report.map_classes else ""
        parts.append(
            f"<p><b>mAP{e(selected)}: {_fmt(m.mean_ap(report.map_classes))}</b> · mAP over all classes with "
            f"ground truth: {_fmt(m.mean_ap())} · face AP (any class): {_fmt(m.face.ap)} · "
            f"classification accuracy on found faces: {_fmt(m.accuracy)} ({m.correct}/{m.matched})</p>"
        )
        parts.append("<table><tr><th>class</th><th>AP</th><th>precision</th><th>recall</th><th>GT</th>")
        parts.append("<th>predicted</th><th>TP</th><th>FP</th></tr>")
        for name, cm in [*m.per_class.items(), ("face (any class)", m.face)]:
            parts.append(
                f"<tr><td>{e(name)}</td><td>{_fmt(cm.ap)}</td><td>{_fmt(cm.precision)}</td><td>{_fmt(cm.recall)}</td>"
                f"<td>{cm.n_gt}</td><td>{cm.n_pred}</td><td>{cm.tp}</td><td>{cm.fp}</td></tr>"
            )
        parts.append("</table><table><tr><th>face size (shorter side)</th><th>found</th><th>faces</th>")
        parts.append("<th>detection recall</th></tr>")
        for name, low, high in SIZE_BUCKETS:
            found, total = m.recall_by_size[name]
            span = f"{low:g}–{high:g} px" if not math.isinf(high) else f"≥ {low:g} px"
            parts.append(
                f"<tr><td>{name} ({span})</td><td>{found}</td><td>{total}</td>"
                f"<td>{_fmt(found / total if total else math.nan)}</td></tr>"
            )
        found, total = m.recall_min_side
        parts.append(
            f"<tr><th>≥ {RECALL_MIN_SIDE:g} px</th><th>{found}</th><th>{total}</th>"
            f"<th>{_fmt(found / total if total else math.nan)}</th></tr>"
        )
        for key, what in (("all", "every false face counted"), ("sized", f"false faces ≥ {RECALL_MIN_SIDE:g} px only")):
            point = m.at_fp_budget.get(key)
            if point is not None:
                parts.append(
                    f"<tr><td colspan='3'>≥ {RECALL_MIN_SIDE:g} px at ≤ {MAX_FP_PER_IMAGE:g} false faces per image "
                    f"({what}; score ≥ {_fmt(point.threshold)})</td><td>{_fmt(point.recall)}</td></tr>"
                )
        parts.append("</table>")
        parts.append("<table><tr><th>ground truth ↓ / predicted →</th>")
        parts.extend(f"<th>{e(c)}</th>" for c in m.confusion_cols)
        parts.append("</tr>")
        for row, values in zip(m.confusion_rows, m.confusion):
            parts.append(f"<tr><td>{e(row)}</td>" + "".join(f"<td>{int(v)}</td>" for v in values) + "</tr>")
        parts.append("</table>")
    if pr_plot:
        parts.append(f"<h2>Precision-recall</h2><img src='{PR_FILE}' alt='PR curves'>")
    if gallery:
        parts.append("<h2>Worst images (IoU ≥ 0.5): ground truth left, prediction right</h2>")
        parts.append(
            "<p>Colour is the class (green with_mask, red without_mask, orange incorrect_mask, grey too_small). "
            "Thin boxes are errors: <i>miss</i> = face not found, <i>FP</i> = spurious or duplicate detection; "
            "numbers are ranking scores.</p>"
        )
        metrics = report.metrics.get(0.5) or next(iter(report.metrics.values()))
        by_name = {err.name: err for err in metrics.images}
        for result, path in gallery:
            err = by_name[result.name]
            parts.append(
                f"<figure><figcaption><b>{e(result.name)}</b>: {err.missed} missed, {err.spurious} spurious, "
                f"{err.misclassified} misclassified, {err.too_small} too small</figcaption>"
                f"<img src='{WORST_DIR}/{e(path.name)}' alt='{e(result.name)}'></figure>"
            )
    parts.append("</body></html>\n")
    return "\n".join(parts)
