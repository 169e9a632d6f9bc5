"""Batch throughput: frames/s of ``maskwatch batch`` on a local Ray instance with 1 and 2 workers.

Generates a small video set (640×480, one moving face per frame, made from the
packaged sample photo), runs the single-process ``detect`` path as a baseline,
then ``run_batch`` with 1 and 2 worker actors, and writes
``benchmarks/results/batch.json``. Run from the repository root:

    nice -n 10 .venv/bin/python benchmarks/bench_batch.py [--videos 4] [--frames 96]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import resource
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np

from maskwatch.batch import BatchOptions, run_batch
from maskwatch.evaluation.bench import FRAME_H, FRAME_W, bench_frame, sample_head
from maskwatch.media.runner import run_sources
from maskwatch.media.sources import expand_sources
from maskwatch.pipeline import Detector

RESULTS = Path(__file__).resolve().parent / "results" / "batch.json"


def make_video(path: Path, frames: int, seed: int) -> None:
    """A face sliding across a textured background, like a corridor camera."""
    background = bench_frame(0, seed=seed)
    head = cv2.resize(sample_head(), (150, 160))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 15.0, (FRAME_W, FRAME_H))
    for i in range(frames):
        frame = background.copy()
        x = 20 + (i * 7 + seed * 40) % (FRAME_W - 190)
        y = 120 + int(40 * np.sin(i / 9 + seed))
        frame[y : y + head.shape[0], x : x + head.shape[1]] = head
        writer.write(frame)
    writer.release()


def _spin(n: int) -> float:
    start = time.perf_counter()
    x = 0
    for i in range(n):
        x += i * i
    return time.perf_counter() - start


def cpu_scaling(n: int = 6_000_000, repeats: int = 2) -> float:
    """How much faster 2 busy processes finish 2 units of pure-CPU work than 1 does, right now.

    2.0 on an idle 2-core machine; less when other jobs hold the cores. It tells
    what 1 → 2 worker speedup the machine could give at the time of the run.
    """
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(2) as pool:
        pool.map(_spin, [1000, 1000])  # warm both processes
        ratios = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            pool.map(_spin, [n], chunksize=1)
            one = time.perf_counter() - t0
            t0 = time.perf_counter()
            pool.map(_spin, [n, n], chunksize=1)
            two = time.perf_counter() - t0
            ratios.append(2 * one / two)
    return round(sorted(ratios)[len(ratios) // 2], 2)


def ray_startup_seconds(workers: int) -> float:
    """Start a local Ray instance and one model-holding actor, then stop: the fixed cost of a run."""
    import ray

    from maskwatch.batch.worker import ChunkWorker

    start = time.perf_counter()
    ray.init(num_cpus=workers, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    actor = ray.remote(num_cpus=1)(ChunkWorker).remote(None, None, 0.5, 16, 1)
    ray.get(actor.classes.remote())
    seconds = time.perf_counter() - start
    ray.shutdown()
    return round(seconds, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=4)
    parser.add_argument("--frames", type=int, default=96, help="frames per video")
    parser.add_argument("--chunk-frames", type=int, default=32)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    logging.getLogger("maskwatch").setLevel(logging.ERROR)

    with tempfile.TemporaryDirectory(prefix="bench_batch_") as tmp:
        root = Path(tmp)
        videos = root / "videos"
        videos.mkdir()
        for i in range(args.videos):
            make_video(videos / f"cam{i}.mp4", args.frames, seed=i)
        total = args.videos * args.frames

        start = time.perf_counter()
        detector = Detector()
        sources, _ = expand_sources([str(videos)])
        summary = run_sources(detector, sources)
        single = time.perf_counter() - start
        baseline = {
            "frames": summary.frames,
            "seconds": round(single, 2),
            "frames_per_s": round(summary.frames / single, 2),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        }
        print(f"detect (1 process, ONNX threads={os.cpu_count()}): {baseline['frames_per_s']} frames/s", flush=True)

        runs = []
        for workers in (1, 2):
            scaling = cpu_scaling()
            startup = ray_startup_seconds(workers)
            options = BatchOptions(out=root / f"out{workers}", workers=workers, chunk_frames=args.chunk_frames)
            report = run_batch([str(videos)], options)
            assert report.frames == total and not report.failed, report
            run = {
                "workers": workers,
                "cpu_scaling_2_vs_1_at_run_time": scaling,
                "frames": report.frames,
                "chunks": report.chunks,
                "wall_seconds": report.seconds,
                "frames_per_s": report.fps,
                "ray_startup_seconds": startup,
                "processing_seconds": report.processing_seconds,
                "frames_per_s_after_startup": round(report.frames / report.processing_seconds, 2),
                "frames_per_worker_second": round(report.frames / report.worker_seconds, 2),
                "driver_seconds": report.driver_seconds,
                "finish_seconds_per_video": round(report.finish_seconds / args.videos, 3),
                "driver_frames_per_s": round(report.frames / max(report.driver_seconds, 1e-6), 1),
                "worker_peak_rss_mb": report.worker_peak_rss_mb,
            }
            runs.append(run)
            print(
                f"batch, {workers} worker(s): {run['frames_per_s']} frames/s wall, "
                f"{run['frames_per_s_after_startup']} after Ray start-up ({startup}s), "
                f"{run['frames_per_worker_second']} frames per worker-second, "
                f"driver {run['driver_frames_per_s']} frames/s, worker RSS {run['worker_peak_rss_mb']} MB "
                f"(machine 2-vs-1 CPU scaling then: {scaling})",
                flush=True,
            )

    result = {
        "benchmark": "maskwatch batch throughput on a local Ray instance",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": sys.version.split()[0],
            "note": "shared machine (other jobs running): absolute figures are pessimistic",
        },
        "model": os.environ.get("MASKWATCH_MODEL") or "maskwatch:default",
        "input": {
            "videos": args.videos,
            "frames_per_video": args.frames,
            "size": f"{FRAME_W}x{FRAME_H}",
            "faces_per_frame": 1,
            "chunk_frames": args.chunk_frames,
        },
        "detect_single_process": baseline,
        "batch": runs,
        "speedup_2_vs_1_workers": round(
            runs[1]["frames_per_s_after_startup"] / runs[0]["frames_per_s_after_startup"], 2
        ),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
