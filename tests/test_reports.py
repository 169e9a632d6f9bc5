"""Crop-level report figures: NumPy metrics checked by hand and against scikit-learn; plots only with matplotlib."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import numpy as np
import pytest

from maskwatch.evaluation import reports
from maskwatch.evaluation.reports import Evaluation, classification_report, classification_report_text, confusion_matrix

Y_TRUE = np.array([0, 0, 0, 1, 1, 2])
Y_PRED = np.array([0, 0, 1, 1, 2, 2])
CLASSES = ["with_mask", "without_mask", "incorrect_mask"]


def test_confusion_matrix_hand_computed():
    assert confusion_matrix(Y_TRUE, Y_PRED, 3).tolist() == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert confusion_matrix(np.array([1]), np.array([1]), 3).tolist() == [[0, 0, 0], [0, 1, 0], [0, 0, 0]]


def test_classification_report_hand_computed():
    rep = classification_report(Y_TRUE, Y_PRED, CLASSES)
    assert list(rep) == [*CLASSES, "accuracy", "macro avg", "weighted avg"]
    # with_mask: 2 of 2 predicted are right, 2 of 3 found; F1 = 2*2 / (2 + 3)
    assert rep["with_mask"] == pytest.approx({"precision": 1.0, "recall": 2 / 3, "f1-score": 0.8, "support": 3.0})
    assert rep["without_mask"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1-score": 0.5, "support": 2.0})
    assert rep["incorrect_mask"] == pytest.approx({"precision": 0.5, "recall": 1.0, "f1-score": 2 / 3, "support": 1})
    assert rep["accuracy"] == pytest.approx(4 / 6)
    assert rep["macro avg"]["precision"] == pytest.approx(2 / 3)
    assert rep["weighted avg"]["precision"] == pytest.approx((3 * 1.0 + 2 * 0.5 + 1 * 0.5) / 6)
    assert rep["weighted avg"]["support"] == 6.0
    assert all(type(v) is float for row in rep.values() if isinstance(row, dict) for v in row.values())
    # A class never predicted and never present: 0, not a division error (scikit-learn's zero_division=0).
    empty = classification_report(np.array([0, 1]), np.array([0, 0]), ["a", "b", "c"])
    assert empty["b"] == {"precision": 0.0, "recall": 0.0, "f1-score": 0.0, "support": 1.0}
    assert empty["c"] == {"precision": 0.0, "recall": 0.0, "f1-score": 0.0, "support": 0.0}


def test_classification_report_text_hand_written():
    expected = (
        "                precision    recall  f1-score   support\n"
        "\n"
        "     with_mask       1.00      0.67      0.80         3\n"
        "  without_mask       0.50      0.50      0.50         2\n"
        "incorrect_mask       0.50      1.00      0.67         1\n"
        "\n"
        "      accuracy                           0.67         6\n"
        "     macro avg       0.67      0.72      0.66         6\n"
        "  weighted avg       0.75      0.67      0.68         6\n"
    )
    assert classification_report_text(Y_TRUE, Y_PRED, CLASSES) == expected


@pytest.mark.slow
def test_numbers_and_text_equal_scikit_learns():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(7)
    for case in range(60):
        k, n = int(rng.integers(2, 5)), int(rng.integers(1, 50))
        y_true, y_pred = rng.integers(0, k, n), rng.integers(0, k, n)
        if case % 3 == 0:  # mostly right, as a trained model is
            y_pred = y_true.copy()
            y_pred[rng.integers(0, n, 2)] = 0
        elif case % 10 == 1:  # all wrong: scikit-learn then counts support in floats ("3.0")
            y_pred = (y_true + 1) % k
        classes = [f"class{i}" + "x" * int(rng.integers(0, 12)) for i in range(k)]
        labels = list(range(k))
        ref = metrics.classification_report(
            y_true, y_pred, labels=labels, target_names=classes, output_dict=True, zero_division=0
        )
        assert json.dumps(classification_report(y_true, y_pred, classes)) == json.dumps(ref)
        for digits in (2, 4):
            ref_text = metrics.classification_report(
                y_true, y_pred, labels=labels, target_names=classes, digits=digits, zero_division=0
            )
            assert classification_report_text(y_true, y_pred, classes, digits) == ref_text
        ref_matrix = metrics.confusion_matrix(y_true, y_pred, labels=labels)
        assert np.array_equal(confusion_matrix(y_true, y_pred, k), ref_matrix)


def _evaluation() -> Evaluation:
    probs = np.eye(3)[Y_PRED] * 0.7 + 0.1
    return Evaluation(CLASSES, Y_TRUE, probs)


@pytest.mark.slow
def test_without_matplotlib_the_numbers_are_written_and_plots_skipped(tmp_path, monkeypatch, caplog):
    full = reports.write_evaluation(_evaluation(), tmp_path / "full", images=np.zeros((6, 8, 8, 3), np.uint8))
    assert {"confusion", "reliability", "misclassified"} <= set(full)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # what an install without the report extra sees
    monkeypatch.setattr(reports, "_warned", [])
    with caplog.at_level(logging.WARNING, logger="maskwatch"):
        written = reports.write_evaluation(_evaluation(), tmp_path / "bare", images=np.zeros((6, 8, 8, 3), np.uint8))
        reports.write_evaluation(_evaluation(), tmp_path / "again")
    assert set(written) == {"report_txt", "report_json"}
    assert sorted(p.name for p in (tmp_path / "bare").iterdir()) == [reports.REPORT_JSON, reports.REPORT_TXT]
    assert [r.getMessage() for r in caplog.records] == [reports.PLOTS_MISSING]  # once per process, one line
    for name in (reports.REPORT_JSON, reports.REPORT_TXT):
        assert (tmp_path / "bare" / name).read_text() == (tmp_path / "full" / name).read_text()
    assert reports.plot_curves({"accuracy": [0.5]}, tmp_path / "curves.png") is None
    assert not (tmp_path / "curves.png").exists()
    with pytest.raises(ImportError, match=r"maskwatch\[report\]"):  # asked for a plot outright: says what to install
        reports.plot_confusion(np.eye(2, dtype=int), ["a", "b"], tmp_path / "confusion.png")


@pytest.mark.slow
def test_inference_imports_no_scipy_sklearn_or_matplotlib():
    code = (
        "import sys\n"
        "import maskwatch, maskwatch.cli, maskwatch.pipeline, maskwatch.web.app, maskwatch.data.dataset\n"
        "import maskwatch.data.collect, maskwatch.evaluation.reports, maskwatch.evaluation.scene_report\n"
        "heavy = ('scipy', 'sklearn', 'matplotlib', 'imagehash', 'pywt', 'tensorflow')\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & set(heavy)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
