"""A stub hulld for the SDK's unit tests: a stdlib HTTP/1.1 server on a
unix socket that answers queued responses in order (JSON, bytes, or an
NDJSON stream sent chunked, line by line) and records every request,
chunked request bodies decoded."""
import json
import os
import select
import socketserver
import tempfile
import threading
from http.server import BaseHTTPRequestHandler


class Lines:
    """An NDJSON answer: each item (a dict, or raw bytes) goes out as its
    own chunk; ``end=False`` drops the connection instead of ending it."""

    def __init__(self, items, end=True, content_type="application/x-ndjson", hold=None):
        self.items, self.end, self.content_type = items, end, content_type
        # A threading.Event: after the items, the stream stays open (as a
        # quiet watch) until it is set or the client goes.
        self.hold = hold


class Cut:
    """Bytes answered with a Content-Length of ``declared``: fewer bytes
    than that are sent, then the connection is dropped (a download cut
    short)."""

    def __init__(self, data, declared):
        self.data, self.declared = data, declared


class Stub:
    """Answers queued responses in order and records every request."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="hull-sdk-stub-")
        self.path = os.path.join(self.dir, "hulld.sock")
        self.requests = []
        self.answers = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _body(self):
                if "chunked" in (self.headers.get("Transfer-Encoding") or ""):
                    out = bytearray()
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b""):
                                pass
                            return bytes(out), True
                        out += self.rfile.read(size)
                        self.rfile.read(2)
                n = int(self.headers.get("Content-Length") or 0)
                return (self.rfile.read(n) if n else b""), False

            def _serve(self):
                body, chunked = self._body()
                stub.requests.append({"method": self.command, "path": self.path,
                                      "headers": dict(self.headers), "body": body,
                                      "chunked": chunked})
                status, payload, headers = stub.answers.pop(0)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Connection", "close")
                if isinstance(payload, Lines):
                    self.send_header("Content-Type", payload.content_type)
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    for item in payload.items:
                        line = item if isinstance(item, bytes) else \
                            json.dumps(item).encode() + b"\n"
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
                        self.wfile.flush()
                    while payload.hold is not None and not payload.hold.wait(0.05):
                        if select.select([self.connection], [], [], 0)[0]:
                            break  # the client closed (or shut down) its end
                    if payload.end:
                        self.wfile.write(b"0\r\n\r\n")
                    return
                if isinstance(payload, Cut):
                    self.send_header("Content-Type", "application/octet-stream")
                    self.send_header("Content-Length", str(payload.declared))
                    self.end_headers()
                    self.wfile.write(payload.data)
                    return
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _serve

            def log_message(self, *a):
                pass

            def address_string(self):
                return "stub"

        class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                import sys
                if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
                    super().handle_error(request, client_address)
                # else: a client that stopped reading mid-stream, as tests make it

        self.server = Server(self.path, Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,),
                                       daemon=True)
        self.thread.start()

    def answer(self, status, payload, **headers):
        self.answers.append((status, payload, headers))

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        os.unlink(self.path)
        os.rmdir(self.dir)

    def last_json(self):
        return json.loads(self.requests[-1]["body"])
