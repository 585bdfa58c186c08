"""The dashboard: one HTML page and its assets, served from the package itself.

Only the names listed in ``ASSETS`` are ever read, so a request cannot reach any other file.
Assets are answered by ``api.static`` (a strong ETag, ``no-cache``).
"""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter, HTTPException, Request, Response, status

from vatsim_collector.api.static import serve_static

router = APIRouter(tags=["dashboard"], include_in_schema=False)

PAGE = "index.html"
ASSETS: dict[str, str] = {
    "dashboard.js": "text/javascript; charset=utf-8",
    "charts.js": "text/javascript; charset=utf-8",
    "map.js": "text/javascript; charset=utf-8",
    "format.js": "text/javascript; charset=utf-8",
    "api.js": "text/javascript; charset=utf-8",
    "airport.js": "text/javascript; charset=utf-8",
    "activity.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
HTML = "text/html; charset=utf-8"

# The page loads nothing but its own assets and its own API: the browser enforces it.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
    " connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def _read(name: str) -> bytes:
    resource = resources.files("vatsim_collector").joinpath("web", name)
    try:
        return resource.read_bytes()
    except OSError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such asset") from exc


def _serve(request: Request, name: str, media_type: str) -> Response:
    return serve_static(request, _read(name), media_type, page_policy=CONTENT_SECURITY_POLICY)


@router.get("/")
def dashboard(request: Request) -> Response:
    return _serve(request, PAGE, HTML)


@router.get("/static/{name}")
def asset(request: Request, name: str) -> Response:
    media_type = ASSETS.get(name)
    if media_type is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such asset")
    return _serve(request, name, media_type)
