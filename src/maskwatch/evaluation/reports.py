"""Crop-level reports: classification report, confusion matrix, curves, misclassified grid, calibration.

Shared by ``maskwatch train`` (on its test split) and ``maskwatch evaluate`` (on any
folder dataset), so both write the same files. No TensorFlow here, and no scikit-learn: the metrics are small
NumPy functions that give scikit-learn's numbers and text, so an inference install stays light. Matplotlib is
imported only when a plot is drawn (the ``report`` extra); without it the numbers are still written.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REPORT_TXT = "classification_report.txt"
REPORT_JSON = "classification_report.json"
CONFUSION_PNG = "confusion_matrix.png"
CURVES_PNG = "training_curves.png"
MISCLASSIFIED_PNG = "misclassified.png"
RELIABILITY_PNG = "reliability.png"


PLOTS_MISSING = "matplotlib is not installed, so no plots were drawn (pip install 'maskwatch[report]' adds them)"
"""The one line a report that skips its plots gives (the numbers are written all the same)."""

_warned: list[bool] = []


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend, or None (one logged warning per process) when it is not installed."""
    try:
        import matplotlib
    except ImportError:
        if not _warned:
            _warned.append(True)
            logging.getLogger("maskwatch").warning(PLOTS_MISSING)
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _require_pyplot() -> Any:
    plt = pyplot()
    if plt is None:
        raise ImportError(PLOTS_MISSING)
    return plt


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts of (true, predicted) class indices: rows true, columns predicted."""
    true, pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    return np.bincount(true * n_classes + pred, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def _divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """Element-wise ratio with 0 where the denominator is 0 (scikit-learn's ``zero_division=0``)."""
    numerator, denominator = np.asarray(numerator, dtype=np.float64), np.asarray(denominator, dtype=np.float64)
    return np.where(denominator == 0, 0.0, numerator / np.where(denominator == 0, 1.0, denominator))


def _scores(tp: np.ndarray, predicted: np.ndarray, true: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return _divide(tp, predicted), _divide(tp, true), _divide(2.0 * tp, true + predicted)


def _report_rows(y_true: np.ndarray, y_pred: np.ndarray, classes: Sequence[str]) -> list[tuple[str, list[float]]]:
    """(heading, [precision, recall, f1, support]) per class, then accuracy, macro and weighted averages."""
    matrix = confusion_matrix(y_true, y_pred, len(classes))
    tp, predicted, true = np.diag(matrix), matrix.sum(axis=0), matrix.sum(axis=1)
    precision, recall, f1 = _scores(tp, predicted, true)
    support = float(true.sum())
    rows = [(c, [float(v) for v in values]) for c, *values in zip(classes, precision, recall, f1, true)]
    micro = _scores(tp.sum(keepdims=True), predicted.sum(keepdims=True), true.sum(keepdims=True))
    rows.append(("accuracy", [float(m[0]) for m in micro] + [support]))
    rows.append(("macro avg", [float(np.mean(v)) for v in (precision, recall, f1)] + [support]))
    weights = true if true.sum() else None  # no images at all: an unweighted mean, as scikit-learn falls back to
    rows.append(("weighted avg", [float(np.average(v, weights=weights)) for v in (precision, recall, f1)] + [support]))
    return rows


def classification_report(y_true: np.ndarray, y_pred: np.ndarray, classes: Sequence[str]) -> dict[str, Any]:
    """Precision, recall, F1 and support per class, accuracy, macro and weighted averages.

    The same dict as ``sklearn.metrics.classification_report(..., output_dict=True, zero_division=0)`` with
    ``labels`` set to every class index (so existing report JSON files keep their layout and figures).
    """
    headers = ("precision", "recall", "f1-score", "support")
    out: dict[str, Any] = {}
    for heading, values in _report_rows(y_true, y_pred, classes):
        out[heading] = values[0] if heading == "accuracy" else dict(zip(headers, values))
    return out


def classification_report_text(y_true: np.ndarray, y_pred: np.ndarray, classes: Sequence[str], digits: int = 2) -> str:
    """The report as scikit-learn's text table (same columns, widths and rounding)."""
    width = max(max((len(c) for c in classes), default=0), len("weighted avg"), digits)
    headers = ("precision", "recall", "f1-score", "support")
    text = "{:>{width}s} ".format("", width=width) + "".join(f" {h:>9}" for h in headers) + "\n\n"
    row_fmt = "{:>{width}s} " + " {:>9.{digits}f}" * 3 + " {:>9}\n"
    rows = _report_rows(y_true, y_pred, classes)
    # scikit-learn counts in floats when no prediction is right at all, so its table then prints "3.0" for 3
    count = int if (np.asarray(y_true) == np.asarray(y_pred)).any() else float
    for heading, (p, r, f, s) in rows[: len(classes)]:
        text += row_fmt.format(heading, p, r, f, count(s), width=width, digits=digits)
    text += "\n"
    for heading, (p, r, f, s) in rows[len(classes) :]:
        if heading == "accuracy":
            fmt = "{:>{width}s} " + " {:>9.{digits}}" * 2 + " {:>9.{digits}f}" + " {:>9}\n"
            text += fmt.format(heading, "", "", f, count(s), width=width, digits=digits)
        else:
            text += row_fmt.format(heading, p, r, f, count(s), width=width, digits=digits)
    return text


@dataclass
class Evaluation:
    """Predictions on labelled crops and the figures derived from them."""

    classes: list[str]
    y_true: np.ndarray
    probabilities: np.ndarray
    sources: list[str] = field(default_factory=list)
    """Source of each image (e.g. a dataset subfolder); enables per-source accuracy."""

    @property
    def y_pred(self) -> np.ndarray:
        return self.probabilities.argmax(axis=1)

    @property
    def accuracy(self) -> float:
        return float((self.y_pred == self.y_true).mean()) if len(self.y_true) else float("nan")

    def report(self) -> dict[str, Any]:
        """Per-class precision/recall/F1 plus accuracy, as a dict (scikit-learn's layout)."""
        return classification_report(self.y_true, self.y_pred, self.classes)

    def recalls(self) -> dict[str, float | None]:
        """Recall per class; None for a class with no images here (scikit-learn would say 0.0)."""
        rep = self.report()
        return {c: float(rep[c]["recall"]) if rep[c]["support"] else None for c in self.classes}

    def confusion(self) -> np.ndarray:
        return confusion_matrix(self.y_true, self.y_pred, len(self.classes))

    def summary(self, bootstrap: int = 1000, seed: int = 0) -> dict[str, Any]:
        """The figures a bundle and a model card quote: accuracy with 95 % CI, recall per class, ECE."""
        low, high = bootstrap_accuracy(self.y_true, self.y_pred, bootstrap, seed)
        ece, _ = calibration(self.y_true, self.probabilities)
        out: dict[str, Any] = {
            "n": int(len(self.y_true)),
            "accuracy": round(self.accuracy, 4),
            "accuracy_ci95": [round(low, 4), round(high, 4)],
            "recall": {c: None if v is None else round(v, 4) for c, v in self.recalls().items()},
            "ece": round(ece, 4),
        }
        if self.sources and len(set(self.sources)) > 1:
            out["per_source"] = per_source_accuracy(self.y_true, self.y_pred, self.sources)
        return out


def bootstrap_accuracy(
    y_true: np.ndarray, y_pred: np.ndarray, rounds: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """95 % percentile bootstrap interval of accuracy (resampling images with replacement)."""
    n = len(y_true)
    if n == 0:
        return float("nan"), float("nan")
    correct = (np.asarray(y_true) == np.asarray(y_pred)).astype(np.float64)
    rng = np.random.default_rng(seed)
    means = correct[rng.integers(0, n, size=(rounds, n))].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def calibration(y_true: np.ndarray, probabilities: np.ndarray, bins: int = 10) -> tuple[float, list[dict[str, float]]]:
    """Expected calibration error of the top-class confidence, and the per-bin table behind it."""
    if len(y_true) == 0:
        return float("nan"), []
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == np.asarray(y_true)
    edges = np.linspace(0.0, 1.0, bins + 1)
    table, ece = [], 0.0
    for i in range(bins):
        upper = confidence <= edges[i + 1] if i == bins - 1 else confidence < edges[i + 1]
        inside = (confidence >= edges[i]) & upper
        if not inside.any():
            continue
        acc, conf = float(correct[inside].mean()), float(confidence[inside].mean())
        ece += inside.mean() * abs(acc - conf)
        table.append(
            {
                "low": float(edges[i]),
                "high": float(edges[i + 1]),
                "n": int(inside.sum()),
                "accuracy": acc,
                "confidence": conf,
            }
        )
    return float(ece), table


def per_source_accuracy(y_true: np.ndarray, y_pred: np.ndarray, sources: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Accuracy and count per source: a model that learned one source's look shows it here."""
    sources_arr = np.asarray(sources)
    out = {}
    for source in sorted(set(sources)):
        mask = sources_arr == source
        out[source] = {"n": int(mask.sum()), "accuracy": round(float((y_true[mask] == y_pred[mask]).mean()), 4)}
    return out


def write_evaluation(
    evaluation: Evaluation, out_dir: str | Path, images: np.ndarray | None = None, names: Sequence[str] | None = None
) -> dict[str, Path]:
    """Write report (text + JSON), confusion matrix, reliability diagram and misclassified grid."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    text = classification_report_text(evaluation.y_true, evaluation.y_pred, evaluation.classes, digits=4)
    summary = evaluation.summary()
    lines = [
        text,
        f"accuracy 95% CI (bootstrap): {summary['accuracy_ci95'][0]:.4f}-{summary['accuracy_ci95'][1]:.4f}",
        f"expected calibration error: {summary['ece']:.4f}",
    ]
    for source, row in summary.get("per_source", {}).items():
        lines.append(f"source {source}: accuracy {row['accuracy']:.4f} on {row['n']} images")
    for cls, recall in summary["recall"].items():
        if recall is None:  # the table prints 0.0000 for it, as scikit-learn's does
            lines.append(f"{cls}: no images here, so no recall (the 0.0000 above is scikit-learn's placeholder)")
    written = {"report_txt": out / REPORT_TXT, "report_json": out / REPORT_JSON}
    written["report_txt"].write_text("\n".join(lines) + "\n", encoding="utf-8")
    payload = {
        "classes": evaluation.classes,
        "summary": summary,
        "report": evaluation.report(),
        "confusion": evaluation.confusion().tolist(),
        "calibration": calibration(evaluation.y_true, evaluation.probabilities)[1],
    }
    written["report_json"].write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    if pyplot() is None:
        return written
    written["confusion"] = plot_confusion(evaluation.confusion(), evaluation.classes, out / CONFUSION_PNG)
    written["reliability"] = plot_reliability(evaluation, out / RELIABILITY_PNG)
    if images is not None:
        written["misclassified"] = plot_misclassified(evaluation, images, out / MISCLASSIFIED_PNG, names)
    return written


def plot_confusion(matrix: np.ndarray, classes: Sequence[str], path: Path) -> Path:
    plt = _require_pyplot()
    size = 2.2 + 1.1 * len(classes)
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(classes)), classes, rotation=30, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    top = matrix.max() if matrix.size else 0
    for (i, j), value in np.ndenumerate(matrix):
        ax.text(j, i, str(value), ha="center", va="center", color="white" if value > top / 2 else "black")
    ax.set_title("Confusion matrix")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_reliability(evaluation: Evaluation, path: Path) -> Path:
    plt = _require_pyplot()
    ece, table = calibration(evaluation.y_true, evaluation.probabilities)
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
    if table:
        ax.plot([r["confidence"] for r in table], [r["accuracy"] for r in table], "o-", label="model")
    ax.set_xlabel("confidence (top class)")
    ax.set_ylabel("accuracy")
    ax.set_title(f"Reliability diagram, ECE {ece:.3f}")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_misclassified(
    evaluation: Evaluation, images: np.ndarray, path: Path, names: Sequence[str] | None = None, limit: int = 36
) -> Path:
    """A grid of wrongly classified crops (RGB) with true and predicted label; a note if there are none."""
    plt = _require_pyplot()
    wrong = np.flatnonzero(evaluation.y_pred != evaluation.y_true)[:limit]
    cols = max(1, min(6, len(wrong)))
    rows = max(1, int(np.ceil(len(wrong) / cols)))
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.5 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    if len(wrong) == 0:
        axes[0, 0].text(0.5, 0.5, "no misclassified images", ha="center", va="center")
    for ax, i in zip(axes.ravel(), wrong):
        ax.imshow(images[i])
        true, pred = evaluation.classes[evaluation.y_true[i]], evaluation.classes[evaluation.y_pred[i]]
        title = f"true {true}\npred {pred} {evaluation.probabilities[i].max():.2f}"
        if names is not None:
            title = f"{Path(names[i]).name[:22]}\n" + title
        ax.set_title(title, fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_curves(
    history: dict[str, list[float]], path: Path, stage_starts: dict[str, int] | None = None
) -> Path | None:
    """Accuracy and loss per epoch for train and validation, with a line where each stage starts.

    None (and the one warning) without matplotlib: a finished training run must not end in an error over a plot.
    """
    plt = pyplot()
    if plt is None:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric in zip(axes, ("accuracy", "loss")):
        for key, label in ((metric, "train"), (f"val_{metric}", "validation")):
            values = history.get(key, [])
            if values:
                ax.plot(range(1, len(values) + 1), values, marker=".", label=label)
        for stage, start in (stage_starts or {}).items():
            if start > 0:
                ax.axvline(start + 0.5, color="grey", linestyle=":")
                ax.text(start + 0.6, ax.get_ylim()[1], stage, va="top", fontsize=8, color="grey")
        ax.set_xlabel("epoch")
        ax.set_title(metric)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
