"""The API token, checked before anything else: a refused client is answered before its upload is read.

A route dependency would run only after FastAPI has parsed (and spooled) the multipart body, so a
client without the token could still make the server read 20 MB; this ASGI middleware answers from
the request line and headers alone, for HTTP and WebSocket alike.
"""

from __future__ import annotations

import json
import secrets
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Receive, Scope, Send

PROTECTED_PREFIX = "/v1"
UNAUTHORIZED = "missing or wrong token"


def given_token(scope: Scope) -> bytes:
    """The token a request carries: ``Authorization: Bearer T``, ``X-Maskwatch-Token: T`` or ``?token=T`` (UTF-8)."""
    headers = {name.lower(): value for name, value in scope.get("headers") or []}
    auth = headers.get(b"authorization", b"")
    if auth[:7].lower() == b"bearer ":
        return auth[7:].strip()
    if b"x-maskwatch-token" in headers:
        return headers[b"x-maskwatch-token"]
    query = parse_qs(scope.get("query_string", b"").decode("utf-8", "replace"))
    return (query.get("token") or [""])[0].encode()


def route_path(scope: Scope) -> str:
    """The path the app routes on: without the prefix it is served under (``--root-path``, a ``Mount``)."""
    path, root = scope["path"], scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


class TokenMiddleware:
    """Refuse ``/v1`` and ``/metrics`` requests without the token: HTTP gets 401, a WebSocket is closed at the
    handshake (403)."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self.token is None
            or scope["type"] not in ("http", "websocket")
            or not (route_path(scope).startswith(PROTECTED_PREFIX) or route_path(scope) == "/metrics")
            or secrets.compare_digest(given_token(scope), self.token.encode())
        ):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await receive()  # the client's connect message; closing before accepting answers HTTP 403
            await send({"type": "websocket.close", "code": 1008, "reason": UNAUTHORIZED})
            return
        body = json.dumps({"detail": UNAUTHORIZED}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", b"Bearer"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
