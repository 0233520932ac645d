"""Snapshots end to end: state survives, one snapshot restores into several
VMs with their own writable layers, damaged or tampered files are refused
and leave nothing, templates give warm starts."""
import json
import os
import shutil
import struct
import subprocess
import time

import pytest

from test_vm_lib import h  # noqa: F401 (the fixture)
from test_vm_lib import HULL, MEM, Hull, assert_gone, new_root, qemu_pids, running, sha256, skip_unless_ready


@pytest.fixture(scope="module")
def snap(h, tmp_path_factory):
    """A VM with a file written and a process running, saved."""
    h.ok("vm", "create", "--memory", MEM, "origin")
    h.ok("vm", "start", "origin")
    h.sh("origin", "echo before-snapshot > /root/state.txt")
    # A process that keeps proving it runs: it rewrites a counter.
    p = h.run("vm", "exec", "--detach", "origin", "--", "sh", "-c",
              "i=0; while true; do i=$((i+1)); echo $i > /tmp/tick; sleep 0.2; done", check=True)
    assert int(p.stdout) > 0
    time.sleep(1)
    path = str(tmp_path_factory.mktemp("snap") / "origin.snap")
    h.ok("vm", "snapshot", "origin", path)
    # The source VM goes on running after the snapshot.
    assert h.state("origin")["status"] == "running"
    assert h.sh("origin", "cat /root/state.txt") == "before-snapshot\n"
    yield path
    h.ok("vm", "delete", "--force", "origin")
    assert_gone(h, "origin")


def ticks(h, vid):
    return int(h.sh(vid, "cat /tmp/tick"))


def test_restore_keeps_files_and_processes(h, snap):
    h.ok("vm", "restore", snap, "copy1")
    st = h.state("copy1")
    assert st["status"] == "running" and st["restored_from"] == snap
    assert st["pid"] in qemu_pids("copy1")
    assert h.sh("copy1", "cat /root/state.txt") == "before-snapshot\n"
    first = ticks(h, "copy1")
    time.sleep(1.5)
    assert ticks(h, "copy1") > first, "the process started before the snapshot is not running"
    h.ok("vm", "delete", "--force", "copy1")
    assert_gone(h, "copy1")


def test_one_snapshot_into_several_vms(h, snap):
    for vid in ("twin1", "twin2"):
        h.ok("vm", "restore", snap, vid)
    h.sh("twin1", "echo only-in-twin1 > /root/own.txt")
    assert h.sh("twin1", "cat /root/own.txt") == "only-in-twin1\n"
    assert h.exec("twin2", "cat", "/root/own.txt").returncode != 0
    # Fresh entropy each: the RNG state was not cloned.
    r1, r2 = h.sh("twin1", "head -c 16 /dev/urandom | od -An -tx1"), h.sh("twin2", "head -c 16 /dev/urandom | od -An -tx1")
    assert r1 != r2
    # And the host's clock, not the snapshot's.
    assert abs(int(h.sh("twin2", "date +%s")) - time.time()) < 30
    for vid in ("twin1", "twin2"):
        h.ok("vm", "delete", "--force", vid)
        assert_gone(h, vid)


