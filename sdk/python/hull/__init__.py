"""Python client for hulld, hull's sandbox service (standard library only).

    import hull
    client = hull.Client(token="...")             # /run/hull/hulld.sock
    r = client.run(["python3", "-c", "print(6*7)"], limits={"cpu_time": "2s"})
    print(r.verdict, r.stdout)

    with client.sandbox(isolation="container", metadata={"job": "a"}) as sb:
        sb.files.write("/work/main.py", "print('hi')")
        print(sb.exec(["python3", "/work/main.py"], on_stdout=print).verdict)
        p = sb.start(["python3", "-u", "-i"], stdin=True)
        p.send_stdin("print(6*7)\n"); p.close_stdin()
        for chunk in p: print(chunk.stream, chunk.data)

    async with hull.AsyncClient(token="...") as ac:   # the same, as coroutines
        async with ac.sandbox() as sb: await sb.exec("true")

    admin.images.pull("localhost:5000/tools/python:3")       # an admin token
    client.run(["python3", "-V"], image="localhost:5000/tools/python:3")
"""
from .aio import AsyncClient, AsyncFiles, AsyncProcess, AsyncSandbox, AsyncWatch
from .client import DEFAULT_SOCKET, Client, Images
from .sandbox import Files, Process, Sandbox, Watch
from .errors import (APIError, AuthError, BadRequest, Conflict, HullError, MethodNotAllowed,
                     NotFound, NotImplementedByServer, NotReady, PayloadTooLarge, PermissionDenied,
                     RateLimited, RegistryError, ServerError, TransportError, Unavailable,
                     ValidationError)
from .models import (VERDICTS, Chunk, FileEntry, ImageInfo, MetricsSample, NetworkInfo,
                     ProcessInfo, Result, Run, RunFailed, SandboxInfo, TemplateInfo, WatchEvent)

__version__ = "0.2.0"

__all__ = [
    "Client", "Sandbox", "Files", "Images", "Result", "Run", "SandboxInfo", "ImageInfo",
    "NetworkInfo", "Process", "Watch", "Chunk", "ProcessInfo", "FileEntry", "WatchEvent",
    "MetricsSample",
    "AsyncClient", "AsyncSandbox", "AsyncFiles", "AsyncProcess", "AsyncWatch",
    "RunFailed", "VERDICTS", "TemplateInfo",
    "DEFAULT_SOCKET", "HullError", "TransportError", "APIError", "BadRequest",
    "ValidationError", "AuthError", "PermissionDenied", "NotFound", "MethodNotAllowed",
    "Conflict", "PayloadTooLarge", "RateLimited", "ServerError", "NotImplementedByServer",
    "Unavailable", "RegistryError", "NotReady",
]
