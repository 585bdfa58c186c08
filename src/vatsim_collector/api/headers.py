"""Response headers every answer carries: no MIME sniffing, and no caching of keyed answers.

``nosniff`` on every response, so a browser never runs a JSON body (which can echo a path) as
a script or a page. ``Cache-Control: no-store`` whenever the request carried credentials or the
answer is a 401/403: what a key unlocked must not be kept by a browser or a shared cache, whose
cache key knows nothing of ``X-API-Key``.
"""

from __future__ import annotations

from fastapi import status
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CREDENTIAL_HEADERS = ("x-api-key", "authorization")
REFUSED = (status.HTTP_401_UNAUTHORIZED, status.HTTP_403_FORBIDDEN)


class SecurityHeaders:
    """Pure ASGI (streaming responses pass through untouched); install it outermost."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_headers = Headers(scope=scope)
        keyed = any(name in request_headers for name in CREDENTIAL_HEADERS)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["X-Content-Type-Options"] = "nosniff"
                if keyed or message["status"] in REFUSED:
                    headers["Cache-Control"] = "no-store"
            await send(message)

        await self.app(scope, receive, send_with_headers)
