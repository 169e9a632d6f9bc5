"""The command line as a whole: help, error lines that keep their text, missing extras."""

from __future__ import annotations

import json
import os
import sys

import pytest
from conftest import assert_one_line_error, run_cli


@pytest.mark.slow
def test_help_lists_every_command():
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("detect", "train", "evaluate", "evaluate-scenes", "collect", "synth", "serve", "batch", "bench"):
        assert command in result.stdout


@pytest.mark.slow
def test_info_names_the_default_detector_and_the_bundles_detector():
    result = run_cli("info")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())  # Rich wraps long lines
    assert "(default: maskface for video, maskface-multiscale for photos)" in text
    assert "faces found by: maskface in video, maskface-multiscale in photos" in text
    assert "maskwatch:default" in text and "maskface-multiscale" in text
    assert "test split: accuracy" in text and "95 % CI" in text  # the bundle's held-out figures, not only val


@pytest.mark.slow
def test_error_lines_keep_square_brackets(tmp_path):
    """Rich markup must not eat parts of a message, e.g. a path with brackets or a pip extra."""
    missing = tmp_path / "cam[front].jpg"
    result = run_cli("detect", str(missing))
    assert result.returncode != 0
    assert "cam[front].jpg" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_extra_names_the_pip_extra(monkeypatch):
    import pytest

    from maskwatch.errors import MaskwatchError, require_extra

    with pytest.raises(MaskwatchError, match=r"pip install 'maskwatch\[batch\]'"):
        require_extra("no_such_module_here", "batch", "maskwatch batch")
    require_extra("sys", "batch", "anything")  # present: no error
    assert "sys" in sys.modules


@pytest.mark.slow
def test_train_detector_without_the_train_extra_names_it(monkeypatch):
    """train-detector imports TensorFlow and ONNX lazily; a missing one is named before anything runs."""
    import importlib.util

    from typer.testing import CliRunner

    from maskwatch.cli import app
    from maskwatch.errors import MaskwatchError

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnx" else real(name, *a))
    result = CliRunner().invoke(app, ["train-detector", "--init", "packaged"])
    assert isinstance(result.exception, MaskwatchError)
    assert str(result.exception) == "maskwatch train-detector needs onnx: pip install 'maskwatch[train]'"


@pytest.mark.slow
def test_bench_runs_at_another_frame_size(tmp_path):
    """`maskwatch bench` times the real pipeline; --size scales the synthetic scene (HD streams)."""
    out = tmp_path / "bench.json"
    result = run_cli("bench", "--frames", "3", "--faces", "1", "--faces", "5", "--size", "960x540", "--out", str(out))
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert [r["frame_size"] for r in report["results"]] == ["960x540", "960x540"]
    assert [r["faces_in_frame"] for r in report["results"]] == [1, 5]
    one, five = (r["faces_found_per_frame"] for r in report["results"])
    assert one == 1.0 and 4.0 <= five <= 5.0  # the scaled scene's smallest faces score near the 0.5 threshold
    assert all(r["fps"] > 0 and "detect" in r["ms_per_stage"] for r in report["results"])
    bad = run_cli("bench", "--size", "12")
    assert_one_line_error(bad, "--size '12'", code=2)


@pytest.mark.slow
def test_help_keeps_bracketed_defaults():
    """Help texts are plain text: '[default bundle]' is a default, not a Rich style tag to swallow."""
    result = run_cli("detect", "--help")
    assert result.returncode == 0
    assert "[default bundle]" in " ".join(result.stdout.split())


