"""Run a batch on Ray: plan units and chunks, feed a pool of model-holding actors, assemble results as they come.

Scheduling: every actor (one CPU, model bundle loaded once) keeps ``IN_FLIGHT``
chunks queued so it never waits for the driver; the driver takes results with
``ray.wait`` in completion order and hands them to each unit's assembler, which
restores frame order. A worker that dies mid-chunk (OOM kill, segfault, node
loss) is restarted by Ray and the chunk re-run (``max_restarts`` /
``max_task_retries``); past that the driver replaces the actor and resubmits,
once more, then gives up on that unit only.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import os
import re
import time
import warnings
from collections import deque
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from maskwatch import errors as _errors
from maskwatch.batch.assemble import DONE_FILE, SUMMARY_FILE, UnitAssembler, is_complete, write_text_atomic
from maskwatch.batch.plan import (
    DEFAULT_CHUNK_FRAMES,
    DEFAULT_PHOTO_BATCH,
    Chunk,
    Unit,
    collect_units,
    plan_chunks,
    probe_video,
)
from maskwatch.batch.worker import CRASH_ENV, ChunkResult, ChunkWorker
from maskwatch.errors import InputError, MaskwatchError, ModelError
from maskwatch.media.files import prepare_output_folder
from maskwatch.settings import DEFAULT_HEAD_WEIGHT, PipelineSettings

log = logging.getLogger("maskwatch")

IN_FLIGHT = 2
"""Chunks queued per actor: one running, one waiting, so no actor idles between results."""

DRIVER_RETRIES = 1
"""Resubmissions of a chunk on a fresh actor once Ray's own retries (``BatchOptions.retries``) are spent.

Kept at one: a chunk that still kills its worker is poison (say, a video that
crashes the decoder), and its unit is better reported failed than retried forever.
"""

OVERALL_CSV = "summary.csv"
OVERALL_JSON = "summary.json"


@dataclass
class BatchOptions:
    out: Path
    pipeline: PipelineSettings = field(default_factory=PipelineSettings)
    """Model, detector and thresholds, as ``maskwatch detect`` takes them (threads: one per worker, always)."""
    workers: int | None = None
    ray_address: str | None = None
    resume: bool = False
    chunk_frames: int = DEFAULT_CHUNK_FRAMES
    photo_batch: int = DEFAULT_PHOTO_BATCH
    retries: int = 3
    track: bool = True

    def output_options(self) -> dict:
        """The options that change outputs: a ``--resume`` reuses a unit only if they are unchanged.

        Chunk sizes and worker counts are not among them: they never change results.
        """
        settings = self.pipeline
        model = settings.model or os.environ.get("MASKWATCH_MODEL") or "maskwatch:default"
        options = {
            "model": model,
            # unnamed: the bundle's detector for videos and its multi-scale sibling for photo sets (results made
            # when photos got the video detector are not reused by --resume)
            "detector": settings.detector or "bundle's; photos: its multi-scale sibling",
            "conf": settings.conf,
            "min_face": settings.min_face,
            "track": self.track,
        }
        if settings.head_weight != DEFAULT_HEAD_WEIGHT:  # recorded only when set, so earlier runs still resume
            options["head_weight"] = settings.head_weight
        return options

    def worker_settings(self) -> PipelineSettings:
        """The pipeline each worker builds: ``$MASKWATCH_MODEL`` resolved here (nodes may lack it), one thread."""
        return replace(self.pipeline, model=self.pipeline.model or os.environ.get("MASKWATCH_MODEL"), threads=1)


@dataclass
class UnitReport:
    input: str
    kind: str
    folder: str
    status: str  # done | resumed | failed
    frames: int = 0
    faces: int = 0
    people_per_class: dict = field(default_factory=dict)
    masked_share: float | None = None
    errors: list[str] = field(default_factory=list)


@dataclass
class BatchReport:
    units: list[UnitReport] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)
    workers: int = 0
    chunks: int = 0
    retried_chunks: int = 0
    frames: int = 0
    seconds: float = 0.0
    fps: float = 0.0
    interrupted: bool = False
    processing_seconds: float = 0.0
    """Wall time from the first chunk sent to the last result in: the run without Ray's start-up."""
    worker_seconds: float = 0.0
    """Time workers spent decoding, detecting and classifying (summed over workers)."""
    driver_seconds: float = 0.0
    """Time the driver spent ordering, tracking and writing frames: what bounds a very large cluster."""
    finish_seconds: float = 0.0
    """Time the driver spent closing units (counts, summary, plot, renames): a fixed cost per input."""
    worker_peak_rss_mb: float = 0.0
    """The largest peak resident memory of a worker process (model, detector, one chunk's frames)."""

    @property
    def failed(self) -> list[UnitReport]:
        return [u for u in self.units if u.status == "failed"]

    @property
    def with_errors(self) -> list[UnitReport]:
        """Units that finished but not cleanly: a corrupt photo in a set, frames of a video that did not decode."""
        return [u for u in self.units if u.status != "failed" and u.errors]

    @property
    def has_problems(self) -> bool:
        """Anything skipped, failed or with errors: what makes the command exit 2, as ``detect`` does."""
        return bool(self.problems or self.failed or self.with_errors)


