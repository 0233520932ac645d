"""One-shot workloads in fresh microVMs (`hull vm run`, the engine of
`hull sandbox run --isolation microvm`): results and verdicts measured in
the guest, files in and out, and nothing left behind, even when hull dies."""
import json
import os
import shutil
import signal
import subprocess
import time

import pytest

from test_vm_lib import h  # noqa: F401 (the fixture)
from test_vm_lib import HULL, Hull, new_root, qemu_pids, skip_unless_ready


def leftovers(h):
    vmdir = os.path.join(h.root, "vm")
    dirs = os.listdir(vmdir) if os.path.isdir(vmdir) else []
    cgs = []
    for hier in os.listdir("/sys/fs/cgroup"):
        p = os.path.join("/sys/fs/cgroup", hier, "hull-vm")
        if os.path.isdir(p):
            cgs += [d for d in os.listdir(p) if d.startswith(f"oneshot-")]
    return dirs, cgs, [p for p in qemu_pids() if f"oneshot-".encode() in open(f"/proc/{p}/cmdline", "rb").read()]


def run(h, *args, stdin=None):
    p = h.run("vm", "run", *args, input=stdin)
    assert p.returncode in (0, 1), p.stderr.decode()
    r = json.loads(p.stdout)
    assert r["isolation"] == "microvm"
    return r


def test_ok_and_exit_codes(h):
    r = run(h, "--", "sh", "-c", "echo out; echo err >&2; uname -r")
    assert r["verdict"] == "ok" and r["exit_code"] == 0
    assert r["stdout"].startswith("out\n") and r["stderr"] == "err\n"
    assert r["stdout"].split("\n")[1] != os.uname().release  # the guest's kernel
    assert r["cpu_time_ms"] > 0 and r["wall_time_ms"] > 0 and r["max_memory_kb"] > 0
    r = run(h, "--", "sh", "-c", "exit 3")
    assert r["verdict"] == "exit_nonzero" and r["exit_code"] == 3
    r = run(h, "--", "sh", "-c", "kill -KILL $$")
    assert r["verdict"] == "signaled" and r["signal"] == 9
    assert leftovers(h) == ([], [], [])


def test_stdin_and_files(h, tmp_path):
    src = tmp_path / "in.bin"
    src.write_bytes(os.urandom(50000))
    out = tmp_path / "out.bin"
    r = run(h, "--stdin", "-", "--copy-in", f"{src}:/tmp/in.bin", "--copy-out", f"/tmp/out.bin:{out}", "--",
            "sh", "-c", "cat > /tmp/stdin.txt; cat /tmp/in.bin /tmp/stdin.txt > /tmp/out.bin; cat /tmp/stdin.txt",
            stdin=b"piped")
    assert r["verdict"] == "ok" and r["stdout"] == "piped"
    assert out.read_bytes() == src.read_bytes() + b"piped"
    assert leftovers(h) == ([], [], [])


def test_python_calculate(h, tmp_path):
    user = tmp_path / "user.py"
    user.write_text("def calculate(inputs):\n    return {'sum': sum(inputs['xs'])}\n")
    runner = "import json,sys; sys.path.insert(0,'/tmp'); import user; print(json.dumps(user.calculate(json.load(sys.stdin))))"
    r = run(h, "--memory", "64M", "--cpu-time", "5s", "--wall-time", "30s", "--copy-in", f"{user}:/tmp/user.py",
            "--stdin", "-", "--", "python3", "-c", runner, stdin=b'{"xs": [1, 2, 3, 4]}')
    assert r["verdict"] == "ok", r
    assert json.loads(r["stdout"]) == {"sum": 10}


