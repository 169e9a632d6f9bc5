"""End-to-end fps of the float and int8 pipelines, measured taking turns (the machine is shared).

Four pipelines on the bench's frames (640×480, 1 and 5 faces): the default bundle and detector, the int8
bundle, the int8 detector, both int8. Each round runs every pipeline once for ``--frames`` frames, so a burst
of other work slows one round of all of them rather than all rounds of one; per pipeline the best and the
median round are reported, with the process CPU time a frame took (which other programs do not inflate).
Example::

    python benchmarks/bench_int8.py --rounds 5 --frames 100 --json benchmarks/results/int8.json
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

from maskwatch.bench import machine_info, run_bench
from maskwatch.pipeline import Detector

PIPELINES = {
    "float (default)": ("maskwatch:default", "maskface"),
    "int8 bundle": ("maskwatch:default-int8", "maskface"),
    "int8 detector": ("maskwatch:default", "maskface-int8"),
    "int8 bundle + detector": ("maskwatch:default-int8", "maskface-int8"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    pipelines = {
        name: Detector(model=model, detector=detector, threads=args.threads)
        for name, (model, detector) in PIPELINES.items()
    }
    runs: dict[str, dict[int, list[tuple[float, float]]]] = {name: {1: [], 5: []} for name in pipelines}
    for round_ in range(args.rounds):
        for faces in (1, 5):
            for name, pipeline in pipelines.items():
                start = time.process_time()
                fps = run_bench(pipeline, faces, frames=args.frames, warmup=5)["fps"]
                cpu_ms = 1000 * (time.process_time() - start) / (args.frames + 5)
                runs[name][faces].append((fps, cpu_ms))
        print(f"round {round_ + 1}/{args.rounds} done (load average {os.getloadavg()[0]:.1f})", flush=True)
    results = {}
    for name, by_faces in runs.items():
        row = {"model": PIPELINES[name][0], "detector": PIPELINES[name][1]}
        for faces, values in by_faces.items():
            fps = [v[0] for v in values]
            row[f"fps_{faces}_faces_best"] = max(fps)
            row[f"fps_{faces}_faces_median"] = round(float(np.median(fps)), 1)
            row[f"cpu_ms_per_frame_{faces}_faces_median"] = round(float(np.median([v[1] for v in values])), 2)
        results[name] = row
        print(name, json.dumps(row))
    report = {
        "machine": machine_info(),
        "load_average_after": os.getloadavg(),
        "rounds": args.rounds,
        "frames": args.frames,
        "threads": args.threads,
        "results": results,
    }
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(report, handle, indent=2)
            handle.write("\n")


if __name__ == "__main__":
    main()
