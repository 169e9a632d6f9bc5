"""Training benchmark: wall time and test metrics of the default recipe, run fresh as a user would.

Usage: python benchmarks/bench_train.py [--dataset ../shared/data/face-mask]
       [--weights ../shared/weights/mobilenet_v2_0.35_no_top.weights.h5] [--warm-cache DIR]

Runs the documented command (src/maskwatch/packaged/default/MODEL_CARD.md) into a temporary
folder with an empty face-crop cache (so face detection is timed too, unless --warm-cache),
and writes benchmarks/results/train.json: wall time, CPU count, load average before and
after, and the test figures. The bar: under 20 minutes on a 2-core CPU with test
accuracy >= 99.0 % and every class recall >= 98 %.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default=str(SHARED / "data" / "face-mask"))
    parser.add_argument("--weights", default=str(SHARED / "weights" / "mobilenet_v2_0.35_no_top.weights.h5"))
    parser.add_argument("--warm-cache", default=None, help="reuse this face-crop cache (times training only)")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "train.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        cache = args.warm_cache or str(Path(tmp) / "cache")
        command = [
            sys.executable,
            "-m",
            "maskwatch",
            "train",
            args.dataset,
            "--out",
            str(run),
            "--weights",
            args.weights,
        ]
        load_before = os.getloadavg()
        started = time.monotonic()
        result = subprocess.run(command, env={**os.environ, "MASKWATCH_CACHE": cache}, capture_output=True, text=True)
        wall = time.monotonic() - started
        if result.returncode != 0:
            sys.exit(f"training failed: {result.stderr.strip().splitlines()[-1] if result.stderr else '?'}")
        metrics = json.loads((run / "metrics.json").read_text())
    record = {
        "command": "maskwatch train DATASET --out RUN --weights WEIGHTS (defaults otherwise)",
        "face_crop_cache": "warm" if args.warm_cache else "cold (face detection timed)",
        "wall_seconds": round(wall, 1),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "test": metrics["test"],
        "val_accuracy": metrics["val_accuracy"],
        "counts": metrics["counts"],
        "no_face": metrics["no_face"],
    }
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