def damaged(src, dst, how):
    data = bytearray(open(src, "rb").read())
    (mlen,) = struct.unpack_from("<I", data, 12)
    if how == "payload":
        data[80 + 8192 + len(data[80 + 8192:]) // 2] ^= 0x40
    elif how == "manifest":
        m = data[80:80 + mlen].replace(b'"memory_mb":128', b'"memory_mb":256')
        assert m != data[80:80 + mlen]
        data[80:80 + mlen] = m
    elif how == "truncated":
        data = data[: len(data) * 2 // 3]
    elif how == "signature":
        data[20] = ord("0") if data[20] != ord("0") else ord("1")
    open(dst, "wb").write(data)


@pytest.mark.parametrize("how", ["payload", "manifest", "truncated", "signature"])
def test_damaged_snapshot_is_refused(h, snap, tmp_path, how):
    bad = str(tmp_path / f"{how}.snap")
    damaged(snap, bad, how)
    p = h.run("vm", "restore", bad, "bad")
    assert p.returncode != 0
    err = p.stderr.decode()
    assert err.startswith("hull: vm restore:")
    assert {"payload": "digest does not match", "manifest": "signature does not match",
            "truncated": "truncated", "signature": "signature does not match"}[how] in err, err
    assert_gone(h, "bad")


def test_not_a_snapshot(h, tmp_path):
    junk = tmp_path / "junk"
    junk.write_bytes(b"not a snapshot at all" * 10)
    p = h.run("vm", "restore", str(junk), "junk")
    assert p.returncode != 0 and b"not a hull snapshot" in p.stderr
    p = h.run("vm", "restore", str(tmp_path / "missing"), "junk")
    assert p.returncode != 0
    assert_gone(h, "junk")


def test_snapshot_of_paused_vm_stays_paused(h, tmp_path):
    h.ok("vm", "create", "--memory", MEM, "pz")
    h.ok("vm", "start", "pz")
    h.ok("vm", "pause", "pz")
    h.ok("vm", "snapshot", "pz", str(tmp_path / "pz.snap"))
    assert h.state("pz")["status"] == "paused"
    h.ok("vm", "resume", "pz")
    assert h.sh("pz", "echo ok") == "ok\n"
    p = h.run("vm", "restore", str(tmp_path / "pz.snap"), "pz")
    assert p.returncode != 0 and b"already exists" in p.stderr
    h.ok("vm", "delete", "--force", "pz")
    assert_gone(h, "pz")


def test_template_warm_start(h, tmp_path):
    cache = str(tmp_path / "cache")
    # A private cache: the first create must boot cold and save the template.
    env = dict(h.env, HULL_VM_CACHE=cache)
    hc = Hull(h.root)
    hc.env = env
    hc.ok("vm", "create", "--memory", MEM, "--from-template", "warm1")
    hc.ok("vm", "start", "warm1", timeout=600)  # create only creates
    assert hc.state("warm1").get("restored_from") is None
    templates = [f for f in os.listdir(os.path.join(cache, "templates")) if f.endswith(".snap")]
    assert len(templates) == 1
    hc.ok("vm", "create", "--memory", MEM, "--from-template", "warm2")
    hc.ok("vm", "start", "warm2", timeout=600)  # create only creates
    st = hc.state("warm2")
    assert st["status"] == "running"
    assert st["restored_from"].endswith(templates[0])
    assert hc.sh("warm2", "echo warm") == "warm\n"
    # A damaged template is dropped and rebuilt, not restored.
    tpath = os.path.join(cache, "templates", templates[0])
    damaged(tpath, tpath, "payload")
    hc.ok("vm", "create", "--memory", MEM, "--from-template", "warm3")
    hc.ok("vm", "start", "warm3", timeout=600)  # create only creates
    assert hc.state("warm3").get("restored_from") is None
    assert hc.sh("warm3", "echo rebuilt") == "rebuilt\n"
    # Another size is another template.
    for vid in ("warm1", "warm2", "warm3"):
        hc.ok("vm", "delete", "--force", vid)
        assert_gone(hc, vid)


def test_template_ram_file_clones_are_independent_and_tamper_evident(h, tmp_path):
    """A template's RAM is a file beside its snapshot (not in the stream);
    clones map a sealed, digest-checked copy: writes in one are seen by
    neither the other nor the template, and a changed RAM file is refused."""
    cache = str(tmp_path / "cache")
    hc = Hull(h.root)
    hc.env = dict(h.env, HULL_VM_CACHE=cache)
    hc.ok("vm", "create", "--memory", MEM, "--from-template", "maker")
    hc.ok("vm", "start", "maker", timeout=600)
    tdir = os.path.join(cache, "templates")
    snapf = [f for f in os.listdir(tdir) if f.endswith(".snap")][0]
    ram = os.path.join(tdir, snapf + ".ram")
    st = os.stat(ram)
    assert st.st_mode & 0o777 == 0o600 and st.st_uid == 0
    assert st.st_size == int(MEM.rstrip("M")) << 20
    with open(os.path.join(tdir, snapf), "rb") as f:
        hdr = f.read(80)
        (mlen,) = struct.unpack("<I", hdr[12:16])
        manifest = json.loads(f.read(mlen))
    assert manifest["ram"]["size"] == st.st_size and len(manifest["ram"]["sha256"]) == 64
    before = open(ram, "rb").read()
    for vid in ("clone1", "clone2"):
        hc.ok("vm", "create", "--memory", MEM, "--from-template", vid)
        hc.ok("vm", "start", vid, timeout=600)
        assert hc.state(vid)["restored_from"].endswith(snapf)
        maps = open(f"/proc/{hc.state(vid)['pid']}/maps").read()
        assert "memfd:hull-guest-ram" in maps
    hc.sh("clone1", "echo only-in-clone1 > /root/own.txt; echo mem1 > /tmp/m")
    assert hc.sh("clone1", "cat /root/own.txt /tmp/m") == "only-in-clone1\nmem1\n"
    for other in ("clone2", "maker"):
        assert hc.exec(other, "cat", "/root/own.txt").returncode != 0
        assert hc.exec(other, "cat", "/tmp/m").returncode != 0
    hc.sh("clone2", "echo mem2 > /tmp/m")
    assert hc.sh("clone1", "cat /tmp/m") == "mem1\n"
    # Nothing the clones or the maker did reached the template's RAM.
    assert open(ram, "rb").read() == before
    # A changed RAM file is refused: the VM boots cold, the template is remade.
    with open(ram, "r+b") as f:
        f.seek(st.st_size // 2)
        b = f.read(1)
        f.seek(st.st_size // 2)
        f.write(bytes([b[0] ^ 0xFF]))
    hc.ok("vm", "create", "--memory", MEM, "--from-template", "clone3")
    p = hc.run("vm", "start", "clone3", timeout=600)
    assert p.returncode == 0, p.stderr
    assert b"does not match" in p.stderr
    assert hc.state("clone3").get("restored_from") is None
    assert hc.sh("clone3", "echo cold") == "cold\n"
    for vid in ("maker", "clone1", "clone2", "clone3"):
        hc.ok("vm", "delete", "--force", vid)
        assert_gone(hc, vid)


def keepers():
    """pids of template RAM keepers (ramkeeper.c) on the host."""
    out = []
    for d in os.listdir("/proc"):
        try:
            if d.isdigit() and open(f"/proc/{d}/comm").read().strip() == "hull-ramkeeper" and running(int(d)):
                out.append(int(d))
        except OSError:
            pass
    return out


def memfd_of(pid, fd):
    """(dev, ino) of pid's fd when it is a guest-RAM memfd, else None."""
    try:
        if "memfd:hull-guest-ram" not in os.readlink(f"/proc/{pid}/fd/{fd}"):
            return None
        st = os.stat(f"/proc/{pid}/fd/{fd}")
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def keeper_memfds(pid):
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return set()
    return {m for m in (memfd_of(pid, int(fd)) for fd in fds) if m}


def wait_until(cond, what, limit=60):
    """Poll cond (generous limit: a guard against hanging, not a timing check)."""
    deadline = time.time() + limit
    while not cond():
        assert time.time() < deadline, what
        time.sleep(0.1)


def test_template_clones_share_one_sealed_ram_memfd_and_its_keeper_goes(h, tmp_path):
    """Clones of a template map one sealed memfd, handed out by a keeper:
    each clone's writes stay its own, the shared pages are never written,
    and the keeper leaves with the last clone; one killed outright leaves a
    socket that vm delete removes."""
    import fcntl
    import hashlib
    import signal
    cache = str(tmp_path / "cache")
    hc = Hull(h.root)
    hc.env = dict(h.env, HULL_VM_CACHE=cache)
    before_keepers = set(keepers())
    hc.ok("vm", "create", "--memory", MEM, "--from-template", "kmaker")
    hc.ok("vm", "start", "kmaker", timeout=600)
    hc.ok("vm", "delete", "--force", "kmaker")
    tdir = os.path.join(cache, "templates")
    for vid in ("k1", "k2", "k3"):
        hc.ok("vm", "create", "--memory", MEM, "--from-template", vid)
        hc.ok("vm", "start", vid, timeout=600)
        assert hc.state(vid)["restored_from"]
    pids = {vid: hc.state(vid)["pid"] for vid in ("k1", "k2", "k3")}
    shared = {memfd_of(p, 5) for p in pids.values()}
    assert len(shared) == 1 and None not in shared, f"clones do not share one RAM memfd: {shared}"
    mine = [k for k in keepers() if k not in before_keepers and keeper_memfds(k) & shared]
    assert len(mine) == 1, f"expected one keeper holding the memfd, got {mine}"
    socks = [f for f in os.listdir(tdir) if f.startswith("ram-") and f.endswith(".sock")]
    assert len(socks) == 1
    st = os.stat(os.path.join(tdir, socks[0]))
    assert st.st_uid == 0 and st.st_mode & 0o077 == 0
    # Sealed against writes, growth, shrinking and further seals.
    F_GET_SEALS = 1034
    with open(f"/proc/{pids['k1']}/fd/5", "rb") as f:
        assert fcntl.fcntl(f.fileno(), F_GET_SEALS) == 0x1 | 0x2 | 0x4 | 0x8
        digest = hashlib.sha256(f.read()).hexdigest()
    # Not writable through any fd: a write is refused by the seal.
    w = os.open(f"/proc/{pids['k1']}/fd/5", os.O_RDWR)
    try:
        with pytest.raises(PermissionError):
            os.pwrite(w, b"x", 4096)
    finally:
        os.close(w)
    # Clones are independent: each one's memory writes are its own.
    hc.sh("k1", "echo one > /tmp/m; dd if=/dev/urandom of=/tmp/big bs=1M count=8 2>/dev/null")
    hc.sh("k2", "echo two > /tmp/m")
    assert hc.sh("k1", "cat /tmp/m") == "one\n" and hc.sh("k2", "cat /tmp/m") == "two\n"
    assert hc.exec("k3", "cat", "/tmp/m").returncode != 0
    with open(f"/proc/{pids['k3']}/fd/5", "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == digest, "the shared template RAM was written"
    # The keeper stays while a clone runs, and goes with the last one.
    keeper = mine[0]
    for vid in ("k1", "k2"):
        hc.ok("vm", "delete", "--force", vid)
        assert_gone(hc, vid)
    assert running(keeper), "keeper left while a clone still maps its memfd"
    hc.ok("vm", "delete", "--force", "k3")
    assert_gone(hc, "k3")
    wait_until(lambda: not running(keeper), "keeper still running after its last clone")
    assert not [f for f in os.listdir(tdir) if f.endswith(".sock")], "keeper socket left"
    # A keeper killed outright leaves its socket; vm delete removes it, and
    # the next clone starts a new keeper.
    hc.ok("vm", "create", "--memory", MEM, "--from-template", "k4")
    hc.ok("vm", "start", "k4", timeout=600)
    killed = [k for k in keepers() if k not in before_keepers]
    assert len(killed) == 1
    os.kill(killed[0], signal.SIGKILL)
    wait_until(lambda: not running(killed[0]), "killed keeper still there")
    assert [f for f in os.listdir(tdir) if f.endswith(".sock")]
    assert hc.sh("k4", "echo still") == "still\n"
    hc.ok("vm", "delete", "--force", "k4")
    assert_gone(hc, "k4")
    assert not [f for f in os.listdir(tdir) if f.endswith(".sock")], "socket of a killed keeper left"
    hc.ok("vm", "create", "--memory", MEM, "--from-template", "k5")
    hc.ok("vm", "start", "k5", timeout=600)
    assert hc.state("k5")["restored_from"] and len([k for k in keepers() if k not in before_keepers]) == 1
    assert hc.sh("k5", "echo warm") == "warm\n"
    hc.ok("vm", "delete", "--force", "k5")
    assert_gone(hc, "k5")
    wait_until(lambda: not [k for k in keepers() if k not in before_keepers], "keeper left")
    assert not [f for f in os.listdir(tdir) if f.endswith(".sock")], "keeper socket left"


def test_a_failed_template_restore_keeps_the_template(h, tmp_path):
    """A restore that fails for a reason of its own (here an I/O error on
    the template's first open, injected by strace) boots the VM cold and
    leaves the template as it was; only a template that is no longer whole
    is replaced, and then by a whole one."""
    if not shutil.which("strace"):
        pytest.skip("strace missing")
    cache = str(tmp_path / "cache")
    hc = Hull(h.root)
    hc.env = dict(h.env, HULL_VM_CACHE=cache)
    hc.ok("vm", "create", "--memory", MEM, "--from-template", "tmaker")
    hc.ok("vm", "start", "tmaker", timeout=600)
    tdir = os.path.join(cache, "templates")
    snapf = [f for f in os.listdir(tdir) if f.endswith(".snap")][0]
    tpath = os.path.join(tdir, snapf)
    before = {f: (os.stat(os.path.join(tdir, f)).st_ino, sha256(os.path.join(tdir, f)))
              for f in (snapf, snapf + ".ram")}
    hc.ok("vm", "create", "--memory", MEM, "--from-template", "tfail")
    p = subprocess.run(["strace", "-qq", "-o", "/dev/null", "-P", tpath, "-e", "trace=openat",
                        "-e", "inject=openat:error=EIO:when=1",
                        HULL, "--root", hc.root, "vm", "start", "tfail"],
                       capture_output=True, timeout=600, env=hc.env)
    assert p.returncode == 0, p.stderr
    assert b"Input/output error" in p.stderr, p.stderr
    assert hc.state("tfail").get("restored_from") is None
    assert hc.sh("tfail", "echo cold") == "cold\n"
    after = {f: (os.stat(os.path.join(tdir, f)).st_ino, sha256(os.path.join(tdir, f)))
             for f in (snapf, snapf + ".ram")}
    assert after == before, "the template was removed or remade after a restore that failed"
    hc.ok("vm", "create", "--memory", MEM, "--from-template", "twarm")
    hc.ok("vm", "start", "twarm", timeout=600)
    assert hc.state("twarm")["restored_from"] == tpath
    # A template that is no longer whole is replaced by a whole one.
    damaged(tpath, tpath, "payload")
    hc.ok("vm", "create", "--memory", MEM, "--from-template", "trepl")
    p = hc.run("vm", "start", "trepl", timeout=600)
    assert p.returncode == 0 and b"is replaced" in p.stderr, p.stderr
    assert hc.state("trepl").get("restored_from") is None
    assert not [f for f in os.listdir(tdir) if ".tmp." in f]
    hc.ok("vm", "create", "--memory", MEM, "--from-template", "twarm2")
    hc.ok("vm", "start", "twarm2", timeout=600)
    assert hc.state("twarm2")["restored_from"] == tpath
    for vid in ("tmaker", "tfail", "twarm", "trepl", "twarm2"):
        hc.ok("vm", "delete", "--force", vid)
        assert_gone(hc, vid)
