"""hulld: the Redis password of --redis (redis://USER:PASSWORD@HOST) is
never shown: not to a tenant in an error answer, not in hulld's log, not
to local users in /proc/PID/cmdline (what ps shows)."""
import os
import subprocess
from pathlib import Path

import pytest

from hulldlib import HULLD, Hulld
from queuelib import free_port  # a loopback port nothing listens on

pytestmark = pytest.mark.skipif(not os.path.exists(HULLD), reason="hulld not built")

PASSWORD = "pw-9f3c1e77b2"


def test_redis_password_is_never_shown(tmp_path):
    url = f"redis://hull:{PASSWORD}@127.0.0.1:{free_port()}"
    h = Hulld(tmp_path, "--redis", url)
    Path(h.state).mkdir(parents=True)
    tok = h.token("user", "acme")
    h.start()
    try:
        cmdline = Path(f"/proc/{h.proc.pid}/cmdline").read_bytes()
        assert PASSWORD.encode() not in cmdline, cmdline
        assert b"redis://hull:" in cmdline and b"@127.0.0.1:" in cmdline, cmdline
        # Redis is down: a tenant is told so, with where, without the password.
        r = h.request("POST", "/v1/runs", {"cmd": ["true"], "queue": True}, tok)
        assert r.status == 503 and r.json["error"]["code"] == "queue_unavailable", r
        msg = r.json["error"]["message"]
        assert PASSWORD not in msg and "redis://hull:***@127.0.0.1:" in msg, msg
    finally:
        assert h.stop() == 0, h.log.read_text()
    log = h.log.read_text()
    assert "redis://hull:***@127.0.0.1:" in log and PASSWORD not in log, log


def test_tls_key_others_may_read_is_refused(tmp_path):
    """A --tls-key other users may read would let them be hulld to its TLS
    clients (and take their tokens): refused, as ssh refuses such keys; a
    group may read it (the ssl-cert way)."""
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=120)
    listen = ["--listen", f"127.0.0.1:{free_port()}", "--tls-cert", str(cert), "--tls-key",
              str(key)]
    state = tmp_path / "state"
    state.mkdir()
    key.chmod(0o644)
    p = subprocess.run([HULLD, "--socket", str(tmp_path / "s.sock"), "--state-dir", str(state),
                        *listen], capture_output=True, text=True, timeout=120)
    assert p.returncode == 1, p
    assert f"--tls-key: {key}: other users may read or write it (mode 0644): chmod 600" in p.stderr
    assert not (tmp_path / "s.sock").exists()
    key.chmod(0o640)
    h = Hulld(tmp_path, *listen)
    h.start()
    assert h.stop() == 0, h.log.read_text()
