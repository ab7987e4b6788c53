"""Exceptions of the recloop client.

Every error the server answers carries the body {"error": {"code": ..., "message": ...}}; the
client raises it as a RecloopError whose class follows the HTTP status, so callers can catch
what they handle (NotFound, RateLimited, ...) and let the rest through.
"""
from __future__ import annotations

import json
from typing import Dict, Optional, Type


class RecloopError(Exception):
    """An error answered by the server (status is its HTTP status), or a transport failure
    (status None, see RecloopConnectionError)."""

    def __init__(self, status: Optional[int], code: str, message: str,
                 retry_after: Optional[float] = None):
        super().__init__(f"{status} {code}: {message}" if status else f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        # Seconds the server asked the client to wait (Retry-After), if it named any.
        self.retry_after = retry_after


class BadRequest(RecloopError):
    """400 (a bad or unknown parameter, a bad body, a request over a cap), 411, 413, 415, 431."""


class Unauthorized(RecloopError):
    """401: the route needs `Authorization: Bearer <key>` and none, or an unknown one, was given."""


class Forbidden(RecloopError):
    """403: the key lacks the route's scope, or admin routes on a server without a key."""


class NotFound(RecloopError):
    """404: an unknown item or route, or a feature the server was started without."""


class MethodNotAllowed(RecloopError):
    """405."""


class Conflict(RecloopError):
    """409: a retrain already runs, or there is no version to roll back to."""


class RateLimited(RecloopError):
    """429: over a rate limit; retry_after says when to come back."""


class ServerError(RecloopError):
    """5xx."""


class Unavailable(ServerError):
    """503: no model loaded yet, the server overloaded with feedback (nothing stored), the event
    store unavailable, or past the connection limit."""


class RecloopConnectionError(RecloopError):
    """The server could not be reached, or the connection broke or timed out before an answer
    (after the client's retries, for requests it retries)."""

    def __init__(self, message: str):
        super().__init__(None, "connection", message)


_BY_STATUS: Dict[int, Type[RecloopError]] = {
    400: BadRequest, 411: BadRequest, 413: BadRequest, 415: BadRequest, 431: BadRequest,
    401: Unauthorized, 403: Forbidden, 404: NotFound, 405: MethodNotAllowed, 409: Conflict,
    429: RateLimited, 503: Unavailable,
}


def parse_retry_after(value: Optional[str]) -> Optional[float]:
    """Seconds of a Retry-After header (the server sends whole seconds), or None."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None  # an HTTP date: the server never sends one
    return seconds if seconds >= 0 else None


def error_from_response(status: int, body: bytes,
                        retry_after: Optional[str] = None) -> RecloopError:
    """The exception for an error answer: its class from `status`, code and message from the
    server's {"error":{"code","message"}} body (or the raw body if it is not that shape)."""
    code, message = "http_%d" % status, ""
    try:
        error = json.loads(body.decode("utf-8"))["error"]
        code, message = str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        message = body.decode("utf-8", "replace")[:500]
    cls = _BY_STATUS.get(status)
    if cls is None:
        cls = ServerError if status >= 500 else RecloopError
    return cls(status, code, message, parse_retry_after(retry_after))
