"""``maskwatch compare`` refuses what is not a finished run in one line (the table itself: test_backbones.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import run_cli


def _one_error_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode != 0 and "Traceback" not in result.stderr and len(lines) == 1, result.stderr[-2000:]
    return lines[0]


def _unfinished(root: Path) -> Path:
    run = root / "unfinished"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"dataset": "data", "backbone": "smallcnn", "fractions": [1, 0, 0]}))
    return run


def _no_bundle(root: Path) -> Path:
    run = _unfinished(root)
    (run / "metrics.json").write_text(json.dumps({"test": {"n": 0}}))
    return run


def _broken_metrics(root: Path) -> Path:
    run = _unfinished(root)
    (run / "metrics.json").write_text("{not json")
    return run


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda root: root / "missing", "no such run folder"),
        (lambda root: root, "not a maskwatch training run (no config.json)"),
        (_unfinished, "the run has not finished (no metrics.json)"),
        (_broken_metrics, "malformed JSON"),
        (_no_bundle, "the run has no bundle"),
    ],
)
def test_what_is_not_a_finished_run_is_named_in_one_line(tmp_path: Path, make, message):
    from maskwatch.errors import InputError
    from maskwatch.evaluation.compare import read_run

    with pytest.raises(InputError, match=re.escape(message)) as error:
        read_run(make(tmp_path))
    assert "\n" not in str(error.value)


@pytest.mark.slow
def test_compare_refuses_a_bad_run_before_writing_anything(tmp_path: Path):
    result = run_cli("compare", str(_unfinished(tmp_path)), "--out", str(tmp_path / "cmp"))
    assert "maskwatch train data --out" in _one_error_line(result) and "--resume" in result.stderr
    assert not (tmp_path / "cmp").exists()
