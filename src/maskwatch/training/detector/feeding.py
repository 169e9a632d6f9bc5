"""Training batches for the detector loop: one producer thread, or worker processes when a GPU outruns it.

Making a batch (scene crops, pastes, augmentation, target maps) is NumPy and OpenCV work: ~0.15 s for 16
samples of 256 px on one core, ~2 s for 64 of 384 px. On a 2-core CPU one thread beside the TensorFlow step
keeps up; on a GPU it would leave the accelerator idle most of the time, so ``workers`` processes (spawned, so
TensorFlow's threads are never forked) each draw batches from their own seed. One thread is reproducible
run to run; with workers the order in which their batches arrive is not.
"""

from __future__ import annotations

import multiprocessing
import queue
import signal
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from maskwatch.errors import MaskwatchError

WORKER_SEED_STRIDE = 1_000_003
"""Worker k draws from seed + k × this, so workers never share a random stream."""
POLL_SECONDS = 0.5


def _fill(make: Callable[[], Any], out: Any, stop: Any, alive: Callable[[], bool] = lambda: True) -> None:
    """Put batches into ``out`` until ``stop`` is set or ``alive`` says the trainer is gone (a full queue is retried,
    so stopping is never blocked)."""
    while not stop.is_set() and alive():
        item = make()
        while not stop.is_set() and alive():
            try:
                out.put(item, timeout=POLL_SECONDS)
                break
            except queue.Full:
                continue


def _worker(maker_options: dict, seed: int, batch: int, out: Any, stop: Any) -> None:
    """A spawned process: its own SampleMaker over pickled scenes and crops. It ends with the trainer, even one
    killed without closing the feed, and leaves Ctrl-C to the trainer (one message, not one per worker)."""
    import cv2

    from maskwatch.training.detector.data import SampleMaker

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    cv2.setNumThreads(1)  # one process per core already
    out.cancel_join_thread()  # at exit, batches nobody will read are dropped instead of blocking the exit
    parent = multiprocessing.parent_process()
    maker = SampleMaker(seed=seed, **maker_options)
    _fill(lambda: maker.raw_batch(batch), out, stop, alive=lambda: parent is None or parent.is_alive())


class BatchFeed:
    """``next()`` gives (RGB float32 images, targets); ``close()`` stops the producers."""

    def __init__(self, maker_options: dict, seed: int, batch: int, workers: int = 0) -> None:
        self.workers: list[Any] = []
        if workers <= 0:
            from maskwatch.training.detector.data import SampleMaker

            maker = SampleMaker(seed=seed, **maker_options)
            self.queue: Any = queue.Queue(maxsize=4)
            self.stop: Any = threading.Event()
            thread = threading.Thread(
                target=_fill, args=(lambda: maker.raw_batch(batch), self.queue, self.stop), daemon=True
            )
            thread.start()
            self.thread: threading.Thread | None = thread
            return
        self.thread = None
        context = multiprocessing.get_context("spawn")
        self.queue = context.Queue(maxsize=2 * workers)
        self.stop = context.Event()
        for k in range(workers):
            process = context.Process(
                target=_worker,
                args=(maker_options, seed + k * WORKER_SEED_STRIDE, batch, self.queue, self.stop),
                daemon=True,
            )
            process.start()
            self.workers.append(process)

    def next(self) -> tuple[np.ndarray, np.ndarray]:
        """The next batch; a ``MaskwatchError`` (one CLI line) if every worker process, or the thread, has died."""
        while True:
            try:
                images, targets = self.queue.get(timeout=POLL_SECONDS)
                return images.astype(np.float32), targets
            except queue.Empty:
                if self.workers and not any(p.is_alive() for p in self.workers):
                    codes = sorted({p.exitcode for p in self.workers}, key=str)
                    raise MaskwatchError(f"every sample worker process died (exit codes {codes})") from None
                if self.thread is not None and not self.thread.is_alive():
                    raise MaskwatchError("the sample-making thread died (its error is printed above)") from None

    def close(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(timeout=POLL_SECONDS + 30)  # at most the batch it is making
        for process in self.workers:
            process.join(timeout=5)
            if process.is_alive():
                process.terminate()
                process.join(timeout=5)
        if self.workers:
            self.queue.cancel_join_thread()  # batches still queued are dropped, not flushed on exit
