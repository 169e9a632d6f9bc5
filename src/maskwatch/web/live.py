"""The live-webcam WebSocket (``/v1/live``): JPEG frames in, one JSON ``DetectOut`` per frame out."""

from __future__ import annotations

import asyncio
import contextlib

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from maskwatch.errors import MaskwatchError
from maskwatch.inference.tracker import FaceTracker
from maskwatch.web.context import context
from maskwatch.web.work import detect_bytes

router = APIRouter()


@router.websocket("/v1/live")
async def live(websocket: WebSocket) -> None:
    """Live webcam: the client sends JPEG frames (binary), gets one JSON ``DetectOut`` per frame.

    Send the next frame after the answer to the previous one arrives. Bad frames get
    ``{"error": "..."}`` and the connection stays open. Each connection tracks its own faces.
    """
    unknown = sorted(set(websocket.query_params) - {"token"})
    if unknown:  # refused at the handshake (HTTP 403), as the REST endpoints refuse them (422)
        await websocket.close(code=1008, reason=f"unknown query parameter {unknown[0]!r}")
        return
    ctx = context(websocket)
    await websocket.accept()
    tracker = FaceTracker(ctx.detector.classes)
    index = 0
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            data = message.get("bytes")
            if data is None:
                await websocket.send_json({"error": "send each frame as a binary message (JPEG or PNG), not text"})
                continue
            if len(data) > ctx.max_bytes:
                await websocket.send_json({"error": f"frame of {len(data)} bytes is over the upload limit"})
                continue
            try:
                out = await asyncio.get_running_loop().run_in_executor(
                    ctx.pool,
                    lambda d=data, i=index: detect_bytes(ctx.detector, d, "webcam", ctx.max_pixels, False, tracker, i),
                )
            except MaskwatchError as exc:
                await websocket.send_json({"error": str(exc)})
                continue
            index += 1
            await websocket.send_text(out.model_dump_json())  # the same keys as /v1/detect and the CLI
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        with contextlib.suppress(RuntimeError):
            await websocket.close()
