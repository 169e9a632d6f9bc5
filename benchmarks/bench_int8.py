"""End-to-end speed of the float and int8 pipelines, frame by frame in turns (the machine is shared).

Four pipelines on the bench's frames (640×480, 1 and 5 faces; what ``maskwatch bench`` runs): the default
bundle and detector, the int8 bundle, the int8 detector, both int8. Each frame goes through every pipeline in
turn (the order rotating), each with its own tracker, timing detect + track + draw, so a burst of other work on
the machine lands on all of them alike instead of on whichever ran at that moment. Per pipeline: fps from the
median frame time (and from the mean, which a few stalled frames drag down), and the process CPU time a frame
took. Example::

    python benchmarks/bench_int8.py --frames 400 --json benchmarks/results/int8.json
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

from maskwatch.evaluation.bench import bench_frame, machine_info
from maskwatch.inference.tracker import FaceTracker
from maskwatch.media.draw import annotate
from maskwatch.pipeline import Detector

PIPELINES = {
    "float (default)": ("maskwatch:default", "maskface"),
    "int8 bundle": ("maskwatch:default-int8", "maskface"),
    "int8 detector": ("maskwatch:default", "maskface-int8"),
    "int8 bundle + detector": ("maskwatch:default-int8", "maskface-int8"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=400)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    pipelines = {
        name: Detector(model=model, detector=detector, threads=args.threads)
        for name, (model, detector) in PIPELINES.items()
    }
    names = list(pipelines)
    results: dict[str, dict] = {name: {"model": m, "detector": d} for name, (m, d) in PIPELINES.items()}
    load = [os.getloadavg()[0]]
    for faces in (1, 5):
        frame = bench_frame(faces)
        trackers = {name: FaceTracker(p.classes) for name, p in pipelines.items()}
        wall: dict[str, list[float]] = {name: [] for name in names}
        cpu: dict[str, list[float]] = {name: [] for name in names}
        found: dict[str, int] = dict.fromkeys(names, 0)
        for i in range(-10, args.frames):  # ten frames of warm-up
            for k in range(len(names)):
                name = names[(i + k) % len(names)]
                canvas = frame.copy()
                start, start_cpu = time.perf_counter(), time.process_time()
                faces_found = trackers[name].update(pipelines[name].detect(frame), i)
                annotate(canvas, faces_found)
                if i >= 0:
                    wall[name].append(time.perf_counter() - start)
                    cpu[name].append(time.process_time() - start_cpu)
                    found[name] += len(faces_found)
        load.append(os.getloadavg()[0])
        for name in names:
            results[name][f"fps_{faces}_faces"] = round(1 / float(np.median(wall[name])), 1)
            results[name][f"fps_mean_{faces}_faces"] = round(1 / float(np.mean(wall[name])), 1)
            results[name][f"median_ms_{faces}_faces"] = round(1000 * float(np.median(wall[name])), 2)
            results[name][f"cpu_ms_{faces}_faces"] = round(1000 * float(np.mean(cpu[name])), 2)
            results[name][f"faces_found_{faces}_faces"] = round(found[name] / args.frames, 2)
    for name, row in results.items():
        print(name, json.dumps(row))
    report = {
        "machine": machine_info(),
        "load_average_1min": load,
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
