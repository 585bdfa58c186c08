"""Trailing-slash redirects with a relative ``Location``, never built from the request's Host.

Starlette's own slash redirect writes an absolute URL from the ``Host`` header, so a request
for ``/api/errors/analytics/`` with ``Host: evil.example`` was sent to ``http://evil.example``;
a cache or a link in front of the API could hand that on. A relative reference is resolved by
the client against the URL it actually asked for, which no header can change.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.responses import RedirectResponse
from starlette.routing import Match, Router
from starlette.types import Receive, Scope, Send


def install_relative_slash_redirects(app: FastAPI) -> None:
    """Replace the router's slash redirect with one that answers with a path, not a URL."""
    router = app.router
    router.redirect_slashes = False
    not_found = router.default

    async def redirect_or_not_found(scope: Scope, receive: Receive, send: Send) -> None:
        target = slash_twin(router, scope)
        if target is None:
            await not_found(scope, receive, send)
            return
        await RedirectResponse(target)(scope, receive, send)

    router.default = redirect_or_not_found


def slash_twin(router: Router, scope: Scope) -> str | None:
    """The same path with its trailing slash toggled, as a relative reference, if it is routed.

    None when there is nothing to redirect to, and for a target that a browser would read as
    another host (``//host`` or ``/\\host``): such a path is never routed here anyway.
    """
    if scope["type"] != "http":
        return None
    path: str = scope["path"]
    if path.rstrip("/") == "":
        return None
    twin = path.rstrip("/") if path.endswith("/") else path + "/"
    if not any(
        route.matches({**scope, "path": twin})[0] is not Match.NONE for route in router.routes
    ):
        return None
    raw: bytes = scope.get("raw_path") or path.encode()
    raw_twin = raw.rstrip(b"/") if raw.endswith(b"/") else raw + b"/"
    location = raw_twin.decode("latin-1")
    if not location.startswith("/") or location[1:2] in ("/", "\\"):
        return None
    query: bytes = scope.get("query_string", b"")
    return f"{location}?{query.decode('latin-1')}" if query else location
