"""Run the pipeline over many sources into sinks, with a closing summary.

The CLI's ``detect`` and other front ends call ``run_sources``; it keeps going
past a bad source (listing it) and always closes its outputs, Ctrl-C included.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable

from maskwatch.errors import InputError
from maskwatch.media.sinks import AnnotatedSink, JsonLinesSink
from maskwatch.media.sources import Source
from maskwatch.pipeline import Detector, FrameResult
from maskwatch.schemas import Summary

log = logging.getLogger("maskwatch")


def run_sources(
    detector: Detector,
    sources: list[Source],
    json_sink: JsonLinesSink | None = None,
    annotated_sink: AnnotatedSink | None = None,
    on_frame: Callable[[FrameResult, Source], None] | None = None,
    track: bool = True,
) -> Summary:
    """Process every source; a source that fails is logged and listed in ``Summary.failed_sources``.

    Ctrl-C stops the run but still closes every output (``Summary.interrupted``).
    """
    summary = Summary()
    faces_per_class: Counter = Counter()
    people: Counter = Counter()
    start = time.perf_counter()
    try:
        for source in sources:
            results = detector.process(source, track=track)
            try:
                for result in results:
                    summary.frames += 1
                    summary.faces += len(result.faces)
                    faces_per_class.update(f.label for f in result.faces)
                    if json_sink is not None:
                        json_sink.write(result)
                    if annotated_sink is not None:
                        annotated_sink.write(result, source.kind, source.fps)
                    if on_frame is not None:
                        on_frame(result, source)
            except InputError as exc:
                log.error("%s", exc)
                summary.failed_sources.append(str(exc))
            finally:  # also on Ctrl-C and when the source failed part-way: the people it showed were seen
                results.close()  # runs process()'s own finally, which hands over the tracker's count
                if source.kind != "image":
                    people.update(getattr(detector, "last_people_per_class", {}))
                    detector.last_people_per_class = {}
    except KeyboardInterrupt:
        summary.interrupted = True
    finally:
        if annotated_sink is not None:
            annotated_sink.close()
        if json_sink is not None:
            json_sink.close()
        summary.seconds = round(time.perf_counter() - start, 3)
        summary.fps = round(summary.frames / summary.seconds, 2) if summary.seconds > 0 else 0.0
        summary.faces_per_class = dict(faces_per_class)
        summary.people_per_class = dict(people)
    return summary