def _report_from_summary(unit: Unit, folder: Path, status: str, summary: dict) -> UnitReport:
    return UnitReport(
        input=unit.name,
        kind=unit.kind,
        folder=str(folder),
        status=status,
        frames=summary.get("frames", 0),
        faces=summary.get("faces", 0),
        people_per_class=summary.get("people_per_class", {}),
        masked_share=summary.get("masked_share"),
        errors=summary.get("errors", []),
    )


def connect_ray(address: str | None, workers: int | None) -> tuple[int, bool]:
    """Connect to ``address`` (a running cluster) or start a local instance; returns (workers, started_here).

    A cluster that cannot be reached (or a local instance that cannot start) is one ``MaskwatchError`` line.
    """
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    started = False
    if not ray.is_initialized():
        try:
            with warnings.catch_warnings():  # Ray Client adds a multi-line warning to its own timeout error
                warnings.simplefilter("ignore")
                if address:
                    ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
                else:
                    ray.init(
                        num_cpus=workers or os.cpu_count() or 1,
                        include_dashboard=False,
                        logging_level=logging.WARNING,
                        log_to_driver=False,
                    )
        except Exception as exc:  # ConnectionError, TimeoutError, RuntimeError, ValueError… depending on the failure
            if ray.is_initialized():
                ray.shutdown()
            where = f"Ray at {address}" if address else "a local Ray instance"
            raise MaskwatchError(f"cannot connect to {where}: {_clean_first_line(exc)}") from None
        started = True
    cpus = int(ray.cluster_resources().get("CPU", 1))
    return max(1, workers or cpus), started


def holds_results(out: Path) -> bool:
    """True when ``out`` holds an earlier batch's results: an overall summary or a finished unit folder."""
    if (out / OVERALL_CSV).exists() or (out / OVERALL_JSON).exists():
        return True
    return any((child / DONE_FILE).exists() for child in out.iterdir() if child.is_dir())


def prepare_out(out: Path, resume: bool) -> None:
    """Make sure ``out`` can take this run's results before any work (and before Ray starts), or ``InputError``.

    The folder must be creatable and writable, and, unless resuming, must not hold an
    earlier batch's results: a new run would silently replace them and drop their rows
    from ``summary.csv``. A new or empty folder, or one with unrelated files, is fine.
    """
    if not resume and out.is_dir() and holds_results(out):
        raise InputError(
            f"{out}: holds an earlier batch's results; "
            "use --resume to keep them (only what is missing runs), or another --out"
        )
    prepare_output_folder(out)


def check_model(options: BatchOptions) -> None:
    """Fail in the driver, before Ray starts, on a bad ``--detector`` or model bundle: one ``ModelError`` line.

    Locally the bundle is loaded as the workers will load it (ONNX sessions included,
    so a corrupt ``model.onnx`` is caught too). On a cluster the bundle's path is the
    nodes' business, so only the detector name is checked here.
    """
    from maskwatch.detectors import detector_names

    name = options.pipeline.detector
    if name is not None and name not in detector_names():
        raise ModelError(f"unknown detector {name!r}; choose one of: {', '.join(detector_names())}")
    if options.ray_address:
        return
    from maskwatch.pipeline import Detector

    Detector.from_settings(options.worker_settings())


