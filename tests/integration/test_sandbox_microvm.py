"""`hull sandbox run --isolation microvm`: the same policy and result JSON as
the container level, in a fresh guest with its own kernel. (The VM machinery
itself is tested by test_vm*.py; this is the sandbox's plumbing.)"""
import json
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from test_vm_lib import HULL, qemu_pids, skip_unless_ready


@pytest.fixture(autouse=True)
def vm_ready():
    skip_unless_ready()
    yield
    assert not qemu_pids(), "a QEMU process outlived its sandbox run"


def sandbox(*args, stdin=None):
    cp = subprocess.run([HULL, "sandbox", "run", "--isolation", "microvm", "--json", *args],
                        capture_output=True, text=True, input=stdin, timeout=600)
    return cp.returncode, (json.loads(cp.stdout) if cp.stdout.strip() else None), cp.stderr


def test_runs_in_its_own_kernel_with_the_result_json(tmp_path):
    prog = tmp_path / "p.py"
    prog.write_text("import sys, json; print(json.load(sys.stdin)['a'] * 2)\n")
    out = tmp_path / "out.txt"
    # Generous CPU: python3 under software emulation (TCG) is slow to start.
    rc, j, err = sandbox("--cpu-time", "30s", "--wall-time", "60s",
                         "--copy-in", f"{prog}:/tmp/p.py", "--copy-out", f"/tmp/o.txt:{out}",
                         "--stdin", "-", "--", "sh", "-c",
                         "python3 /tmp/p.py; uname -r > /tmp/o.txt", stdin='{"a": 21}')
    assert rc == 0, err
    assert (j["verdict"], j["exit_code"], j["isolation"]) == ("ok", 0, "microvm"), j
    assert j["stdout"] == "42\n"
    # Not the host's kernel: the guest runs Debian's.
    assert out.read_text().strip() != os.uname().release
    assert j["files"] == [{"sandbox": "/tmp/o.txt", "host": str(out), "status": "ok",
                           "size": out.stat().st_size, "bytes": out.stat().st_size}]


def test_limits_give_the_same_verdicts():
    rc, j, err = sandbox("--cpu-time", "300ms", "--", "sh", "-c", "while :; do :; done")
    assert rc == 0, err
    assert j["verdict"] == "cpu_time_limit" and j["cpu_time_ms"] >= 300, j


def test_cpus_bound_the_workloads_cpu_bandwidth():
    """--cpus was not passed to the guest at all: a spinning workload under
    --cpus 0.2 ran flat out. The agent now sets its cgroup's cpu.max. The
    guest counts its own time, so a busy host does not make an unlimited
    loop look throttled: without the limit CPU time is about the wall time."""
    rc, j, err = sandbox("--cpus", "0.2", "--cpu-time", "60s", "--wall-time", "300s", "--",
                         "sh", "-c", "i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done")
    assert rc == 0 and j["verdict"] == "ok", (j, err)
    assert j["cpu_time_ms"] >= 200 and j["cpu_time_ms"] < 0.6 * j["wall_time_ms"], j


def test_a_workdir_the_guest_lacks_is_bad_command_126():
    """As at the container level: a working directory that is not there is
    the caller's mistake (126, said as the workdir), not a missing command
    (127) and not an internal error."""
    rc, j, err = sandbox("--wall-time", "60s", "--workdir", "/no/such/dir", "--", "true")
    assert rc == 0 and (j["verdict"], j["exit_code"]) == ("bad_command", 126), (j, err)
    assert "workdir /no/such/dir" in j["error"], j


def test_a_sigxcpu_of_its_own_is_no_cpu_time_limit():
    """As at the other levels: the verdict comes from the accounting, not
    from a SIGXCPU the program raised itself far inside its budget."""
    rc, j, err = sandbox("--cpu-time", "60s", "--wall-time", "120s", "--", "sh", "-c",
                         "kill -XCPU $$")
    assert rc == 0, err
    assert (j["verdict"], j["signal"]) == ("signaled", 24), j


def test_a_command_the_guest_lacks_is_bad_command():
    """As at the container level: the command's fault (bad_command, 127),
    not an internal error; without --json one `hull:` line and exit 127."""
    rc, j, err = sandbox("--wall-time", "60s", "--", "no-such-program-hull")
    assert rc == 0 and (j["verdict"], j["exit_code"]) == ("bad_command", 127), (j, err)
    assert "no-such-program-hull" in j["error"], j
    cp = subprocess.run([HULL, "sandbox", "run", "--isolation", "microvm", "--wall-time", "60s",
                         "--", "no-such-program-hull"], capture_output=True, text=True, timeout=600)
    assert cp.returncode == 127 and cp.stderr.startswith("hull: sandbox: "), cp
    assert len(cp.stderr.splitlines()) == 1, cp


@pytest.mark.parametrize("args,what", [
    (["--bind", "/usr:/x"], "bind: host binds are not available at microvm isolation"),
    (["--network", "host"], "--network host is refused"),
    # The guest's /tmp is in its RAM, charged to the workload's memory: a
    # size of its own was silently not applied (5 MB went into a "1M" /tmp).
    (["--tmp-size", "1M"], "--tmp-size is refused at microvm isolation"),
])
def test_what_a_guest_cannot_do_is_refused(args, what):
    rc, j, err = sandbox(*args, "--", "true")
    assert rc == 125 and j is None and what in err, (rc, err)


def readme_microvm_run():
    """The README's `sandbox run --isolation microvm` example, as argv."""
    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = text.split("## MicroVMs", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    line = next(l for l in block.splitlines() if "sandbox run --isolation microvm" in l)
    return shlex.split(line)


def seconds(t):
    m = re.fullmatch(r"(\d+)(ms|s|m)", t)
    assert m, t
    return int(m[1]) * {"ms": 0.001, "s": 1, "m": 60}[m[2]]


@pytest.mark.slow
def test_readme_example_runs_under_software_emulation():
    """The README's first microVM command gives a CPU limit a guest under
    TCG can start python3 within (the default 2 s is not), and works."""
    argv = readme_microvm_run()
    assert argv[0] == "build/hull"
    assert "--cpu-time" in argv and seconds(argv[argv.index("--cpu-time") + 1]) >= 20, argv
    cp = subprocess.run([HULL, *argv[1:]], capture_output=True, text=True, timeout=600,
                        env=dict(os.environ, HULL_VM_ACCEL="tcg"))
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.strip() and cp.stdout.strip() != os.uname().release, cp.stdout
