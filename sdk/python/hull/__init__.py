"""Python client for hulld, hull's sandbox service (standard library only).

    import hull
    client = hull.Client(token="...")             # /run/hull/hulld.sock
    r = client.run(["python3", "-c", "print(6*7)"], limits={"cpu_time": "2s"})
    print(r.verdict, r.stdout)

    with client.sandbox(isolation="container") as sb:
        sb.files.write("main.py", "print('hi')")
        print(sb.exec(["python3", "/tmp/main.py"]).stdout)
"""
from .client import DEFAULT_SOCKET, Client, Files, Sandbox
from .errors import (APIError, AuthError, BadRequest, Conflict, HullError, MethodNotAllowed,
                     NotFound, NotImplementedByServer, PayloadTooLarge, PermissionDenied,
                     RateLimited, ServerError, TransportError, Unavailable, ValidationError)
from .models import VERDICTS, Result, Run, RunFailed, SandboxInfo

__version__ = "0.1.0"

__all__ = [
    "Client", "Sandbox", "Files", "Result", "Run", "SandboxInfo", "RunFailed", "VERDICTS",
    "DEFAULT_SOCKET", "HullError", "TransportError", "APIError", "BadRequest",
    "ValidationError", "AuthError", "PermissionDenied", "NotFound", "MethodNotAllowed",
    "Conflict", "PayloadTooLarge", "RateLimited", "ServerError", "NotImplementedByServer",
    "Unavailable",
]
