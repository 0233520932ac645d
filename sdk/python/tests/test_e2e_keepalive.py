"""The client keeps its connection to hulld between requests (hulld starts a
thread per connection), and opens a new one when hulld closed the idle one
(--client-timeout). Needs root and the built binaries, like test_e2e.py."""
import os
import sys
import tempfile
import time
from pathlib import Path

import pytest

import hull

SRC = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(SRC / "tests" / "integration"))
from hulldlib import HULLD, Hulld  # noqa: E402

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not Path(HULLD).exists(),
                                reason="needs root and a built hulld")


def test_connection_kept_then_replaced_after_hulld_closed_it():
    tmp = Path(tempfile.mkdtemp(prefix="hull-sdk-keepalive-"))
    d = Hulld(tmp, "--client-timeout", "1")
    d.start()
    try:
        c = hull.Client(socket_path=d.sock, token=d.token("user", "acme"))
        assert c.run(["echo", "one"]).stdout == "one\n"
        (conn,) = c._idle
        sock = conn.sock
        assert c.run(["echo", "two"]).stdout == "two\n"
        assert c._idle == [conn] and conn.sock is sock  # the same connection again
        time.sleep(3)  # hulld closes a connection idle for over 1 s
        assert c.run(["echo", "three"]).stdout == "three\n"
        assert c._idle and c._idle[0] is not conn  # a new one replaced it
        with pytest.raises(hull.NotFound):  # an error answer closes its connection
            c.get("r-0000000000000000")
        assert c.health()["status"] == "ok"
        c.close()
        assert c._idle == []
    finally:
        assert d.stop() == 0
    assert d.leaks() == ([], [], [])
