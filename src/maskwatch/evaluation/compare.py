"""``maskwatch compare``: finished training runs side by side, as one table (and a plot).

Everything comes from what a run wrote (``config.json``, ``metrics.json``, ``bundle/``)
except two figures measured here: the time per crop of each bundle on this machine
(ONNX Runtime, as ``detect`` runs it) and, with a held-out folder dataset, the accuracy
on that source, scored as ``maskwatch evaluate`` scores it. Inference only: no TensorFlow.
"""

from __future__ import annotations

import csv
import io
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from maskwatch.errors import InputError
from maskwatch.inference.bundle import META_FILE, MODEL_FILE, load_bundle
from maskwatch.inference.classifier import MaskClassifier
from maskwatch.media.files import read_json_input

TIMED_CALLS = 30
"""Calls timed per bundle (one crop each, after warm-up); the median is reported."""

COLUMNS = (
    "run",
    "backbone",
    "weights",
    "input",
    "test accuracy (95% CI)",
    "held-out accuracy (95% CI)",
    "parameters",
    "bundle MB",
    "ms per crop",
)


@dataclass
class RunFigures:
    """One run's row: what it recorded, plus speed (and held-out accuracy) measured now."""

    run: str
    backbone: str
    weights: str
    input_size: int
    test_accuracy: float | None
    test_ci_low: float | None
    test_ci_high: float | None
    test_n: int
    heldout_accuracy: float | None
    heldout_ci_low: float | None
    heldout_ci_high: float | None
    heldout_n: int | None
    parameters: int | None
    bundle_bytes: int
    ms_per_crop: float

    def cells(self) -> list[str]:
        """The row as printed (terminal and Markdown)."""
        return [
            self.run,
            self.backbone,
            self.weights,
            f"{self.input_size} px",
            _accuracy_cell(self.test_accuracy, self.test_ci_low, self.test_ci_high, self.test_n),
            _accuracy_cell(self.heldout_accuracy, self.heldout_ci_low, self.heldout_ci_high, self.heldout_n),
            f"{self.parameters / 1e6:.2f} M" if self.parameters else "—",
            f"{self.bundle_bytes / 1e6:.1f}",
            f"{self.ms_per_crop:.2f}",
        ]


def _accuracy_cell(value: float | None, low: float | None, high: float | None, n: int | None) -> str:
    if value is None:
        return "—"
    interval = f" ({low:.3f}–{high:.3f})" if low is not None and high is not None else ""
    return f"{value:.4f}{interval}, n={n}"


@dataclass
class Run:
    """A finished training run folder, read and checked."""

    path: Path
    config: dict[str, Any]
    metrics: dict[str, Any]
    bundle_dir: Path


def read_run(folder: str | Path) -> Run:
    """A finished run, or one line saying why ``folder`` is not one (missing, unfinished, no bundle)."""
    path = Path(folder)
    if not path.is_dir():
        raise InputError(f"{folder}: no such run folder")
    config_path, metrics_path, bundle_dir = path / "config.json", path / "metrics.json", path / "bundle"
    if not config_path.is_file():
        raise InputError(f"{folder}: not a maskwatch training run (no config.json)")
    config = read_json_input(config_path)
    if not isinstance(config, dict) or "backbone" not in config:
        raise InputError(f"{config_path}: not a maskwatch training config")
    if not metrics_path.is_file():
        raise InputError(
            f"{folder}: the run has not finished (no metrics.json); finish it with: "
            f"maskwatch train {config.get('dataset', 'DATASET')} --out {folder} --resume"
        )
    metrics = read_json_input(metrics_path)
    if not isinstance(metrics, dict) or not isinstance(metrics.get("test"), dict):
        raise InputError(f"{metrics_path}: not a maskwatch run's metrics (no test figures)")
    if not (bundle_dir / MODEL_FILE).is_file() or not (bundle_dir / META_FILE).is_file():
        raise InputError(f"{folder}: the run has no bundle ({bundle_dir}/{MODEL_FILE} and {META_FILE})")
    return Run(path, config, metrics, bundle_dir)


def describe_weights(weights: str | None) -> str:
    """``imagenet``, the weights file's name, or ``none (from scratch)``."""
    if weights is None or str(weights).lower() in ("", "none", "scratch"):
        return "none (from scratch)"
    if str(weights).lower() == "imagenet":
        return "ImageNet (Keras download)"
    return Path(weights).name


def onnx_parameters(model_path: Path) -> int | None:
    """Weights stored in the ONNX graph (runs made before training recorded Keras' count); None without ``onnx``."""
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        return None
    graph = onnx.load(str(model_path)).graph
    return int(sum(numpy_helper.to_array(t).size for t in graph.initializer))


