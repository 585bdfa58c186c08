"""Removing secrets from text and structures before they are stored, logged or served.

``scrub_text`` replaces, in free text such as an exception message:

- the password of a URL's userinfo: ``postgresql+psycopg://user:pw@host`` → ``user:***@host``;
- the credential of an ``Authorization``/``Proxy-Authorization`` header (the scheme such as
  ``Bearer`` or ``Basic`` stays), a bare ``Bearer <token>``, and the whole value of a
  ``Cookie``/``Set-Cookie`` header;
- the value of ``key=value`` and ``key: value`` pairs (query strings, libpq DSNs, headers such
  as ``X-API-Key``, JSON and Python reprs) whose key names a secret: password, passwd, secret,
  token, api key, access/private key, credential, session id, dsn;
- JWT-looking tokens (three base64url segments, the first one base64url JSON).

``scrub_mapping`` walks dicts, lists, tuples and sets, replaces the value of every key that
names a secret (``SENSITIVE_KEY``) by ``"***"`` and scrubs every string; other objects become
their scrubbed ``str()``, so the result is safe to serialise as JSON.

Both are idempotent: scrubbing scrubbed data changes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime
from enum import Enum
from typing import Any

MASK = "***"

SENSITIVE_KEY = re.compile(
    r"password|passwd|secret|token|api[-_]?key|authorization|cookie|dsn|credential",
    re.IGNORECASE,
)

# Every pattern runs on the lower-cased text (case-insensitive regexes are several times
# slower: they defeat the engine's literal-prefix search) and has only capturing groups that
# span the secret itself; the matched group's span is masked in the original text.

# user:password@ in any scheme://; the password runs to the last "@" before the host.
_URL_USERINFO = re.compile(r"[a-z][a-z0-9+.\-]*://[^\s:/@?#]*:([^\s/?#]*)@")
_AUTH_HEADER = re.compile(
    r"\b(?:proxy-)?authorization[\"']?\s*[:=]\s*[\"']?"
    r"(?:(?:bearer|basic|digest|token|negotiate|apikey|dpop)\s+)?"
    r"([^\s\"',;]+)"
)
_BEARER = re.compile(r"\bbearer\s+([a-z0-9._~+/=\-]+)")
_COOKIE_HEADER = re.compile(r"\b(?:set-)?cookie[\"']?\s*[:=]\s*[\"']?([^\r\n\"']+)")
# The key is matched from its secret-naming part on ("db_password" matches at "password").
_KEY_VALUE = re.compile(
    r"(?:password|passwd|secret|token|api[-_]?key|access[-_]?key|private[-_]?key"
    r"|credential|session[-_]?id|dsn)"
    r"[\w.\-]*[\"']?\s*[:=]\s*"
    r"(?:\"((?:[^\"\\]|\\.)*)\"|'((?:[^'\\]|\\.)*)'|([^\s&;,'\"}\])]+))"
)
# A JWT's first segment is base64url JSON, so it starts with "eyJ" ('{"') or "eyA" ('{ ').
_JWT = re.compile(r"\b(ey[ja][a-z0-9_\-]{2,}\.[a-z0-9_\-]{2,}\.[a-z0-9_\-]*)")
# Words whose presence (in the lower-cased text) lets the key=value pattern match at all;
# one literal search is much cheaper than running that regex over text that cannot match.
_KEY_WORDS = re.compile("pass|secret|token|key|credential|session|dsn")
_ASCII_LOWER = {c: c + 32 for c in range(ord("A"), ord("Z") + 1)}


def _mask(text: str, lower: str, pattern: re.Pattern[str]) -> tuple[str, str]:
    """``text`` and ``lower`` with the secret group of each match of ``pattern`` masked."""
    out: list[str] = []
    last = 0
    for match in pattern.finditer(lower):
        start, end = match.span(match.lastindex or 0)
        out += (text[last:start], MASK)
        last = end
    if not out:
        return text, lower
    out.append(text[last:])
    masked = "".join(out)
    return masked, masked.lower() if masked.isascii() else masked.translate(_ASCII_LOWER)


def scrub_text(text: str) -> str:
    """``text`` with URL passwords, credentials, secret key=value pairs and JWTs masked."""
    # ASCII-only folding keeps every index of ``lower`` valid in ``text``.
    lower = text.lower() if text.isascii() else text.translate(_ASCII_LOWER)
    if "@" in lower and "://" in lower:
        text, lower = _mask(text, lower, _URL_USERINFO)
    if "authorization" in lower:
        text, lower = _mask(text, lower, _AUTH_HEADER)
    if "bearer" in lower:
        text, lower = _mask(text, lower, _BEARER)
    if "cookie" in lower:
        text, lower = _mask(text, lower, _COOKIE_HEADER)
    if _KEY_WORDS.search(lower):
        text, lower = _mask(text, lower, _KEY_VALUE)
    if "ey" in lower:
        text, lower = _mask(text, lower, _JWT)
    return text


_SENSITIVE_KEY_LOWER = re.compile(SENSITIVE_KEY.pattern)


_KEYS: dict[str, tuple[str, bool]] = {}


def _key(key: str) -> tuple[str, bool]:
    """A mapping key scrubbed, and whether its value is secret.

    Keys repeat, so the answer is cached, but only for keys that carried no secret.
    """
    known = _KEYS.get(key)
    if known is not None:
        return known
    name = scrub_text(key)
    known = (name, _SENSITIVE_KEY_LOWER.search(name.lower()) is not None)
    if name == key and len(_KEYS) < 4096:
        _KEYS[key] = known
    return known


def scrub_mapping(obj: Any) -> Any:
    """A JSON-safe copy of ``obj`` with secret-named keys masked and every string scrubbed."""
    kind = type(obj)
    if kind is str:
        return scrub_text(obj)
    if obj is None or kind is int or kind is float or kind is bool:
        return obj
    if kind is dict or isinstance(obj, Mapping):
        out: dict[str, Any] = {}
        for key, value in obj.items():
            name, secret = _key(key if type(key) is str else str(key))
            out[name] = MASK if secret else scrub_mapping(value)
        return out
    if isinstance(obj, Enum):
        return scrub_mapping(obj.value)
    if isinstance(obj, str):
        return scrub_text(str(obj))
    if isinstance(obj, int | float):
        return obj
    if isinstance(obj, tuple):
        return tuple(scrub_mapping(item) for item in obj)
    if isinstance(obj, list | set | frozenset):
        return [scrub_mapping(item) for item in obj]
    if isinstance(obj, datetime | date):
        return obj.isoformat()
    if isinstance(obj, bytes | bytearray):
        return f"<{len(obj)} bytes>"
    try:
        shown = str(obj)
    except Exception:
        shown = f"<unprintable {type(obj).__name__}>"
    return scrub_text(shown)
