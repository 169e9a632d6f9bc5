"""``maskwatch serve``: the web page and REST API on Uvicorn (localhost unless told otherwise)."""

from __future__ import annotations

import os
import socket

import typer

from maskwatch.cli.app import app, console_err, say_warning
from maskwatch.cli.options import Conf, FaceDetectorName, HeadWeight, MinFace, Model, pipeline_settings
from maskwatch.settings import DEFAULT_CONF, DEFAULT_HEAD_WEIGHT, DEFAULT_MIN_FACE


def check_port_free(host: str, port: int) -> int:
    """The port to serve on (port 0: a free one the system picks), or a one-line ``InputError`` when the address
    cannot be bound, instead of Uvicorn's log and exit."""
    from maskwatch.errors import InputError

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise InputError(f"cannot listen on {host}:{port} ({exc.strerror or exc})") from None
        return sock.getsockname()[1]


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind; 0.0.0.0 exposes the server to the network."),
    port: int = typer.Option(8000, "--port", min=0, max=65535, help="TCP port (0: any free port, printed at start)."),
    model: Model = None,
    token: str = typer.Option(
        None, "--token", envvar="MASKWATCH_TOKEN", help="Require this token on /v1 calls (env MASKWATCH_TOKEN)."
    ),
    max_upload_mb: float = typer.Option(20.0, "--max-upload-mb", min=0.01, help="Largest upload accepted (413 above)."),
    workers: int = typer.Option(None, "--workers", min=1, max=64, help="Inference threads [min(4, CPU cores)]."),
    max_video_frames: int = typer.Option(3000, "--max-video-frames", min=1, help="Longest video accepted, in frames."),
    detector: FaceDetectorName = None,
    conf: Conf = DEFAULT_CONF,
    min_face: MinFace = DEFAULT_MIN_FACE,
    head_weight: HeadWeight = DEFAULT_HEAD_WEIGHT,
    watch: str = typer.Option(
        None, "--watch", help="Also watch the cameras of this watch file (TOML); dashboard at /dashboard, /metrics."
    ),
    blur_faces: bool = typer.Option(False, "--blur-faces", help="With --watch: blur faces in views and snapshots."),
) -> None:
    """Serve the web page (upload, live webcam) and the REST API (/v1/detect, /docs)."""
    import uvicorn

    from maskwatch.web import create_app

    monitor = None
    if watch is not None:
        from maskwatch.cli.detect import setup_logging
        from maskwatch.monitor.config import load_config
        from maskwatch.monitor.watch import Monitor

        setup_logging()
        monitor = Monitor(load_config(watch, blur_faces=blur_faces))  # a bad file fails here, before listening
    port = check_port_free(host, port)
    web = create_app(
        pipeline_settings(model, detector, conf, min_face, head_weight),
        token=token or None,
        max_upload_mb=max_upload_mb,
        workers=workers,
        max_video_frames=max_video_frames,
        monitor=monitor,
    )
    shown = f"[{host}]" if ":" in host else host
    console_err.print(f"maskwatch serving on http://{shown}:{port}  (API docs: /docs; Ctrl-C stops)", highlight=False)
    if monitor is not None:
        console_err.print(f"dashboard: http://{shown}:{port}/dashboard  metrics: /metrics", highlight=False)
    if host not in ("127.0.0.1", "localhost", "::1") and not token:
        say_warning("listening beyond localhost without --token")
    # WebSocket messages up to the upload limit (plus room) reach the app, which answers an over-limit frame
    # with an error and keeps the connection; Uvicorn's own 16 MiB default would close it first.
    ws_max_size = int(max_upload_mb * 1024 * 1024) + (1 << 20)
    uvicorn.run(
        web, host=host, port=port, log_level=os.environ.get("MASKWATCH_LOG_LEVEL", "warning"), ws_max_size=ws_max_size
    )
