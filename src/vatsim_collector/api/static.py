"""Static bytes shipped with the package (the dashboard, the API docs), answered with a strong
ETag and ``no-cache``: browsers revalidate on each load (a 304 costs a round trip, not the
bytes), and an upgrade of the service is seen at once without versioned file names."""

from __future__ import annotations

import hashlib

from fastapi import Request, Response, status


def serve_static(request: Request, body: bytes, media_type: str, *, page_policy: str) -> Response:
    """``body`` as ``media_type``; an HTML page also gets ``page_policy`` as its CSP."""
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    headers = {"Cache-Control": "no-cache", "ETag": etag, "X-Content-Type-Options": "nosniff"}
    if media_type.startswith("text/html"):
        headers["Content-Security-Policy"] = page_policy
        headers["Referrer-Policy"] = "no-referrer"
    offered = request.headers.get("if-none-match", "")
    if etag in (tag.strip() for tag in offered.split(",")):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    return Response(content=body, media_type=media_type, headers=headers)
