"""A real registry for image tests: /usr/bin/docker-registry (distribution 2.8).

    with Registry(tmp_path) as reg:                 # plain http
        push_oci(layout, "img", f"{reg.host}/app:1")
    with Registry(tmp_path, tls=True) as reg:       # https, reg.ca / reg.cert_dir
    with Registry(tmp_path, htpasswd={"u": "p"}) as reg:   # Basic auth

Each registry listens on 127.0.0.1 on a free port, keeps its storage under
tmp_path (reg.storage, for tests that tamper with blobs), logs every request
to reg.log_path (reg.requests() parses the access log), and is stopped by its
pid. Nothing here reaches the network beyond 127.0.0.1.
"""
import base64
import os
import re
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

DOCKER_REGISTRY = "/usr/bin/docker-registry"
SKOPEO = "/usr/bin/skopeo"


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(args, **kw):
    r = subprocess.run(args, capture_output=True, text=True, timeout=120, **kw)
    if r.returncode != 0:
        raise RuntimeError(f"{args[0]} failed ({r.returncode}): {r.stderr.strip()}")
    return r


def make_ca(dirpath, ip="127.0.0.1"):
    """A CA and a server certificate for ip, with the openssl CLI. Returns
    (ca.crt, server.crt, server.key) paths."""
    d = Path(dirpath)
    d.mkdir(parents=True, exist_ok=True)
    ca_key, ca_crt = d / "ca.key", d / "ca.crt"
    key, csr, crt = d / "server.key", d / "server.csr", d / "server.crt"
    ext = d / "server.ext"
    _run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key),
          "-out", str(ca_crt), "-days", "2", "-subj", "/CN=hull test CA",
          "-addext", "basicConstraints=critical,CA:TRUE",
          "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
    _run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
          str(csr), "-subj", f"/CN={ip}"])
    ext.write_text(f"subjectAltName=IP:{ip}\nbasicConstraints=CA:FALSE\n"
                   "extendedKeyUsage=serverAuth\n")
    _run(["openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca_crt), "-CAkey", str(ca_key),
          "-CAcreateserial", "-out", str(crt), "-days", "2", "-extfile", str(ext)])
    return ca_crt, crt, key


def write_htpasswd(path, users):
    """users: {name: password} (bcrypt, as distribution requires)."""
    lines = []
    for user, password in users.items():
        r = _run(["htpasswd", "-Bbn", user, password])
        lines.append(r.stdout.strip())
    Path(path).write_text("\n".join(lines) + "\n")


