"""The interactive API docs (Swagger UI), served from installed packages, never from a CDN.

Off unless ``api_docs`` is set: the schema at ``/openapi.json`` is always there for tools. When
on, the page, Swagger UI's script and style (from the pinned ``swagger-ui-bundle`` package) and
a small start-up script are all served here, so the page's Content-Security-Policy can allow
scripts from this origin only. FastAPI's own ``/docs`` and ``/redoc`` load from a CDN and are
never enabled; ReDoc has no packaged build and is not offered.
"""

from __future__ import annotations

import functools
import importlib.util
from importlib import resources

from fastapi import APIRouter, FastAPI, HTTPException, Request, Response, status

from vatsim_collector.api.static import serve_static

DOCS_PATH = "/docs"
BUNDLE_PACKAGE = "swagger_ui_bundle"
# The folder inside the pinned swagger-ui-bundle release (1.1.0) that holds Swagger UI's build.
BUNDLE_FOLDER = "vendor/swagger-ui-4.15.5"
VENDORED: dict[str, str] = {
    "swagger-ui.css": "text/css; charset=utf-8",
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
}
START_SCRIPT = "init.js"
ASSET_PATHS = (
    DOCS_PATH,
    *(f"{DOCS_PATH}/{name}" for name in (*VENDORED, START_SCRIPT)),
)

# Scripts from here only. Swagger UI sets element styles from script, hence 'unsafe-inline'
# for styles (never for scripts); its icons are data: images.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline';"
    " img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none';"
    " frame-ancestors 'none'"
)

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>vatsim-collector API</title>
<link rel="stylesheet" href="{docs}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui" data-openapi="{openapi}"></div>
<script src="{docs}/swagger-ui-bundle.js"></script>
<script src="{docs}/init.js"></script>
</body>
</html>
"""

# No URL or configuration is taken from the page's query string, and no validator badge is
# fetched from outside.
INIT = """"use strict";
(function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.getAttribute("data-openapi"),
    domNode: root,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    deepLinking: true,
    queryConfigEnabled: false,
    validatorUrl: null
  });
})();
"""


def docs_available() -> bool:
    return importlib.util.find_spec(BUNDLE_PACKAGE) is not None


def install_docs(app: FastAPI) -> None:
    """Serve the docs on ``app``; refuses to start without the package rather than use a CDN."""
    if not docs_available():
        raise RuntimeError(
            "api_docs needs the swagger-ui-bundle package; install it or turn api_docs off"
        )
    app.include_router(router)


router = APIRouter(tags=["docs"], include_in_schema=False)


@functools.cache  # two files, a megabyte together: read once
def _vendored(name: str) -> bytes:
    return resources.files(BUNDLE_PACKAGE).joinpath(BUNDLE_FOLDER, name).read_bytes()


def _serve(request: Request, body: bytes, media_type: str) -> Response:
    return serve_static(request, body, media_type, page_policy=CONTENT_SECURITY_POLICY)


@router.get(DOCS_PATH)
def docs_page(request: Request) -> Response:
    root = request.scope.get("root_path", "")
    openapi = request.app.openapi_url or "/openapi.json"
    body = PAGE.format(docs=root + DOCS_PATH, openapi=root + openapi).encode()
    return _serve(request, body, "text/html; charset=utf-8")


@router.get(DOCS_PATH + "/{name}")
def docs_asset(request: Request, name: str) -> Response:
    if name == START_SCRIPT:
        return _serve(request, INIT.encode(), "text/javascript; charset=utf-8")
    media_type = VENDORED.get(name)
    if media_type is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such asset")
    return _serve(request, _vendored(name), media_type)