def plan(inputs: list[str], options: BatchOptions) -> tuple[list[Unit], list[UnitReport], list[str]]:
    """Units to run (chunked), reports of units skipped (resumed or unreadable), and input problems."""
    units, problems = collect_units(inputs)
    to_run: list[Unit] = []
    skipped: list[UnitReport] = []
    for unit in units:
        folder = options.out / unit.safe_name
        if options.resume and is_complete(folder, unit, options.output_options()):
            summary = json.loads((folder / SUMMARY_FILE).read_text(encoding="utf-8"))
            skipped.append(_report_from_summary(unit, folder, "resumed", summary))
            for error in skipped[-1].errors:  # still true of the same inputs: still a problem of this run
                log.error("%s (found by the earlier run)", error)
            continue
        if unit.kind == "video":
            try:
                unit.frame_count, unit.fps = probe_video(unit.items[0].target)
            except InputError as exc:
                message = str(exc).replace(unit.items[0].target, unit.name)
                log.error("%s", message)
                skipped.append(UnitReport(unit.name, unit.kind, str(folder), "failed", errors=[message]))
                continue
        plan_chunks(unit, options.chunk_frames, options.photo_batch)
        to_run.append(unit)
    return to_run, skipped, problems


def run_batch(inputs: list[str], options: BatchOptions, progress=None) -> BatchReport:
    """Process every input into ``options.out``; returns what happened to each.

    ``progress`` (optional) is called once as ``progress(total_chunks=N)``, then
    ``progress(advance=1, frames=F)`` per finished chunk.
    """
    report = BatchReport()
    start = time.perf_counter()
    missing = [f for f in (options.out, *options.out.parents) if not f.exists()]  # what prepare_out will create
    prepare_out(options.out, options.resume)
    try:
        units, skipped, report.problems = plan(inputs, options)
        if not units and not skipped:  # nothing to do: the problems are the error, said once
            raise InputError("; ".join(report.problems) if report.problems else "no input given")
        chunks = [chunk for unit in units for chunk in unit.chunks]
        if chunks:
            check_model(options)  # a bad --model or --detector is one clear line before any Ray start-up
    except MaskwatchError:
        _remove_if_empty(missing)
        raise
    for problem in report.problems:
        log.error("%s", problem)
    reports: dict[int, UnitReport] = {}
    report.chunks = len(chunks)
    started = False
    try:
        if chunks:
            try:
                report.workers, started = connect_ray(options.ray_address, options.workers)
            except MaskwatchError:
                _remove_if_empty(missing)
                raise
        if progress is not None:
            progress(total_chunks=len(chunks))
        if chunks:
            _run_chunks(units, chunks, options, report, reports, progress)
    except KeyboardInterrupt:
        report.interrupted = True
    finally:
        if started:
            import ray

            ray.shutdown()
    report.units = skipped + [reports[u.index] for u in units if u.index in reports]
    report.frames = sum(u.frames for u in report.units if u.status == "done")
    report.worker_seconds = round(report.worker_seconds, 3)
    report.driver_seconds = round(report.driver_seconds, 3)
    report.finish_seconds = round(report.finish_seconds, 3)
    report.seconds = round(time.perf_counter() - start, 3)
    report.fps = round(report.frames / report.seconds, 2) if report.seconds > 0 else 0.0
    write_overall(options.out, report)
    return report


def _remove_if_empty(created: list[Path]) -> None:
    """A run refused before any work leaves no empty --out behind, nor the parents it made for it (deepest first)."""
    for folder in created:
        with contextlib.suppress(OSError):
            folder.rmdir()


def _run_chunks(units, chunks, options, report, reports, progress) -> None:
    scheduler = _ChunkScheduler(units, options, report, reports, progress)
    scheduler.start_actors(len(chunks))
    scheduler.run(chunks)