class Registry:
    """A docker-registry on 127.0.0.1:<free port>. Use as a context manager,
    or call start()/stop() yourself.

    tls: serve https with a certificate for 127.0.0.1 signed by a fresh CA
         (self.ca is the CA file, self.cert_dir a directory holding it as ca.crt).
    htpasswd: {user: password}: Basic auth for every request.
    token: a dict for distribution's token auth:
         {"realm": URL, "service": NAME, "issuer": NAME, "rootcertbundle": PATH}.
    name: directory name under tmp_path (several registries in one test).
    """

    def __init__(self, tmp_path, tls=False, htpasswd=None, token=None, name=None):
        self.port = free_port()
        self.dir = Path(tmp_path) / (name or f"registry-{self.port}")
        self.dir.mkdir(parents=True, exist_ok=True)
        self.storage = self.dir / "storage"
        self.storage.mkdir(exist_ok=True)
        self.log_path = self.dir / "registry.log"
        self.config_path = self.dir / "config.yml"
        self.tls = tls
        self.users = dict(htpasswd) if htpasswd else None
        self.token = token
        self.ca = None
        self.cert_dir = None
        self.proc = None
        self.host = f"127.0.0.1:{self.port}"
        self.url = f"{'https' if tls else 'http'}://{self.host}"

    # ---- lifecycle ----
    def _config(self):
        lines = [
            "version: 0.1",
            "log:",
            "  level: info",
            "  accesslog:",
            "    disabled: false",
            "storage:",
            "  filesystem:",
            f"    rootdirectory: {self.storage}",
            "  delete:",
            "    enabled: true",
            "  maintenance:",
            "    uploadpurging:",
            "      enabled: false",
            "http:",
            f"  addr: 127.0.0.1:{self.port}",
            f"  secret: hull-test-{self.port}",
        ]
        if self.tls:
            ca, crt, key = make_ca(self.dir / "tls")
            self.ca = ca
            self.cert_dir = self.dir / "certs.d"
            self.cert_dir.mkdir(exist_ok=True)
            (self.cert_dir / "ca.crt").write_bytes(ca.read_bytes())
            lines += ["  tls:", f"    certificate: {crt}", f"    key: {key}"]
        if self.users is not None:
            hp = self.dir / "htpasswd"
            write_htpasswd(hp, self.users)
            lines += ["auth:", "  htpasswd:", "    realm: hull-test", f"    path: {hp}"]
        elif self.token is not None:
            lines += ["auth:", "  token:"]
            for k in ("realm", "service", "issuer", "rootcertbundle"):
                lines.append(f"    {k}: {self.token[k]}")
        return "\n".join(lines) + "\n"

    def start(self, timeout=60):
        self.config_path.write_text(self._config())
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([DOCKER_REGISTRY, "serve", str(self.config_path)],
                                     stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                self._log.close()
                raise RuntimeError(f"docker-registry exited ({self.proc.returncode}): "
                                   f"{self.log_path.read_text()[-2000:]}")
            status = self.status("/v2/")
            if status in (200, 401):
                return self
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"docker-registry did not answer on {self.host}")
            time.sleep(0.1)

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None
        self._log.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ---- talking to it ----
    def _ssl(self):
        if not self.tls:
            return None
        ctx = ssl.create_default_context(cafile=str(self.ca)) if self.ca else \
            ssl._create_unverified_context()
        return ctx

    def request(self, path, method="GET", headers=None, auth=True):
        """(status, headers, body) of one request (Basic creds of the first
        user when auth and htpasswd)."""
        h = dict(headers or {})
        if auth and self.users:
            user, pw = next(iter(self.users.items()))
            h["Authorization"] = "Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode()
        req = urllib.request.Request(self.url + path, method=method, headers=h)
        try:
            with urllib.request.urlopen(req, timeout=10, context=self._ssl()) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def status(self, path):
        try:
            return self.request(path, auth=False)[0]
        except (OSError, urllib.error.URLError):
            return None

    def creds(self):
        """"USER:PASS" of the first htpasswd user."""
        user, pw = next(iter(self.users.items()))
        return f"{user}:{pw}"

    # ---- the access log ----
    def log_text(self):
        return self.log_path.read_text(errors="replace")

    ACCESS = re.compile(r'"(GET|HEAD|POST|PUT|PATCH|DELETE) (\S+) HTTP/[\d.]+" (\d{3})')

    def requests(self, method=None, path_re=None):
        """[(method, path, status)] from the access log, in order, filtered by
        method and a regular expression searched in the path."""
        out = []
        for m in self.ACCESS.finditer(self.log_text()):
            meth, path, status = m.group(1), m.group(2), int(m.group(3))
            if method and meth != method:
                continue
            if path_re and not re.search(path_re, path):
                continue
            out.append((meth, path, status))
        return out

    def blob_gets(self, repo=None):
        """GET requests of blobs (optionally in repo) the registry answered."""
        pat = rf"^/v2/{re.escape(repo)}/blobs/sha256:" if repo else r"/blobs/sha256:"
        return self.requests("GET", pat)

    def uploads(self):
        """Upload sessions started (POST .../blobs/uploads/) without ?mount."""
        return [r for r in self.requests("POST", r"/blobs/uploads/") if "mount=" not in r[1]]

    def mounts(self):
        """Cross-repository mount requests and their status (201 mounted)."""
        return self.requests("POST", r"/blobs/uploads/\?.*mount=")

    # ---- pushing test images ----
    def push_oci(self, layout_dir, name, repo_tag, all_images=True, preserve_digests=True):
        """Push oci:layout_dir:name to this registry as repo_tag ("app:1")."""
        return push_oci(layout_dir, name, f"{self.host}/{repo_tag}",
                        creds=self.creds() if self.users else None, cert_dir=None,
                        all_images=all_images, preserve_digests=preserve_digests)

    def blob_path(self, digest):
        """The file holding a blob in the registry's storage."""
        hexd = digest.split(":", 1)[1]
        return (self.storage / "docker/registry/v2/blobs/sha256" / hexd[:2] / hexd / "data")


