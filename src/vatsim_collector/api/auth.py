"""API keys with roles, and who may call what.

Keys come from ``VATSIM_API_KEYS`` as ``role:key`` entries, role ``read`` or ``admin`` (admin
may do everything read may); a bare key is an admin key. A key is sent as ``X-API-Key: <key>``
or ``Authorization: Bearer <key>``; when both are sent, X-API-Key is the one checked.

``AdminAccess`` guards whatever changes state or exposes operational detail, ``ReadAccess`` the
database service figures. Public data needs no dependency: with ``public_read`` off,
``PublicReadGate`` asks every request for a key of either role, static files included, except
``/health`` (load balancers) and the API docs.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Collection, Iterable, Mapping
from enum import StrEnum
from typing import Annotated, Any, NamedTuple

from fastapi import Request, Security, status
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from vatsim_collector.api.problems import FORBIDDEN, UNAUTHORIZED, ProblemError, problem_response


class Role(StrEnum):
    READ = "read"
    ADMIN = "admin"


class ApiKeyEntry(NamedTuple):
    role: str
    key: str

    def __repr__(self) -> str:
        return f"ApiKeyEntry(role={self.role!r}, key='**********')"


class KeyMatch(NamedTuple):
    position: int  # among the configured keys: a rate-limit identity that is no secret
    role: Role


class KeyRing:
    """The configured keys, kept only as SHA-256 digests.

    Equal-length digests let ``hmac.compare_digest`` hide even the key's length, and every
    key is compared so the time taken does not tell which one nearly matched.
    """

    def __init__(self, entries: Iterable[str | tuple[str, str]] = ()) -> None:
        digests: dict[bytes, Role] = {}
        for entry in entries:
            role_name, key = ("admin", entry) if isinstance(entry, str) else entry
            try:
                role = Role(role_name.strip().lower())
            except ValueError:
                raise ValueError("unknown API key role; use read or admin") from None
            if not key:
                raise ValueError("an API key is empty")
            digest = _digest(key)
            if digests.setdefault(digest, role) is not role:
                raise ValueError("one API key is configured with two roles")
        self._digests = tuple(digests.items())

    @property
    def configured(self) -> bool:
        return bool(self._digests)

    def match(self, offered: str | None) -> KeyMatch | None:
        if not offered:
            return None
        digest = _digest(offered)
        found: KeyMatch | None = None
        for index, (candidate, role) in enumerate(self._digests):
            if hmac.compare_digest(digest, candidate) and found is None:
                found = KeyMatch(index, role)
        return found

    def __repr__(self) -> str:
        return f"KeyRing({len(self._digests)} keys)"


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def offered_key(headers: Headers) -> str | None:
    """The key a request carries: X-API-Key, else an ``Authorization: Bearer`` token."""
    key = headers.get("x-api-key", "").strip()
    if key:
        return key
    scheme, _, token = headers.get("authorization", "").strip().partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


def key_ring(request: Request) -> KeyRing:
    """The app's keys (``create_app`` stores them); none for an app built without any."""
    ring = getattr(request.app.state, "key_ring", None)
    return ring if isinstance(ring, KeyRing) else KeyRing()


UNAUTHORIZED_HEADERS: Mapping[str, str] = {"WWW-Authenticate": "Bearer"}


def unauthorized_detail(ring: KeyRing) -> str:
    detail = "a valid API key is required: send X-API-Key: <key> or Authorization: Bearer <key>"
    if not ring.configured:
        detail += " (no API keys are configured on this server)"
    return detail


def _unauthorized(ring: KeyRing) -> ProblemError:
    return ProblemError(
        status.HTTP_401_UNAUTHORIZED,
        unauthorized_detail(ring),
        kind=UNAUTHORIZED,
        headers=UNAUTHORIZED_HEADERS,
    )


_header = APIKeyHeader(
    name="X-API-Key",
    scheme_name="APIKeyHeader",
    auto_error=False,
    description="A key from VATSIM_API_KEYS.",
)
_bearer = HTTPBearer(
    scheme_name="HTTPBearer",
    auto_error=False,
    description="A key from VATSIM_API_KEYS as a bearer token (instead of X-API-Key).",
)

# Declared so OpenAPI lists both ways of sending a key; the key is read by offered_key, which
# the ASGI middleware shares, so both always agree on which header counts.
_HeaderKey = Annotated[str | None, Security(_header)]
_BearerKey = Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)]


def security_schemes() -> dict[str, Any]:
    """The OpenAPI security schemes the dependencies declare, by name."""
    return {
        scheme.scheme_name: scheme.model.model_dump(mode="json", by_alias=True, exclude_none=True)
        for scheme in (_header, _bearer)
    }


def read_security() -> list[dict[str, list[str]]]:
    """An OpenAPI security requirement for a read key sent either way."""
    return [{name: [Role.READ.value]} for name in (_header.scheme_name, _bearer.scheme_name)]


def require_read(request: Request, _key: _HeaderKey = None, _token: _BearerKey = None) -> Role:
    """401 unless the request carries a configured key (of either role)."""
    ring = key_ring(request)
    found = ring.match(offered_key(request.headers))
    if found is None:
        raise _unauthorized(ring)
    return found.role


def require_admin(request: Request, _key: _HeaderKey = None, _token: _BearerKey = None) -> Role:
    """401 without a configured key, 403 with a read key."""
    role = require_read(request)
    if role is not Role.ADMIN:
        raise ProblemError(
            status.HTTP_403_FORBIDDEN,
            "this endpoint needs a key with the admin role; the key sent has the read role",
            kind=FORBIDDEN,
        )
    return role


# The scopes become role names in the operations' OpenAPI security requirements.
ReadAccess = Security(require_read, scopes=[Role.READ.value])
AdminAccess = Security(require_admin, scopes=[Role.ADMIN.value])
ApiKey = AdminAccess  # the name before roles existed


class PublicReadGate:
    """Pure ASGI: with public data closed, 401 for any request without a configured key."""

    def __init__(self, app: ASGIApp, *, ring: KeyRing, always_open: Collection[str]) -> None:
        self.app = app
        self.ring = ring
        self.always_open = frozenset(always_open)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["path"] not in self.always_open
            and self.ring.match(offered_key(Headers(scope=scope))) is None
        ):
            response = problem_response(
                status.HTTP_401_UNAUTHORIZED,
                unauthorized_detail(self.ring),
                instance=scope["path"],
                kind=UNAUTHORIZED,
                headers=UNAUTHORIZED_HEADERS,
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