def ms_per_crop(classifier: MaskClassifier, calls: int = TIMED_CALLS) -> float:
    """Median milliseconds of one crop through the bundle (one call per crop, as a frame with one face)."""
    size = classifier.input_size
    crop = np.random.default_rng(0).integers(0, 256, (1, size, size, 3)).astype(np.uint8)
    for _ in range(3):
        classifier.predict(crop)
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        classifier.predict(crop)
        times.append(time.perf_counter() - start)
    return 1000.0 * statistics.median(times)


def measure_run(
    run: Run, heldout: str | Path | None = None, cache: str | None = None, threads: int | None = None
) -> RunFigures:
    """The run's row: its recorded figures, its speed here, and its accuracy on ``heldout`` when given."""
    from maskwatch.evaluation.classification import evaluate_bundle

    meta = load_bundle(run.bundle_dir).meta
    test = run.metrics["test"]
    ci = test.get("accuracy_ci95") or (None, None)
    held: dict[str, Any] = {}
    if heldout is not None:
        held = evaluate_bundle(run.bundle_dir, heldout, cache=cache)
    held_ci = held.get("accuracy_ci95") or (None, None)
    parameters = run.metrics.get("parameters") or onnx_parameters(run.bundle_dir / MODEL_FILE)
    return RunFigures(
        run=str(run.path),
        backbone=meta.backbone.removesuffix(" (from scratch)"),
        weights=describe_weights(run.config.get("weights")),
        input_size=meta.input_size,
        test_accuracy=test.get("accuracy"),
        test_ci_low=ci[0],
        test_ci_high=ci[1],
        test_n=int(test.get("n", 0)),
        heldout_accuracy=held.get("accuracy"),
        heldout_ci_low=held_ci[0],
        heldout_ci_high=held_ci[1],
        heldout_n=held.get("n"),
        parameters=parameters,
        bundle_bytes=(run.bundle_dir / MODEL_FILE).stat().st_size,
        ms_per_crop=ms_per_crop(MaskClassifier(run.bundle_dir, threads=threads)),
    )


def compare_runs(
    folders: list[str],
    heldout: str | Path | None = None,
    cache: str | None = None,
    threads: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[RunFigures]:
    """Every run checked first (one line for the first bad one), then measured in the order given."""
    runs = [read_run(folder) for folder in folders]
    if heldout is not None and not Path(heldout).is_dir():
        raise InputError(f"{heldout}: --heldout needs a folder dataset (one subfolder per class)")
    rows = []
    for run in runs:
        rows.append(measure_run(run, heldout, cache, threads))
        if progress:
            progress(str(run.path))
    return rows


def to_markdown(rows: list[RunFigures]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row.cells()) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def to_csv(rows: list[RunFigures]) -> str:
    buffer = io.StringIO()
    fields = list(asdict(rows[0])) if rows else []
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(asdict(row))
    return buffer.getvalue()


def plot(rows: list[RunFigures], path: Path) -> Path:
    """Accuracy (95% CI bars) against time per crop: test split filled, held-out source hollow."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=120)
    for i, row in enumerate(rows):
        colour = f"C{i % 10}"
        label = f"{row.backbone}, {row.weights}, {row.input_size} px"
        for value, low, high, hollow in (
            (row.test_accuracy, row.test_ci_low, row.test_ci_high, False),
            (row.heldout_accuracy, row.heldout_ci_low, row.heldout_ci_high, True),
        ):
            if value is None:
                continue
            error = None
            if low is not None and high is not None:
                error = [[max(0.0, value - low)], [max(0.0, high - value)]]
            ax.errorbar(
                [row.ms_per_crop],
                [value],
                yerr=error,
                fmt="o",
                color=colour,
                mfc="white" if hollow else colour,
                capsize=3,
                label=None if hollow else label,
            )
    ax.set_xscale("log")
    ax.set_xlabel("ms per crop on this machine (log scale)")
    ax.set_ylabel("accuracy (filled: test split; hollow: held-out source)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def write_outputs(rows: list[RunFigures], folder: Path) -> dict[str, Path]:
    """``compare.md``, ``compare.csv`` and ``compare.png`` in ``folder``."""
    written = {"markdown": folder / "compare.md", "csv": folder / "compare.csv", "plot": folder / "compare.png"}
    written["markdown"].write_text(to_markdown(rows), encoding="utf-8")
    written["csv"].write_text(to_csv(rows), encoding="utf-8")
    plot(rows, written["plot"])
    return written


__all__ = ["RunFigures", "compare_runs", "read_run", "to_csv", "to_markdown", "write_outputs"]