def push_oci(layout_dir, name, dest, creds=None, cert_dir=None, all_images=True,
             preserve_digests=True):
    """skopeo copy oci:layout_dir:name docker://dest (dest "HOST/REPO:TAG"),
    TLS not verified unless cert_dir. all_images keeps every platform of an
    index; preserve_digests makes skopeo fail rather than recompress (it
    gzips uncompressed layers otherwise, and the pushed digests would not be
    the layout's). Returns skopeo's CompletedProcess."""
    args = [SKOPEO, "--insecure-policy", "copy", "--retry-times", "0"]
    if all_images:
        args.append("--all")
    if preserve_digests:
        args.append("--preserve-digests")
    if cert_dir:
        args += ["--dest-cert-dir", str(cert_dir)]
    else:
        args.append("--dest-tls-verify=false")
    if creds:
        args += ["--dest-creds", creds]
    args += [f"oci:{layout_dir}:{name}", f"docker://{dest}"]
    return _run(args)


def skopeo_inspect(ref, creds=None, raw=False, tls_verify=False, cert_dir=None):
    """skopeo inspect docker://ref: the parsed JSON (raw: the manifest)."""
    import json
    args = [SKOPEO, "inspect"]
    if raw:
        args.append("--raw")
    if cert_dir:
        args += ["--cert-dir", str(cert_dir)]
    elif not tls_verify:
        args.append("--tls-verify=false")
    if creds:
        args += ["--creds", creds]
    args.append(f"docker://{ref}")
    return json.loads(_run(args).stdout)


class TokenServer:
    """distribution's token auth: a realm on 127.0.0.1 handing out JWTs
    (RS256, signed with the openssl CLI, the signing certificate in the x5c
    header and in the registry's rootcertbundle).

        with TokenServer(tmp_path, users={"u": "p"}) as ts:
            with Registry(tmp_path, token=ts.registry_config()) as reg: ...

    Anonymous requests get pull; a known user gets every action asked for;
    wrong credentials get 401. self.issued lists (user, [scopes]) per token.
    """

    SERVICE = "hull-test-registry"
    ISSUER = "hull-test-issuer"

    def __init__(self, tmp_path, users=None, anonymous_pull=True):
        self.dir = Path(tmp_path) / f"token-{free_port()}"
        self.dir.mkdir(parents=True)
        self.users = dict(users or {})
        self.anonymous_pull = anonymous_pull
        self.issued = []
        self.key = self.dir / "token.key"
        self.cert = self.dir / "token.crt"
        _run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
              str(self.key), "-out", str(self.cert), "-days", "2", "-subj", "/CN=hull token signer"])
        der = subprocess.run(["openssl", "x509", "-in", str(self.cert), "-outform", "DER"],
                             capture_output=True, check=True).stdout
        self.x5c = base64.b64encode(der).decode()
        self.server = None
        self.port = None

    def registry_config(self):
        return {"realm": f"http://127.0.0.1:{self.port}/token", "service": self.SERVICE,
                "issuer": self.ISSUER, "rootcertbundle": str(self.cert)}

    @staticmethod
    def _b64url(b):
        return base64.urlsafe_b64encode(b).rstrip(b"=").decode()

    def _sign(self, claims):
        import json
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self.x5c]}
        signing = (self._b64url(json.dumps(header).encode()) + "." +
                   self._b64url(json.dumps(claims).encode()))
        sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(self.key)],
                             input=signing.encode(), capture_output=True, check=True).stdout
        return signing + "." + self._b64url(sig)

    def _grant(self, user, scopes):
        access = []
        for s in scopes:
            parts = s.split(":")
            if len(parts) < 3:
                continue
            typ, name, actions = parts[0], ":".join(parts[1:-1]), parts[-1].split(",")
            if user is None:
                actions = [a for a in actions if a == "pull"] if self.anonymous_pull else []
            access.append({"type": typ, "name": name, "actions": actions})
        now = int(time.time())
        return {"iss": self.ISSUER, "sub": user or "", "aud": self.SERVICE, "exp": now + 600,
                "nbf": now - 10, "iat": now, "jti": f"{now}-{len(self.issued)}", "access": access}

    def start(self):
        import json
        import threading
        import urllib.parse
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        ts = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                u = urllib.parse.urlparse(self.path)
                q = urllib.parse.parse_qs(u.query)
                user = None
                auth = self.headers.get("Authorization", "")
                if auth.startswith("Basic "):
                    name, _, pw = base64.b64decode(auth[6:]).decode().partition(":")
                    if ts.users.get(name) != pw:
                        self.send_response(401)
                        self.send_header("Content-Type", "application/json")
                        self.end_headers()
                        self.wfile.write(b'{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}')
                        return
                    user = name
                scopes = q.get("scope", [])
                ts.issued.append((user, scopes))
                body = json.dumps({"token": ts._sign(ts._grant(user, scopes)),
                                   "expires_in": 600}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.thread.join()
            self.server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
