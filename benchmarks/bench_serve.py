"""Load benchmark of ``maskwatch serve``: N concurrent clients POSTing a face photo to /v1/detect.

Starts the real server (``python -m maskwatch serve``) on a free localhost port, runs
``--clients`` concurrent clients for ``--seconds`` (after a short warm-up), and reports
requests/s, p50/p95/max latency, error count and the server's peak RSS (VmHWM).

    python benchmarks/bench_serve.py --clients 16 --seconds 20 --out benchmarks/results/serve.json

The model is ``--model``, else ``$MASKWATCH_MODEL``, else the packaged default bundle.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import cv2
import httpx

REPO = Path(__file__).resolve().parents[1]


def face_jpeg() -> bytes:
    """A 640×480 webcam-like JPEG with one face: scikit-image's astronaut, else the packaged sample."""
    try:
        from skimage import data

        photo = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    except ImportError:
        from importlib import resources

        photo = cv2.imread(str(resources.files("maskwatch.assets") / "astronaut.jpg"))
    frame = cv2.copyMakeBorder(cv2.resize(photo, (480, 480)), 0, 0, 80, 80, cv2.BORDER_CONSTANT, value=(90, 90, 90))
    ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 85])
    assert ok
    return buf.tobytes()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def peak_rss_mb(pid: int) -> float | None:
    """Peak resident memory (VmHWM) of a process, Linux only."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


async def load(base: str, body: bytes, clients: int, seconds: float, warmup: float) -> dict:
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    files = {"file": ("frame.jpg", body, "image/jpeg")}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:
        start = time.perf_counter()
        measure_from = start + warmup
        stop = measure_from + seconds

        async def one_client() -> None:
            while True:
                t0 = time.perf_counter()
                if t0 >= stop:
                    return
                try:
                    response = await client.post("/v1/detect", files=files)
                    status = str(response.status_code)
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                t1 = time.perf_counter()
                if t0 >= measure_from and t1 <= stop:
                    statuses[status] = statuses.get(status, 0) + 1
                    if status == "200":
                        latencies.append(t1 - t0)

        await asyncio.gather(*(one_client() for _ in range(clients)))
    ok = len(latencies)
    return {
        "requests_ok": ok,
        "statuses": statuses,
        "errors": sum(n for s, n in statuses.items() if s != "200"),
        "requests_per_s": round(ok / seconds, 2),
        "latency_ms": {
            "p50": round(percentile(latencies, 50) * 1000, 1),
            "p95": round(percentile(latencies, 95) * 1000, 1),
            "max": round(max(latencies) * 1000, 1) if latencies else None,
            "mean": round(statistics.fmean(latencies) * 1000, 1) if latencies else None,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=20.0, help="measured duration")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--workers", type=int, default=None, help="server inference threads [server default]")
    parser.add_argument("--model", default=None)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "serve.json")
    args = parser.parse_args()

    port = free_port()
    command = [sys.executable, "-m", "maskwatch", "serve", "--port", str(port)]
    if args.workers:
        command += ["--workers", str(args.workers)]
    if args.model:
        command += ["--model", args.model]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if server.poll() is not None:
                sys.exit(f"maskwatch serve did not start: {server.stderr.read().strip()}")
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                sys.exit("maskwatch serve did not answer /healthz within 60 s")
            time.sleep(0.2)
        health = httpx.get(f"{base}/healthz").json()
        model = httpx.get(f"{base}/v1/model").json()
        rss_idle = peak_rss_mb(server.pid)
        body = face_jpeg()
        result = asyncio.run(load(base, body, args.clients, args.seconds, args.warmup))
        rss_peak = peak_rss_mb(server.pid)
    finally:
        server.terminate()
        server.communicate(timeout=30)

    from maskwatch.evaluation.bench import machine_info

    report = {
        "benchmark": "maskwatch serve: concurrent POST /v1/detect on localhost",
        "clients": args.clients,
        "seconds": args.seconds,
        "warmup_seconds": args.warmup,
        "server_workers": health["workers"],
        "image": "640x480 JPEG, one face (scikit-image astronaut)",
        "image_bytes": len(body),
        **result,
        "server_peak_rss_mb": rss_peak,
        "server_rss_after_start_mb": rss_idle,
        "model": {k: model[k] for k in ("source", "classes", "backbone", "detector")},
        "machine": machine_info(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    lat = result["latency_ms"]
    print(
        f"{args.clients} clients, {args.seconds:g}s: {result['requests_per_s']} req/s, "
        f"p50 {lat['p50']} ms, p95 {lat['p95']} ms, errors {result['errors']}, "
        f"server peak RSS {rss_peak} MB → {args.out}"
    )


if __name__ == "__main__":
    main()
