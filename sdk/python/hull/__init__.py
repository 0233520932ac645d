"""Python client for hulld, hull's sandbox service (standard library only).

    import hull
    client = hull.Client(token="...")             # /run/hull/hulld.sock
    r = client.run(["python3", "-c", "print(6*7)"], limits={"cpu_time": "2s"})
    print(r.verdict, r.stdout)

    with client.sandbox(isolation="container") as sb:
        sb.files.write("main.py", "print('hi')")
        print(sb.exec(["python3", "/tmp/main.py"]).stdout)

    admin.images.pull("localhost:5000/tools/python:3")       # an admin token
    client.run(["python3", "-V"], image="localhost:5000/tools/python:3")
"""
from .client import DEFAULT_SOCKET, Client, Files, Images, Sandbox
from .errors import (APIError, AuthError, BadRequest, Conflict, HullError, MethodNotAllowed,
                     NotFound, NotImplementedByServer, PayloadTooLarge, PermissionDenied,
                     RateLimited, RegistryError, ServerError, TransportError, Unavailable,
                     ValidationError)
from .models import VERDICTS, ImageInfo, NetworkInfo, Result, Run, RunFailed, SandboxInfo

__version__ = "0.1.0"

__all__ = [
    "Client", "Sandbox", "Files", "Images", "Result", "Run", "SandboxInfo", "ImageInfo",
    "NetworkInfo",
    "RunFailed", "VERDICTS",
    "DEFAULT_SOCKET", "HullError", "TransportError", "APIError", "BadRequest",
    "ValidationError", "AuthError", "PermissionDenied", "NotFound", "MethodNotAllowed",
    "Conflict", "PayloadTooLarge", "RateLimited", "ServerError", "NotImplementedByServer",
    "Unavailable", "RegistryError",
]
