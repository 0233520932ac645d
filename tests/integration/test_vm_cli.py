"""`hull vm`'s command line: unknown verbs, `list`'s table and JSON,
`create --from-template` that only creates, and `exec` reporting a limit
the way `hull sandbox run` does."""
import fcntl
import json
import os
import shutil
import signal
import subprocess
import time

import pytest

from test_vm_lib import (h,  # noqa: F401 (the fixture)
                         HULL, MEM, Hull, assert_gone, qemu_pids, running)

EXEC_KEYS = {"verdict", "exit_code", "signal", "cpu_time_ms", "wall_time_ms", "max_memory_kb",
             "stdout", "stderr", "stdout_truncated", "stderr_truncated", "isolation"}
GENEROUS = ("--cpu-time", "60s", "--wall-time", "120s")


@pytest.mark.parametrize("args", [["bogus"], ["bogus", "x"], ["bogus", "--force", "x"]])
def test_unknown_verb(tmp_path, args):
    p = subprocess.run([HULL, "--root", str(tmp_path), "vm", *args], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 1, p
    assert p.stderr == "hull: vm: unknown command 'bogus'\nTry 'hull vm --help'.\n", p.stderr
    assert p.stdout == ""


def test_root_too_long_for_the_state_directory_is_refused(tmp_path):
    """A --root whose vm/ would not fit in PATH_MAX is refused by name, and
    nothing is made under a cut name (hull used to make <root>/v)."""
    root = str(tmp_path / "long")
    while len(root) < 4093 - 201:
        root += "/" + "a" * 200
    root += "/" + "b" * (4093 - len(root) - 1)
    assert len(root) == 4093
    p = subprocess.run([HULL, "--root", root, "vm", "state", "x"], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 1, p
    # Named as the VM's directory under the root (its middle shortened,
    # by how much depends on the test's own directory).
    assert p.stderr.startswith("hull: vm state: state: ") and \
        p.stderr.endswith("/vm/x: path too long\n"), p.stderr
    made = [d for d, _, _ in os.walk(tmp_path) if os.path.basename(d) in ("v", "vm")]
    assert made == [], made
    assert not os.path.exists(tmp_path / "long")


def test_list_is_a_table_or_json(h):
    h.ok("vm", "create", "--memory", MEM, "listed")
    try:
        table = h.ok("vm", "list").stdout.decode().splitlines()
        assert table[0].split() == ["ID", "STATUS", "PID", "ACCEL", "MEMORY", "VCPUS", "CREATED"]
        row = next(l.split() for l in table[1:] if l.split()[0] == "listed")
        assert row[1:6] == ["created", "0", h.state("listed")["accelerator"], "128M", "1"], row
        listed = json.loads(h.ok("vm", "list", "--format", "json").stdout)
        assert [v["id"] for v in listed if v["id"] == "listed"] == ["listed"]
        p = h.run("vm", "list", "--format", "yaml")
        assert p.returncode == 1 and b"--format: unknown format 'yaml'" in p.stderr
    finally:
        h.ok("vm", "delete", "--force", "listed")
    assert_gone(h, "listed")


def test_create_from_template_only_creates(h, tmp_path):
    hc = Hull(h.root)
    hc.env = dict(h.env, HULL_VM_CACHE=str(tmp_path / "cache"))
    try:
        for vid in ("tpl1", "tpl2"):
            hc.ok("vm", "create", "--memory", MEM, "--from-template", vid)
            assert hc.state(vid)["status"] == "created" and not qemu_pids(vid)
            assert hc.state(vid)["from_template"] is True
            hc.ok("vm", "start", vid, timeout=600)
            assert hc.state(vid)["status"] == "running" and qemu_pids(vid)
            assert hc.sh(vid, "echo up") == "up\n"
        # The first boot made the template, the second start restored it.
        assert hc.state("tpl1").get("restored_from") is None
        assert hc.state("tpl2")["restored_from"].endswith(".snap")
        # Started again after a stop: from the template again.
        hc.ok("vm", "stop", "tpl2")
        hc.ok("vm", "start", "tpl2", timeout=600)
        assert hc.sh("tpl2", "echo again") == "again\n"
    finally:
        for vid in ("tpl1", "tpl2"):
            hc.run("vm", "delete", "--force", vid)
    for vid in ("tpl1", "tpl2"):
        assert_gone(hc, vid)


@pytest.fixture(scope="module")
def vm(h):
    h.ok("vm", "create", "--memory", MEM, "clivm")
    h.ok("vm", "start", "clivm", timeout=600)
    yield "clivm"
    h.ok("vm", "delete", "--force", "clivm")
    assert_gone(h, "clivm")


def test_exec_limit_is_reported_like_sandbox_run(h, vm):
    # A second of CPU: the guest can charge the time its vCPU was descheduled
    # by a busy host to whatever ran, so 300 ms was at times gone before
    # the shell's echo ran (seen once in CI with the host loaded).
    spin = ["sh", "-c", "echo spinning; while :; do :; done"]
    p = h.run("vm", "exec", "--cpu-time", "1s", "--wall-time", "120s", vm, "--", *spin)
    assert p.returncode == 124, p
    assert p.stdout == b"spinning\n"
    assert p.stderr.decode().startswith(f"hull: vm exec {vm}: verdict=cpu_time_limit "), p.stderr
    p = h.run("vm", "exec", "--json", "--cpu-time", "1s", "--wall-time", "120s", vm, "--",
              *spin)
    assert p.returncode == 0, p
    j = json.loads(p.stdout)
    assert set(j) == EXEC_KEYS, j
    assert j["verdict"] == "cpu_time_limit" and j["cpu_time_ms"] >= 1000, j
    assert j["stdout"] == "spinning\n" and j["isolation"] == "microvm"


def test_exec_json_exits_0_whenever_it_ran(h, vm):
    p = h.run("vm", "exec", "--json", *GENEROUS, vm, "--", "sh", "-c", "echo hi; exit 3")
    assert p.returncode == 0, p
    j = json.loads(p.stdout)
    assert set(j) == EXEC_KEYS and (j["verdict"], j["exit_code"], j["stdout"]) == (
        "exit_nonzero", 3, "hi\n"), j
    # The command's own status still passes through without --json.
    assert h.run("vm", "exec", *GENEROUS, vm, "--", "sh", "-c", "exit 3").returncode == 3
    p = h.run("vm", "exec", "--json", *GENEROUS, vm, "--", "no-such-command")
    assert p.returncode == 0, p
    j = json.loads(p.stdout)
    # The command's fault, not hull's: bad_command, with a shell's 127.
    assert (j["verdict"], j["exit_code"]) == ("bad_command", 127) and "No such file" in j["error"], j
    assert set(j) == EXEC_KEYS | {"error"}


@pytest.mark.parametrize("args, message", [
    (["create", "--vcpus", "0", "x"], "vm create: --vcpus 0: must be 1..64"),
    (["create", "--memory", "0", "x"], "vm create: --memory 0: not a size (like 256M)"),
    (["create", "--detach", "x"], "vm create: option --detach does not apply here"),
    (["create", "--kernel", "/nonexistent-hull", "x"],
     "kernel /nonexistent-hull: No such file or directory"),
    (["create", "--rootfs", "/nonexistent-hull", "x"],
     "rootfs /nonexistent-hull: No such file or directory"),
    (["create", "--accel", "bogus", "x"], 'accelerator "bogus": must be kvm, tcg or auto'),
    (["run", "--env", "NOEQ", "--", "true"], "vm run: --env NOEQ: must be K=V"),
    (["run", "--copy-in", "x", "--", "true"], "vm run: --copy-in x: must be SRC:DST"),
    (["run", "--cpu-time", "2x", "--", "true"],
     "vm run: --cpu-time 2x: not a duration (like 2s or 500ms)"),
    (["list", "--format", "yaml"], "vm list: --format: unknown format 'yaml' (table or json)"),
    (["create", "--", "-x"], "VM id \"-x\": must not start with '-'"),
])
def test_options_reach_their_place_or_are_refused_by_name(tmp_path, args, message):
    """Each option lands where its verb reads it (a --kernel or --rootfs
    that does not exist is named by create itself) or is refused with its
    name."""
    p = subprocess.run([HULL, "--root", str(tmp_path), "vm", *args], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 1, p
    assert p.stderr.startswith("hull: ") and message in p.stderr, p.stderr
    assert p.stdout == ""


def test_a_killed_deletes_leftover_goes_with_the_next_delete(h):
    """A delete killed between renaming a VM away and removing it leaves
    .ID.deleting.PID: the next delete removes it once that pid is gone,
    and leaves one whose delete still runs."""
    vmdir = os.path.join(h.root, "vm")
    h.ok("vm", "create", "sweep1")
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = os.path.join(vmdir, f".gone1.deleting.{dead.pid}")
    live = os.path.join(vmdir, f".gone2.deleting.{os.getpid()}")
    for d in (stale, live):
        os.makedirs(os.path.join(d, "run"))
    try:
        h.ok("vm", "delete", "sweep1")
        assert not os.path.exists(stale) and os.path.isdir(live)
    finally:
        shutil.rmtree(live, ignore_errors=True)


def test_deletes_racing_on_one_vm_say_it_is_gone(h):
    """`vm delete` of one VM three times at once (no QEMU: created only).
    The ones queued on the VM's lock behind the first used to wake holding
    the removed VM's lock and act on the state read before it, or to fail
    with `lock .../lock: No such file or directory`; each now says the VM
    does not exist. Repeated: the interleaving differs from round to round."""
    for r in range(20):
        vid = f"race{r}"
        h.ok("vm", "create", vid)
        procs = [subprocess.Popen([HULL, "--root", h.root, "vm", "delete", vid],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  env=h.env) for _ in range(3)]
        results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
        assert any(rc == 0 for rc, _ in results), results
        for rc, err in results:
            assert rc == 0 or err == f"hull: vm delete: delete: VM {vid} does not exist\n", results
        assert h.run("vm", "state", vid).returncode != 0
    # The root is the module's (other tests' VMs may be there): none of
    # these, and no directory a delete renamed them to, is left.
    assert [n for n in os.listdir(os.path.join(h.root, "vm")) if "race" in n] == []


def _waits_for_lock(pid, path):
    """Whether process pid is queued on the flock of file path (/proc/locks
    lists a waiter as '-> FLOCK ... PID MAJ:MIN:INODE ...')."""
    ino = os.stat(path).st_ino
    with open("/proc/locks") as f:
        for line in f:
            parts = line.split()
            if "->" in parts and parts[parts.index("->") + 1] == "FLOCK":
                at = parts.index("->") + 4
                if int(parts[at]) == pid and int(parts[at + 1].rsplit(":", 1)[1]) == ino:
                    return True
    return False


def test_a_verb_queued_on_the_lock_acts_on_the_vm_as_it_is_after_it(h):
    """`vm pause` read the VM running, then waited for its lock; meanwhile
    its QEMU went (here: killed while the test holds the lock, as another
    verb would). It used to act on the record read before the lock (QMP of
    a gone QEMU); it now reads the record again under the lock and finds the
    VM stopped."""
    h.ok("vm", "create", "--memory", MEM, "queued")
    try:
        h.ok("vm", "start", "queued")
        pid = h.state("queued")["pid"]
        lock = os.path.join(h.root, "vm", "queued", "lock")
        fd = os.open(lock, os.O_RDWR | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            p = subprocess.Popen([HULL, "--root", h.root, "vm", "pause", "queued"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 env=h.env)
            deadline = time.monotonic() + 120
            while not _waits_for_lock(p.pid, lock):
                assert p.poll() is None and time.monotonic() < deadline, p.stderr.read()
                time.sleep(0.05)
            os.kill(pid, signal.SIGKILL)
            while running(pid):
                assert time.monotonic() < deadline
                time.sleep(0.05)
        finally:
            os.close(fd)
        out, err = p.communicate(timeout=120)
        assert p.returncode == 1, (out, err)
        assert err == "hull: vm pause: pause queued: VM is stopped, not running\n", err
        assert h.state("queued")["status"] == "stopped"
    finally:
        h.ok("vm", "delete", "--force", "queued")
    assert_gone(h, "queued")


def test_a_size_is_one_rule_for_vm_and_sandbox(h):
    """--memory 1.5G was taken by `hull sandbox run` and refused by `hull vm`
    (which had a size parser of its own); both now read sizes with
    hull_parse_size: a fraction of a unit is taken, exactly, by both, and an
    exponent or a fraction of a byte is refused by both, by name."""
    h.ok("vm", "create", "--memory", "1.5G", "frac")
    try:
        assert h.state("frac")["memory_mb"] == 1536
    finally:
        h.ok("vm", "delete", "frac")
    for bad in ("1e3M", "1.5", "1.5B", ".5M"):
        p = h.run("vm", "create", "--memory", bad, "never")
        assert p.returncode == 1 and \
            p.stderr.decode().startswith(f"hull: vm create: --memory {bad}: not a size"), p.stderr
        p = h.run("sandbox", "run", "--memory", bad, "--", "true")
        assert p.returncode == 125 and \
            f"--memory: '{bad}' is not a size" in p.stderr.decode(), p.stderr
    assert h.run("vm", "state", "never").returncode != 0
