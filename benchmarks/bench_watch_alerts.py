"""Does alerting slow the frame loop? ``watch`` on the scripted two-minute camera, alerts on vs. off.

The scripted camera of the tests (people entering and leaving; face crops from ``../shared/data``) is served
over HTTP MJPEG on 127.0.0.1 as fast as it is read (``fps`` set in the watch file: every frame is processed on
the stream's own timeline). Each run is the real ``Monitor``; "on" has both rules, snapshots, 2 s clips and
three sinks (a webhook receiver on loopback, mosquitto when installed, a local command); "off" has no rules and
no sinks. Runs alternate (off, on, off, on, ...) so that load from elsewhere hits both alike; the figure is the
median over runs of the frame loop's mean fps (frames / time from the first to the last frame), and of the loop
thread's own CPU time per frame (steadier on a shared machine: other processes' load does not enter it).

    python benchmarks/bench_watch_alerts.py --runs 3 --out benchmarks/results/watch_alerts.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "src"), str(REPO / "tests")]

from monitor_helpers import Mosquitto, WebhookReceiver, mosquitto_binary  # noqa: E402
from scripted_stream import FPS, MjpegServer, cast, encode_script  # noqa: E402

from maskwatch.monitor.config import parse_config  # noqa: E402
from maskwatch.monitor.watch import Monitor  # noqa: E402
from maskwatch.pipeline import Detector  # noqa: E402


def one_run(frames: list[bytes], alerts: bool, folder: Path, sinks: dict) -> dict:
    with MjpegServer(frames, speed=0) as camera:
        data = {
            "source": [{"name": "door", "url": camera.url, "detector": "maskface", "fps": FPS, "reconnects": 0}],
            "storage": {"folder": str(folder)},
            "rules": {"no_mask_seconds": None, "compliance_below": None},
        }
        if alerts:
            data["rules"] = {
                "no_mask_seconds": 4,
                "compliance_below": 50,
                "compliance_window": 0.5,
                "compliance_min_people": 2,
                "compliance_cooldown": 60,
            }
            data["storage"].update(clip_before=2, clip_after=2)
            data.update(sinks)
        monitor = Monitor(parse_config(data)).start()
        monitor.wait()
        worker = monitor.workers[0]
        fps, frames_done, events = worker.state.mean_fps, worker.state.frames, worker.state.events
        cpu = worker.state.cpu_ms_per_frame
        summary = monitor.stop()
    return {
        "alerts": alerts,
        "fps": round(fps, 2),
        "loop_cpu_ms_per_frame": round(cpu, 3),
        "frames": frames_done,
        "events": events,
        "delivered": summary.delivered,
        "dropped": summary.dropped,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per setting (alternating)")
    parser.add_argument("--shared", default=str(REPO.parent / "shared"))
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    crops, labels = cast(Detector(detector="maskface"), Path(args.shared))
    frames = encode_script(crops)
    receiver = WebhookReceiver().start()
    broker = None
    sinks: dict = {
        "webhook": {"url": receiver.url},
        "command": {"argv": [sys.executable, "-c", "import sys; sys.stdin.read()"]},
    }
    with tempfile.TemporaryDirectory() as tmp:
        if mosquitto_binary():
            broker = Mosquitto(Path(tmp))
            sinks["mqtt"] = {"port": broker.port}
        runs = []
        for i in range(args.runs):
            for alerts in (False, True):
                result = one_run(frames, alerts, Path(tmp) / f"run{i}-{alerts}", sinks)
                print(json.dumps(result), flush=True)
                runs.append(result)
        if broker is not None:
            broker.close()
    receiver.stop()
    off = statistics.median(r["fps"] for r in runs if not r["alerts"])
    on = statistics.median(r["fps"] for r in runs if r["alerts"])
    cpu_off = statistics.median(r["loop_cpu_ms_per_frame"] for r in runs if not r["alerts"])
    cpu_on = statistics.median(r["loop_cpu_ms_per_frame"] for r in runs if r["alerts"])
    out = {
        "date": time.strftime("%Y-%m-%d"),
        "cpu_count": os.cpu_count(),
        "frames_per_run": len(frames),
        "sinks": sorted(sinks),
        "median_fps_alerts_off": off,
        "median_fps_alerts_on": on,
        "change_percent": round(100.0 * (on - off) / off, 2),
        "median_loop_cpu_ms_per_frame_off": cpu_off,
        "median_loop_cpu_ms_per_frame_on": cpu_on,
        "loop_cpu_change_percent": round(100.0 * (cpu_on - cpu_off) / cpu_off, 2),
        "runs": runs,
    }
    print(json.dumps({k: v for k, v in out.items() if k != "runs"}, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
