"""Run the pipeline over many sources into sinks, with a closing summary.

The CLI's ``detect`` and the web app's video jobs call ``run_sources``; it keeps going
past a bad source (listing it) and always closes its sinks, Ctrl-C included.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Sequence

from maskwatch.errors import InputError
from maskwatch.media.sinks import Sink
from maskwatch.media.sources import Source
from maskwatch.pipeline import Detector
from maskwatch.schemas import Summary

log = logging.getLogger("maskwatch")


def run_sources(
    detector: Detector,
    sources: list[Source],
    sinks: Sequence[Sink] = (),
    track: bool = True,
) -> Summary:
    """Process every source into every sink; a source that fails is logged and listed in ``Summary.failed_sources``.

    Ctrl-C stops the run but still closes every sink (``Summary.interrupted``).
    """
    summary = Summary()
    faces_per_class: Counter = Counter()
    people: Counter = Counter()
    start = time.perf_counter()
    try:
        for source in sources:
            run = None
            try:
                run = detector.process(source, track=track)
                for result in run:
                    summary.frames += 1
                    summary.faces += len(result.faces)
                    faces_per_class.update(f.label for f in result.faces)
                    for sink in sinks:
                        sink.write(result, source)
            except InputError as exc:
                log.error("%s", exc)
                summary.failed_sources.append(str(exc))
            finally:  # also on Ctrl-C and when the source failed part-way: the people it showed were seen
                if run is not None:
                    people.update(run.people_per_class())
    except KeyboardInterrupt:
        summary.interrupted = True
    finally:
        for sink in reversed(sinks):
            sink.close()
        summary.seconds = round(time.perf_counter() - start, 3)
        summary.fps = round(summary.frames / summary.seconds, 2) if summary.seconds > 0 else 0.0
        summary.faces_per_class = dict(faces_per_class)
        summary.people_per_class = dict(people)
    return summary
