"""API keys for the endpoints that are not public live data."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request, Security, status
from fastapi.security import APIKeyHeader

_header = APIKeyHeader(
    name="X-API-Key",
    auto_error=False,
    description="One of the keys configured in VATSIM_API_KEYS.",
)


def _configured_keys(request: Request) -> tuple[bytes, ...]:
    keys: tuple[bytes, ...] = getattr(request.app.state, "api_keys", ())
    return keys


def require_api_key(request: Request, key: Annotated[str | None, Security(_header)] = None) -> None:
    """401 unless ``X-API-Key`` matches a configured key (compared in constant time)."""
    keys = _configured_keys(request)
    if key:
        offered = key.encode()
        # Compare against every key so the time taken does not tell which one nearly matched.
        matched = False
        for candidate in keys:
            matched |= hmac.compare_digest(offered, candidate)
        if matched:
            return
    raise HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail="a valid X-API-Key header is required"
        + ("" if keys else " (no API keys are configured on this server)"),
        headers={"WWW-Authenticate": "ApiKey"},
    )


ApiKey = Depends(require_api_key)
