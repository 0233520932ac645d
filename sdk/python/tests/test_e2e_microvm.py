"""client.sandbox(isolation="microvm") through the SDK against a real hulld:
exec streamed with callbacks, files, pause and resume. Needs root, QEMU and
a kernel (tests/integration/test_vm_lib.py); TCG unless HULL_VM_ACCEL says
otherwise. Host-wide: run under `flock /work/wt/vm.lock`."""
import os
import sys
import tempfile
from pathlib import Path

import pytest

import hull

SRC = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(SRC / "tests" / "integration"))
from hulldlib import HULLD, Hulld  # noqa: E402

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not Path(HULLD).exists(),
                                reason="needs root and a built hulld")


@pytest.fixture(scope="module")
def client():
    from test_vm_lib import ACCEL, skip_unless_ready
    skip_unless_ready()
    os.environ["HULL_VM_ACCEL"] = ACCEL
    d = Hulld(Path(tempfile.mkdtemp(prefix="hull-sdk-microvm-")))
    Path(d.state).mkdir(parents=True)
    d.start()
    try:
        yield hull.Client(socket_path=d.sock, token=d.token("user", "acme"))
    finally:
        assert d.stop() == 0, d.log.read_text()
        assert d.leaks() == ([], [], [])


def test_microvm_sandbox_exec_files_pause(client):
    with client.sandbox(isolation="microvm") as sb:
        got = []
        res = sb.exec(["sh", "-c", "for i in 1 2 3; do echo n$i; done"],
                      on_stdout=lambda data: got.append(data))
        assert res.verdict == "ok"  # the output went to the callback
        text = b"".join(x if isinstance(x, bytes) else x.encode() for x in got)
        assert text == b"n1\nn2\nn3\n"
        sb.files.write("/tmp/sdk.txt", b"from the sdk")
        assert sb.files.read("/tmp/sdk.txt") == b"from the sdk"
        assert any(e.name == "sdk.txt" for e in sb.files.list("/tmp"))
        assert sb.pause().state == "paused"
        assert sb.resume().state == "running"
        assert sb.exec(["cat", "/tmp/sdk.txt"]).stdout == "from the sdk"


def test_microvm_sessions_at_once_pty_signal_watch(client):
    """Several agent sessions at once: a background process, a watch and a
    pty shell run together while execs go on."""
    with client.sandbox(isolation="microvm") as sb:
        bg = sb.start(["sh", "-c", "trap 'echo usr1' USR1; echo ready; "
                                   "while :; do sleep 0.2; done"])
        sb.files.mkdir("/root/w")
        with sb.files.watch("/root/w") as w:
            assert sb.exec(["sh", "-c", "echo x > /root/w/x"]).verdict == "ok"
            ev = next(iter(w))
            assert (ev.type, ev.path) == ("create", "/root/w/x")
        out = b""
        for c in bg:
            out += c.data
            if b"ready" in out:
                break
        assert bg.signal("USR1").state == "running"
        for c in bg:
            out += c.data
            if b"usr1" in out:
                break
        sh = sb.start(["sh", "-i"], pty=(24, 80))
        sh.send_stdin(b"stty size\n")
        seen = b""
        for c in sh:
            seen += c.data
            if b"24 80" in seen:
                break
        sh.resize(50, 160)
        sh.send_stdin(b"stty size; exit 5\n")
        seen += b"".join(c.data for c in sh)
        assert b"50 160" in seen, seen
        assert sh.wait(timeout=120).exit_code == 5
        bg.signal("TERM")
        assert bg.wait(timeout=120).signal == 15