@pytest.mark.parametrize("limit,cmd,verdict", [
    (["--cpu-time", "1s", "--wall-time", "60s"], ["sh", "-c", "while :; do :; done"], "cpu_time_limit"),
    (["--wall-time", "1s"], ["sleep", "30"], "wall_time_limit"),
    (["--memory", "32M", "--wall-time", "60s"],
     ["python3", "-c", "a=[]\nwhile True: a.append(bytearray(1<<20))"], "memory_limit"),
    (["--output", "1000"], ["sh", "-c", "yes hello"], "output_limit"),
    (["--pids", "8", "--wall-time", "30s"], ["sh", "-c", "for i in $(seq 20); do sleep 3 & done; wait"], "pids_limit"),
])
def test_limits(h, limit, cmd, verdict):
    r = run(h, *limit, "--", *cmd)
    assert r["verdict"] == verdict, r
    if verdict == "cpu_time_limit":
        assert r["cpu_time_ms"] >= 1000
    if verdict == "memory_limit":
        assert r["max_memory_kb"] >= 30 * 1024
    if verdict == "output_limit":
        assert r["stdout_truncated"] and len(r["stdout"]) == 1000
    assert leftovers(h) == ([], [], [])


def test_open_files_limit(h):
    r = run(h, "--open-files", "8", "--", "python3", "-c",
            "import os\ntry:\n  [os.open('/dev/null', 0) for i in range(20)]\nexcept OSError as e: print(e.errno)")
    assert r["verdict"] == "ok" and r["stdout"].strip() == "24"  # EMFILE


def test_smallest_open_files_limit_still_leaves_the_oom_killer_to_the_workload(h):
    """The agent runs at oom_score_adj -1000; the workload is set back to 0
    before its limits apply, whatever --open-files says."""
    r = run(h, "--open-files", "4", "--", "sh", "-c", "cat /proc/self/oom_score_adj; ulimit -n")
    assert r["verdict"] == "ok" and r["stdout"].split() == ["0", "4"], r


def test_missing_command_is_bad_command(h):
    """The command's fault, not hull's: verdict bad_command, a shell's 127."""
    p = h.run("vm", "run", "--", "/no/such/binary")
    r = json.loads(p.stdout)
    assert p.returncode == 127
    assert (r["verdict"], r["exit_code"]) == ("bad_command", 127) and "No such file" in r["error"]
    assert leftovers(h) == ([], [], [])


def test_bad_options(h, tmp_path):
    for args in (["--memory", "lots"], ["--cpu-time", "x"], ["--copy-in", "nocolon"], []):
        p = h.run("vm", "run", *args, "--", *([] if args == [] else ["true"]))
        assert p.returncode != 0 and p.stderr.startswith(b"hull: vm run"), args
    p = h.run("vm", "run", "--copy-in", f"{tmp_path}/missing:/x", "--", "true")
    assert p.returncode != 0 and b"missing" in p.stderr
    assert leftovers(h) == ([], [], [])


def test_killed_hull_leaves_nothing(h):
    p = subprocess.Popen([HULL, "--root", h.root, "vm", "run", "--", "sleep", "600"], env=h.env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not leftovers(h)[2] and time.time() < deadline:
        time.sleep(0.1)
    assert leftovers(h)[2], "the VM never started"
    time.sleep(1)
    p.send_signal(signal.SIGKILL)
    p.wait()
    deadline = time.time() + 20
    while (leftovers(h) != ([], [], []) or uid_claims_under(h.root)) and time.time() < deadline:
        time.sleep(0.1)
    assert leftovers(h) == ([], [], [])
    # Its QEMU uid too: the monitor frees the claim (src/lib/vm/uids.c).
    assert uid_claims_under(h.root) == []


def uid_claims_under(root):
    """QEMU uid claims naming a VM directory under root."""
    claims = "/run/hull/vm-uids"
    found = []
    for name in os.listdir(claims) if os.path.isdir(claims) else []:
        try:
            with open(os.path.join(claims, name)) as f:
                if f.read().startswith(root.rstrip("/") + "/"):
                    found.append(name)
        except FileNotFoundError:
            pass
    return found