@pytest.mark.slow
def test_outputs_that_cannot_be_written_are_refused_before_the_work(tmp_path):
    """bench, synth --sheet and evaluate check their outputs first: one line, no traceback, nothing lost."""
    blocker = tmp_path / "file"
    blocker.write_text("a plain file")
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    (run / "classification_report.json").write_text('{"precious": true}')
    faces = tmp_path / "faces"
    faces.mkdir()
    cases = [
        (("bench", "--frames", "1", "--out", str(blocker / "b.json")), "is a file"),
        (("synth", "--from", str(faces), "-o", str(tmp_path / "s"), "--sheet", str(blocker / "s.png")), "cannot"),
        (("evaluate", "maskwatch:default", str(faces), "-o", str(run)), "holds a training run"),
    ]
    for args, message in cases:
        result = run_cli(*args)
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert result.returncode == 2 and len(errors) == 1 and message in errors[0], (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr  # no half-drawn progress bar above it
    assert json.loads((run / "classification_report.json").read_text()) == {"precious": True}


@pytest.mark.slow
def test_info_refuses_a_bundle_whose_model_does_not_load(tmp_path):
    from maskwatch.inference.bundle import resolve_bundle_dir

    source = resolve_bundle_dir("maskwatch:default")
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "bundle.json").write_text((source / "bundle.json").read_text())
    (bundle / "model.onnx").write_bytes(b"not a model")
    result = run_cli("info", "--model", str(bundle))
    assert result.returncode == 3 and f"{bundle}: cannot load ONNX model" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_info_shows_free_form_metrics_and_warns_of_an_unknown_detector(tmp_path):
    from maskwatch.inference.bundle import resolve_bundle_dir

    source = resolve_bundle_dir("maskwatch:default")
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "model.onnx").write_bytes((source / "model.onnx").read_bytes())
    meta = json.loads((source / "bundle.json").read_text())
    meta["metrics"] = {"test": {"accuracy": "x", "recall": [1, 2], "accuracy_ci95": [0.9]}}
    (bundle / "bundle.json").write_text(json.dumps(meta))
    result = run_cli("info", "--model", str(bundle))
    assert result.returncode == 0 and "test split: accuracy x" in result.stdout, result.stderr
    meta["crop"]["detector"] = "nonexistent"
    (bundle / "bundle.json").write_text(json.dumps(meta))
    result = run_cli("info", "--model", str(bundle))  # shown, with a warning: detect --detector X still uses it
    assert result.returncode == 0 and "test split: accuracy x" in result.stdout
    assert "bundle.json names an unknown detector 'nonexistent'" in result.stderr


@pytest.mark.slow
def test_usage_errors_are_one_line():
    """A bad option value, an unknown option or command, a missing argument: one line, exit 2 (Click printed a
    usage block of three to five lines)."""
    for args, words in [
        (("detect", "--conf", "2", "x.jpg"), "Invalid value for '--conf'"),
        (("detect", "--bogus", "x.jpg"), "No such option: --bogus"),
        (("detect",), "Missing argument"),
        (("nosuch",), "No such command 'nosuch'"),
    ]:
        result = run_cli(*args)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1, (args, result.stderr)
        assert lines[0].startswith("error: ") and words in lines[0] and "--help" in lines[0]
    bare = run_cli()
    assert bare.returncode == 2 and "Usage: " in bare.stderr and "Commands" in bare.stderr  # no command: the help


@pytest.mark.slow
def test_a_full_disk_is_one_line_naming_the_file(tmp_path):
    """/dev/full fails every write with ENOSPC, as a full disk does mid-run."""
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full on this system")
    from maskwatch.inference.bundle import resolve_bundle_dir

    demo = resolve_bundle_dir("maskwatch:default").parents[1] / "assets" / "demo.jpg"
    result = run_cli("detect", str(demo), "--json", "/dev/full")
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2 and errors == ["error: /dev/full: cannot write JSON lines (No space left on device)"]
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_errors_of_commands_with_a_progress_bar_are_their_one_line(tmp_path):
    """Off a terminal no bar is drawn, so nothing (a 0/? bar, an empty line) comes before the error line."""
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"xx")
    for args in (
        ["collect", str(bad), "--label", "with_mask", "--out", str(tmp_path / "ds")],
        ["synth", "--from", str(tmp_path / "nx"), "--out", str(tmp_path / "syn")],
        ["evaluate", "maskwatch:default", str(tmp_path / "nx")],
    ):
        assert assert_one_line_error(run_cli(*args), code=2).startswith("error: ")


def test_training_stages_get_one_line_each_in_a_log(capsys):
    """No bar is drawn off a terminal, so each finished stage says what it did in one line."""
    from maskwatch.cli.progress import RichReporter

    with RichReporter() as reporter:
        reporter.start("head", 3)
        for loss in (0.5, 0.4, 0.3):
            reporter.advance(1, status=f"loss {loss:.2f}")
        reporter.start("fine-tune", 2)
        reporter.advance(2)
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(" in ")[0] for line in lines] == ["head: 3/3", "fine-tune: 2/2"]
    assert lines[0].endswith("s; loss 0.30")


@pytest.mark.slow
def test_bench_names_the_file_it_cannot_write():
    if not os.path.exists("/dev/full") or not os.access("/dev", os.W_OK):  # its folder is probed first
        pytest.skip("needs /dev/full in a writable /dev (root)")
    result = run_cli("bench", "--frames", "2", "--faces", "1", "--out", "/dev/full")
    assert result.returncode == 2
    expected = "error: /dev/full: cannot write the figures (No space left on device)"
    assert result.stderr.strip().splitlines()[-1] == expected
