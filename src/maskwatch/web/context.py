"""What every route of one app shares: the pipeline, the video jobs, the worker pool and the limits."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import HTTPException
from starlette.requests import HTTPConnection

from maskwatch.pipeline import Detector
from maskwatch.schemas import ModelOut
from maskwatch.web.jobs import JobStore


@dataclass
class WebContext:
    """One app's state (``app.state.context``); routes reach it through ``context(request)``."""

    detector: Detector
    jobs: JobStore
    pool: ThreadPoolExecutor
    model_info: ModelOut
    workers: int
    temp_root: Path
    max_upload_mb: float
    max_bytes: int
    max_pixels: int
    max_video_frames: int
    token_required: bool
    max_pending: int
    pending: int = 0

    async def in_pool(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run blocking work in the bounded pool; 503 when its queue is full."""
        if self.pending >= self.max_pending:
            raise HTTPException(503, "server busy: too many requests queued, retry shortly", {"Retry-After": "1"})
        self.pending += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)
        finally:
            self.pending -= 1


def context(connection: HTTPConnection) -> WebContext:
    """The app's ``WebContext``, for a request or a WebSocket."""
    return connection.app.state.context