class _ChunkScheduler:
    """Chunks onto Ray actors (at most ``IN_FLIGHT`` each, least loaded first), retries of failed chunks, and each
    unit's outputs assembled as its chunks come back; ``reports`` gets one entry per finished or failed unit."""

    def __init__(self, units, options: BatchOptions, report: BatchReport, reports: dict, progress) -> None:
        import ray

        self.ray = ray
        self.options, self.report, self.reports, self.progress = options, report, reports, progress
        self.remote_worker = ray.remote(num_cpus=1, max_restarts=options.retries, max_task_retries=options.retries)(
            ChunkWorker
        )
        self.settings = options.worker_settings()
        self.crash_hook = os.environ.get(CRASH_ENV)
        self.by_index = {u.index: u for u in units}
        self.assemblers: dict[int, UnitAssembler] = {}
        self.queue: deque[tuple[Chunk, int]] = deque()
        self.in_flight: dict = {}  # ref -> (chunk, attempt, actor slot, actor)
        self.actors: list = []
        self.load: list[int] = []

    def new_actor(self):
        return self.remote_worker.remote(self.settings, self.crash_hook)

    def start_actors(self, n_chunks: int) -> None:
        """Start the workers and read the model's classes: a worker that cannot load the model is one clear line."""
        from ray.exceptions import RayActorError, RayTaskError

        self.actors = [self.new_actor() for _ in range(max(1, min(self.report.workers, n_chunks)))]
        self.load = [0] * len(self.actors)
        try:
            self.report.classes = self.ray.get(self.actors[0].classes.remote())
        except RayTaskError as exc:
            cause = exc.as_instanceof_cause()
            if isinstance(cause, MaskwatchError):
                raise type(cause)(str(cause.args[0]) if cause.args else str(cause)) from None
            raise
        except RayActorError as exc:
            found = re.search(r"maskwatch\.errors\.(\w+): (.+)", str(exc))
            if found:  # the worker's own one-line error (a bundle missing on the cluster's nodes…), with its exit code
                kind = getattr(_errors, found.group(1), MaskwatchError)
                kind = kind if isinstance(kind, type) and issubclass(kind, MaskwatchError) else MaskwatchError
                raise kind(found.group(2).strip()) from None
            raise MaskwatchError(f"batch workers could not start: {_clean_first_line(exc)}") from None

    def run(self, chunks: list[Chunk]) -> None:
        from ray.exceptions import RayActorError, RayTaskError

        self.queue.extend((c, 0) for c in chunks)
        processing_start = time.perf_counter()
        try:
            self.submit()
            while self.in_flight:
                ready, _ = self.ray.wait(list(self.in_flight), num_returns=1)
                chunk, attempt, slot, actor = self.in_flight.pop(ready[0])
                self.load[slot] -= 1
                try:
                    result: ChunkResult = self.ray.get(ready[0])
                except (RayActorError, RayTaskError) as exc:
                    self.chunk_failed(chunk, attempt, slot, actor, exc)
                    self.submit()
                    continue
                self.submit()
                self.chunk_done(chunk, result)
        finally:
            self.report.processing_seconds = round(time.perf_counter() - processing_start, 3)
            for assembler in self.assemblers.values():  # interrupted: close files, leave no DONE behind
                assembler.fail("interrupted")
            self.assemblers.clear()

    def submit(self) -> None:
        while self.queue:
            slot = min(range(len(self.actors)), key=lambda i: self.load[i])
            if self.load[slot] >= IN_FLIGHT:
                return
            chunk, attempt = self.queue.popleft()
            if chunk.unit in self.reports:  # the unit already failed: skip its remaining chunks
                if self.progress is not None:
                    self.progress(advance=1, frames=0)
                continue
            self.in_flight[self.actors[slot].process.remote(chunk)] = (chunk, attempt, slot, self.actors[slot])
            self.load[slot] += 1

    def fail_unit(self, unit: Unit, reason: str) -> None:
        assembler = self.assemblers.pop(unit.index, None)
        if assembler is not None:
            assembler.fail(reason)
        log.error("%s", reason)
        self.reports[unit.index] = UnitReport(
            unit.name, unit.kind, str(self.options.out / unit.safe_name), "failed", errors=[reason]
        )

    def chunk_failed(self, chunk: Chunk, attempt: int, slot: int, actor, exc: BaseException) -> None:
        """Retry a chunk whose worker died or raised (``DRIVER_RETRIES`` times), then fail its unit."""
        from ray.exceptions import RayActorError

        unit = self.by_index[chunk.unit]
        if isinstance(exc, RayActorError) and self.actors[slot] is actor:
            self.actors[slot] = self.new_actor()  # Ray's own restarts are spent: replace the actor
        first_line = _clean_first_line(exc)
        if attempt < DRIVER_RETRIES and chunk.unit not in self.reports:
            self.report.retried_chunks += 1
            log.warning("chunk %d of %s failed (%s); retrying", chunk.seq, unit.name, first_line)
            self.queue.appendleft((chunk, attempt + 1))
            return
        if chunk.unit not in self.reports:
            self.fail_unit(unit, f"{unit.name}: chunk {chunk.seq} failed after {attempt + 1} attempts: {first_line}")
        if self.progress is not None:
            self.progress(advance=1, frames=0)

    def chunk_done(self, chunk: Chunk, result: ChunkResult) -> None:
        """Add a chunk's frames to its unit's outputs; a unit whose chunks are all in is finished and reported."""
        report, unit = self.report, self.by_index[chunk.unit]
        report.worker_seconds += result.seconds
        report.worker_peak_rss_mb = max(report.worker_peak_rss_mb, result.worker_peak_rss_mb)
        assembling = time.perf_counter()
        frames = 0
        if chunk.unit not in self.reports:
            try:
                assembler = self.assemblers.get(chunk.unit)
                if assembler is None:
                    assembler = self.assemblers[chunk.unit] = UnitAssembler(
                        unit, self.options.out, report.classes, self.options.output_options(), track=self.options.track
                    )
                assembler.add(result)
                frames = len(result.frames)
                if assembler.fatal is not None:
                    self.fail_unit(unit, assembler.fatal)
                elif assembler.complete:
                    report.driver_seconds += time.perf_counter() - assembling
                    assembling = time.perf_counter()
                    summary = assembler.finish()
                    report.finish_seconds += time.perf_counter() - assembling
                    assembling = time.perf_counter()
                    del self.assemblers[chunk.unit]
                    for error in summary["errors"]:
                        log.error("%s", error)
                    self.reports[chunk.unit] = _report_from_summary(unit, assembler.folder, "done", summary)
            except OSError as exc:  # this unit's folder cannot be written (a file in the way, disk full…)
                where = exc.filename or (self.options.out / unit.safe_name)
                self.fail_unit(unit, f"{unit.name}: cannot write {where} ({exc.strerror or exc})")
        report.driver_seconds += time.perf_counter() - assembling
        if self.progress is not None:
            self.progress(advance=1, frames=frames)


def _clean_first_line(exc: BaseException) -> str:
    """The first line of a Ray error, without terminal colour codes."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip()
    return (text.splitlines() or [type(exc).__name__])[0]


def write_overall(out: Path, report: BatchReport) -> None:
    """``summary.csv`` (one row per input) and ``summary.json`` (the whole report), both atomic."""
    classes = report.classes or sorted({c for u in report.units for c in u.people_per_class})
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["input", "kind", "status", "frames", "faces", *[f"people_{c}" for c in classes],
                     "masked_share", "folder", "errors"])  # fmt: skip
    for u in report.units:
        writer.writerow(
            [
                u.input,
                u.kind,
                u.status,
                u.frames,
                u.faces,
                *[u.people_per_class.get(c, 0) if u.kind == "video" else "" for c in classes],
                "" if u.masked_share is None else u.masked_share,
                u.folder,
                "; ".join(u.errors),
            ]
        )
    write_text_atomic(out / OVERALL_CSV, buffer.getvalue())
    payload = asdict(report)
    write_text_atomic(out / OVERALL_JSON, json.dumps(payload, indent=2) + "\n")
