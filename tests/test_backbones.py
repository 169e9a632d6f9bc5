"""Every backbone ``maskwatch train`` offers trains and exports a working bundle (tiny size, from scratch).

The dataset is generated here (no face in it: every crop is the whole image), so these
tests need neither ``../shared`` nor a download; they are slow only because of the
bigger backbones' graph tracing and ONNX conversion.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import run_cli

from maskwatch.training.classifier import BACKBONE_MIN_SIZE, BACKBONE_NAMES

if importlib.util.find_spec("keras") is None or importlib.util.find_spec("tf2onnx") is None:
    pytest.skip("training needs the [train] extra", allow_module_level=True)  # found, not imported: TF loads later

PER_CLASS = 10


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory) -> Path:
    """Two classes of 64-px noise images, tinted apart (distinct enough that the split keeps them apart)."""
    root = tmp_path_factory.mktemp("tiny") / "data"
    rng = np.random.default_rng(0)
    for cls, tint in (("with_mask", (160, 60, 40)), ("without_mask", (60, 120, 200))):
        (root / cls).mkdir(parents=True)
        for i in range(PER_CLASS):
            noise = rng.integers(0, 256, (8, 8, 3)).astype(np.float32)
            image = cv2.resize(noise, (64, 64), interpolation=cv2.INTER_LINEAR) * 0.5 + np.array(tint) * 0.5
            cv2.imwrite(str(root / cls / f"{cls}_{i}.png"), image.astype(np.uint8))
    return root


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("crop-cache")


def tiny_config(dataset: Path, out: Path, cache: Path, backbone: str):
    from maskwatch.training.classifier.shared import TrainConfig

    return TrainConfig(
        dataset=str(dataset),
        out=str(out),
        backbone=backbone,
        weights=None,
        alpha=0.35,
        size=BACKBONE_MIN_SIZE[backbone],
        head_epochs=1,
        finetune_epochs=0,
        augment_copies=0,
        batch_size=8,
        cache=str(cache),
        command=f"maskwatch train {dataset} --backbone {backbone} (test)",
    )


@pytest.mark.slow
@pytest.mark.parametrize("backbone", BACKBONE_NAMES)
def test_every_backbone_trains_and_exports_a_working_bundle(tiny_dataset: Path, cache: Path, tmp_path: Path, backbone):
    import keras

    from maskwatch.inference.classifier import MaskClassifier
    from maskwatch.training.classifier.trainer import train

    out = tmp_path / backbone
    metrics = train(tiny_config(tiny_dataset, out, cache, backbone))
    keras.backend.clear_session()

    meta = json.loads((out / "bundle" / "bundle.json").read_text())
    assert meta["backbone"].startswith(backbone) and meta["backbone"].endswith("(from scratch)")
    assert meta["metrics"]["onnx_keras_max_abs_diff"] == metrics["onnx_keras_max_abs_diff"] < 1e-4
    size = BACKBONE_MIN_SIZE[backbone]
    crops = np.random.default_rng(1).integers(0, 256, (3, size, size, 3)).astype(np.uint8)
    probabilities = MaskClassifier(out / "bundle").predict(crops)  # the ONNX graph takes the pixels, nothing else
    assert probabilities.shape == (3, 2) and np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert (out / "model.keras").stat().st_size > 0
    if backbone == "smallcnn":  # the saved Keras model is the one the bundle was exported from (cheap to reload)
        model = keras.models.load_model(out / "model.keras")
        assert np.abs(model.predict(crops.astype(np.float32), verbose=0) - probabilities).max() < 1e-4
        keras.backend.clear_session()


BLOCK_TF2ONNX = "import sys\nsys.modules['tf2onnx'] = None  # the converter cannot be imported\n"


@pytest.mark.slow
def test_a_failed_export_is_one_line_and_resume_retries_only_the_export(tiny_dataset: Path, cache: Path, tmp_path):
    blocker = tmp_path / "block"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(BLOCK_TF2ONNX)
    out = tmp_path / "run"
    args = [sys.executable, "-m", "maskwatch", "train", str(tiny_dataset), "--out", str(out)]
    args += ["--backbone", "smallcnn", "--weights", "none", "--size", "32", "--head-epochs", "2"]
    args += ["--finetune-epochs", "1", "--augment-copies", "0", "--cache", str(cache)]
    path = os.pathsep.join([str(blocker), os.environ.get("PYTHONPATH", "")])
    failed = subprocess.run(args, capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": path})
    errors = [line for line in failed.stderr.splitlines() if line.startswith("error")]
    assert failed.returncode == 3 and "Traceback" not in failed.stderr, failed.stderr[-2000:]
    assert len(errors) == 1 and "ONNX export" in errors[0] and "--resume" in errors[0], failed.stderr[-2000:]
    assert not (out / "bundle").exists() and (out / "model.keras").is_file()
    state = json.loads((out / "checkpoint" / "state.json").read_text())
    assert state["stage"] == "done"

    resumed = subprocess.run([*args, "--resume"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "training had finished: exporting its best checkpoint" in resumed.stderr
    assert "fine-tune epoch" not in resumed.stderr  # nothing was trained again
    assert json.loads((out / "checkpoint" / "state.json").read_text()) == state
    meta = json.loads((out / "bundle" / "bundle.json").read_text())
    assert meta["metrics"]["onnx_keras_max_abs_diff"] < 1e-4 and "--resume" in meta["train_command"]


@pytest.fixture(scope="module")
def two_runs(tiny_dataset: Path, cache: Path, tmp_path_factory) -> list[Path]:
    """Two finished small-CNN runs (32 and 48 px) for ``maskwatch compare``."""
    from maskwatch.training.classifier.trainer import train

    root = tmp_path_factory.mktemp("runs")
    runs = []
    for size in (32, 48):
        config = tiny_config(tiny_dataset, root / f"smallcnn-{size}", cache, "smallcnn")
        config.size = size
        train(config)
        runs.append(root / f"smallcnn-{size}")
    return runs


@pytest.mark.slow
def test_compare_prints_one_table_and_writes_markdown_csv_and_a_plot(two_runs, tiny_dataset: Path, tmp_path: Path):
    out = tmp_path / "cmp"
    args = ["compare", *map(str, two_runs), "--out", str(out), "--heldout", str(tiny_dataset), "--cache", "none"]
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "ms per crop" in result.stdout and "32 px" in result.stdout and "48 px" in result.stdout
    rows = list(csv.DictReader((out / "compare.csv").open()))
    assert [r["input_size"] for r in rows] == ["32", "48"]
    for row, run in zip(rows, two_runs):
        metrics = json.loads((run / "metrics.json").read_text())
        assert float(row["test_accuracy"]) == metrics["test"]["accuracy"]
        assert int(row["parameters"]) == metrics["parameters"] > 0
        assert row["weights"] == "none (from scratch)" and row["backbone"] == "smallcnn"
        assert int(row["heldout_n"]) == 2 * PER_CLASS and 0.0 <= float(row["heldout_accuracy"]) <= 1.0
        assert float(row["ms_per_crop"]) > 0 and int(row["bundle_bytes"]) > 0
    markdown = (out / "compare.md").read_text().splitlines()
    assert markdown[0].startswith("| run | backbone | weights |") and len(markdown) == 4
    assert (out / "compare.png").read_bytes()[:4] == b"\x89PNG"
