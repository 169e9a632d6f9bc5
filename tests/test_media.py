"""Sources, sinks and the runner, with the real default pipeline on real files."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest

from maskwatch.errors import EmptyInputError, InputError
from maskwatch.media.runner import run_sources
from maskwatch.media.sinks import AnnotatedSink, JsonLinesSink
from maskwatch.media.sources import ImageSource, VideoSource, expand_sources
from maskwatch.pipeline import FrameResult, SourceRun


class RecordingSink:
    """A sink of our own, as a user would write one: keeps what it was given."""

    def __init__(self) -> None:
        self.written: list[tuple[FrameResult, str]] = []
        self.closed = 0

    def write(self, result: FrameResult, source) -> None:
        self.written.append((result, source.kind))

    def close(self) -> None:
        self.closed += 1


def test_expand_sources_finds_images_and_videos_in_a_folder_and_names_what_is_missing(tmp_path, photo, video):
    sources, problems = expand_sources([str(tmp_path), str(tmp_path / "nothing.jpg")])
    assert sorted(type(s).__name__ for s in sources) == ["ImageSource", "VideoSource"]
    assert len(problems) == 1 and "nothing.jpg" in problems[0]


def test_image_source_gives_one_frame_and_an_empty_file_is_refused(tmp_path, photo):
    frames = list(ImageSource(photo).frames())
    assert len(frames) == 1 and frames[0].image.shape[2] == 3 and frames[0].index == 0
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(EmptyInputError):
        list(ImageSource(empty).frames())


def test_runner_writes_every_frame_to_every_sink_in_order_and_closes_each_once(tmp_path, detector, photo, video):
    jsonl = tmp_path / "out.jsonl"
    mine = RecordingSink()
    summary = run_sources(detector, [ImageSource(photo), VideoSource(video)], [JsonLinesSink(str(jsonl)), mine])
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert summary.frames == len(lines) == len(mine.written) == 13 and mine.closed == 1
    assert [kind for _, kind in mine.written] == ["image"] + ["video"] * 12
    assert [line["frame"] for line in lines] == [r.index for r, _ in mine.written]
    assert summary.faces == sum(len(line["faces"]) for line in lines) >= 13
    assert summary.people_per_class and sum(summary.people_per_class.values()) == 1  # one person walks by


def test_every_frame_result_carries_its_stage_timings(detector, video):
    run = detector.process(VideoSource(video))
    first = next(run)
    assert {"detect", "crop", "classify", "track"} <= set(first.timings) and all(t >= 0 for t in first.timings.values())
    run.close()


def test_each_stream_owns_its_tracker(detector, video):
    """Two streams run side by side keep their own counts: no state is shared through the detector."""
    a, b = detector.process(VideoSource(video)), detector.process(VideoSource(video))
    assert isinstance(a, SourceRun) and a.tracker is not b.tracker
    for _ in zip(a, b):
        pass
    assert a.people_per_class() == b.people_per_class() and sum(a.people_per_class().values()) == 1


def test_a_failing_source_is_listed_and_the_others_still_run(tmp_path, detector, photo):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a picture")
    mine = RecordingSink()
    summary = run_sources(detector, [ImageSource(broken), ImageSource(photo)], [mine])
    assert summary.frames == 1 and len(summary.failed_sources) == 1 and "broken.jpg" in summary.failed_sources[0]
    assert mine.closed == 1


def test_a_sink_that_fails_ends_that_source_only(tmp_path, detector, photo):
    class Refusing(RecordingSink):
        def write(self, result, source) -> None:
            if source.kind == "image" and not self.written:
                self.written.append((result, "refused"))
                raise InputError("cannot take it")
            super().write(result, source)

    sink = Refusing()
    other = tmp_path / "other.jpg"
    other.write_bytes(photo.read_bytes())
    summary = run_sources(detector, [ImageSource(photo), ImageSource(other)], [sink])
    assert summary.failed_sources == ["cannot take it"] and [k for _, k in sink.written] == ["refused", "image"]


def test_annotated_sink_writes_a_picture_per_image_and_a_video_per_video(tmp_path, detector, photo, video):
    out = tmp_path / "annotated"
    sink = AnnotatedSink(str(out), single_source=False, sources=[ImageSource(photo), VideoSource(video)])
    run_sources(detector, [ImageSource(photo), VideoSource(video)], [sink])
    names = sorted(p.name for p in out.iterdir())
    assert names == ["astronaut_annotated.jpg", "walk_annotated.mp4"]
    assert cv2.imread(str(out / "astronaut_annotated.jpg")).shape == cv2.imread(str(photo)).shape
    capture = cv2.VideoCapture(str(out / "walk_annotated.mp4"))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 12
    capture.release()


def test_json_lines_sink_appends_to_its_own_file_only(tmp_path, detector, photo):
    target = tmp_path / "faces.jsonl"
    for _ in range(2):
        run_sources(detector, [ImageSource(photo)], [JsonLinesSink(str(target))])
    assert len(target.read_text().splitlines()) == 2
    foreign = tmp_path / "notes.jsonl"
    foreign.write_text('{"something": "else"}\n')
    with pytest.raises(InputError, match="not maskwatch JSON lines"):
        JsonLinesSink(str(foreign))
    assert Path(foreign).read_text() == '{"something": "else"}\n'
