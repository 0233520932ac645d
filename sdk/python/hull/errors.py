"""Exceptions for the hulld API's errors.

Every error hulld returns has one body, ``{"error": {"code", "message",
"field"?}}``, with its HTTP status (docs/api.md). Each status maps to one
class here, so callers catch what they can handle::

    try:
        client.run(["python3", "x.py"], limits={"memory": "12X"})
    except hull.ValidationError as e:
        print(e.field)          # "limits.memory"
    except hull.RateLimited as e:
        time.sleep(e.retry_after)
"""


class HullError(Exception):
    """Base of every error the SDK raises."""


class TransportError(HullError):
    """hulld could not be reached, or its answer was not HTTP/JSON."""


class APIError(HullError):
    """hulld answered with an error status."""

    def __init__(self, status, code=None, message=None, field=None, body=None, headers=None,
                 permission=None):
        self.status = status
        self.code = code
        self.permission = permission  # 403: the grant the token lacks ("host-network")
        self.message = message or f"HTTP {status}"
        self.field = field
        self.body = body
        self.headers = dict(headers or {})
        super().__init__(f"{status} {code or ''}: {self.message}".replace("  ", " "))


class BadRequest(APIError):
    """400: the body is not JSON, or a field is wrong."""


class ValidationError(BadRequest):
    """400 invalid_request: ``field`` is the JSON path of the offending value."""


class AuthError(APIError):
    """401: no token, or an unknown or revoked one."""


class PermissionDenied(APIError):
    """403: the token's role may not do this (a reader writing)."""


class NotFound(APIError):
    """404: no such route, or an id this tenant does not own."""


class MethodNotAllowed(APIError):
    """405: the route exists, the method does not."""


class Conflict(APIError):
    """409: the object's state does not allow it (cancel a finished run)."""


class PayloadTooLarge(APIError):
    """413: the body is over a limit: hulld's --max-body, or the sandbox's
    own disk (``limit`` names it: "limits.tmp_size", "max_body", ...)."""

    @property
    def limit(self):
        return self.field


class RateLimited(APIError):
    """429: every run slot busy and the queue full, or the tenant at its
    quota. ``retry_after`` is the server's Retry-After in seconds."""

    def __init__(self, *args, retry_after=None, **kw):
        super().__init__(*args, **kw)
        self.retry_after = retry_after


class ServerError(APIError):
    """5xx."""


class NotImplementedByServer(ServerError):
    """501: e.g. isolation microvm, or a queued run without --redis."""


class Unavailable(ServerError):
    """503: hulld is shutting down."""


class RegistryError(ServerError):
    """502/504: an image pull failed at the registry (unreachable, refused,
    a bad answer) or took longer than hulld's --pull-timeout."""


class NotReady(ServerError):
    """504 not_ready: a sandbox made from a template was destroyed because
    the template's ready_cmd did not exit 0 within its ready_timeout."""


_BY_STATUS = {
    401: AuthError,
    403: PermissionDenied,
    404: NotFound,
    405: MethodNotAllowed,
    409: Conflict,
    413: PayloadTooLarge,
    429: RateLimited,
    501: NotImplementedByServer,
    502: RegistryError,
    503: Unavailable,
    504: RegistryError,
}


def _retry_after(headers):
    for k, v in headers.items():
        if k.lower() == "retry-after":
            try:
                return float(v)
            except ValueError:
                return None
    return None


# An error line in an NDJSON stream carries the error body but no status
# (the 200 went out first): its code says which class it is.
_BY_CODE = {
    "invalid_json": 400, "invalid_request": 400, "unauthorized": 401, "forbidden": 403,
    "not_found": 404, "method_not_allowed": 405, "conflict": 409, "lost": 409,
    "no_capacity": 409, "node_down": 409, "payload_too_large": 413, "uri_too_long": 414,
    "queue_full": 429, "quota_exceeded": 429, "too_many_pulls": 429,
    "headers_too_large": 431, "internal": 500, "not_implemented": 501,
    "registry_error": 502, "shutting_down": 503, "store_unavailable": 503,
    "queue_unavailable": 503, "cluster_unavailable": 503, "busy": 503,
    "registry_timeout": 504, "not_ready": 504, "insufficient_storage": 507,
}


def from_stream_error(err):
    """The exception for ``{"type": "error", "error": {...}}`` in a stream."""
    err = err if isinstance(err, dict) else {"message": str(err)}
    status = _BY_CODE.get(err.get("code"), 500)
    import json
    return from_response(status, json.dumps({"error": err}).encode("utf-8"), {})


def from_response(status, body, headers):
    """The exception for an error answer (status >= 400)."""
    code = message = field = permission = None
    doc = None
    try:
        import json
        doc = json.loads(body.decode("utf-8") if isinstance(body, bytes) else body)
    except (ValueError, UnicodeDecodeError):
        pass
    if isinstance(doc, dict):
        err = doc.get("error")
        if isinstance(err, dict):
            code, message, field = err.get("code"), err.get("message"), err.get("field")
            permission = err.get("permission")
        elif isinstance(err, str):
            message = err
    if message is None and body:
        message = body.decode("utf-8", "replace")[:500] if isinstance(body, bytes) else body
    kw = dict(code=code, message=message, field=field, body=body, headers=headers,
              permission=permission)
    if status == 400:
        cls = ValidationError if (field or code == "invalid_request") else BadRequest
    elif status == 429:
        return RateLimited(status, retry_after=_retry_after(headers), **kw)
    else:
        cls = NotReady if code == "not_ready" else _BY_STATUS.get(status)
        if cls is None:
            cls = ServerError if status >= 500 else APIError
    return cls(status, **kw)
