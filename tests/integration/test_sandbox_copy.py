"""Data into and out of `hull sandbox run`: --stdin, --copy-in, --copy-out,
checked against what the host's own files and disks show afterwards."""
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from sandboxlib import HULL, Sandbox

MiB = 1024 * 1024
LEVELS = ["process", "container"]


@pytest.fixture
def sb():
    return Sandbox()


@pytest.fixture
def open_tmp():
    """A directory the sandbox's root can reach (pytest's are 0700)."""
    d = Path(tempfile.mkdtemp(prefix="hull-sbcopy-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d)


# ---- --stdin ----------------------------------------------------------------


@pytest.mark.asan
@pytest.mark.parametrize("iso", LEVELS)
def test_stdin_file_is_not_the_host_file(sb, open_tmp, iso):
    """fd 0 is a pipe hull feeds: the sandbox neither sees the host path nor
    can reopen the host file for writing through /proc/self/fd/0, even when
    the file is writable by everyone."""
    f = open_tmp / "input.txt"
    f.write_bytes(b"original\n")
    f.chmod(0o666)
    script = ("readlink /proc/self/fd/0; stat -L -c %F /proc/self/fd/0; "
              "(echo x >> /proc/self/fd/0) 2>/dev/null; (: > /proc/self/fd/0) 2>/dev/null; "
              "(truncate -s 0 /proc/self/fd/0) 2>/dev/null; cat")
    r = sb("--isolation", iso, "--stdin", f, cmd=["sh", "-c", script])
    assert r.verdict == "ok", r
    link, kind, *rest = r.out.splitlines()
    assert str(open_tmp) not in r.out and link.startswith("pipe:"), r
    assert kind == "fifo", r
    # The pipe is the program's own (as runc hands a process its stdio), so
    # what it writes into it through /proc may come back to it; never to the
    # host file.
    assert rest in (["original"], ["original", "x"]), r
    assert f.read_bytes() == b"original\n"


@pytest.mark.parametrize("iso", LEVELS)
def test_stdin_file_larger_than_a_pipe_arrives_intact(sb, open_tmp, iso):
    data = os.urandom(3 * MiB + 12345)
    f = open_tmp / "big.bin"
    f.write_bytes(data)
    r = sb("--isolation", iso, "--stdin", f, "--cpu-time", "30s", "--wall-time", "120s",
           cmd=["sh", "-c", "sha256sum; echo done >&2"])
    assert r.verdict == "ok", r
    assert r.out.split()[0] == hashlib.sha256(data).hexdigest(), r


def test_stdin_program_that_stops_reading(sb, open_tmp):
    """A program that closes its stdin early ends the feeding, not hull."""
    f = open_tmp / "big.bin"
    f.write_bytes(b"y\n" * (2 * MiB))
    r = sb("--stdin", f, cmd=["sh", "-c", "head -c 4; exec 0<&-; sleep 0.2; echo end"])
    assert r.verdict == "ok" and r.rc == 0 and r.out == "y\ny\nend\n", r


def test_stdin_endless_source(sb):
    r = sb("--stdin", "/dev/zero", cmd=["head", "-c", "100000"])
    assert r.verdict == "ok" and len(r.j["stdout_base64"]) > 0, r


# ---- --copy-in lands in the sandbox's /tmp and nowhere else ------------------


def snapshot(root):
    """Every entry under root with its type, owner, mode and content."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = Path(dirpath) / n
            st = p.lstat()
            data = p.read_bytes() if p.is_file() and not p.is_symlink() else None
            out[str(p.relative_to(root))] = (st.st_mode, st.st_uid, st.st_gid, data,
                                             os.readlink(p) if p.is_symlink() else None)
    return out


@pytest.mark.parametrize("iso", LEVELS + ["microvm"])
@pytest.mark.parametrize("target", ["/", "etc", "/etc"])
def test_copy_in_through_a_rootfs_tmp_symlink_is_refused(sb, open_tmp, tmp_path_factory, iso,
                                                          target):
    """A --rootfs whose tmp is a symlink would carry the sandbox's /tmp, and
    the supervisor's copy-ins, into the user's rootfs on the host."""
    from conftest import cached_rootfs
    root = open_tmp / "rootfs"
    shutil.copytree(cached_rootfs(tmp_path_factory), root, symlinks=True)
    (root / "tmp").rmdir()
    (root / "tmp").symlink_to(target)
    f = open_tmp / "payload"
    f.write_text("evil:x:0:0::/:/bin/sh\n")
    before = snapshot(root)
    r = sb("--isolation", iso, "--rootfs", root, "--copy-in", f"{f}:/tmp/etc/passwd",
           "--copy-in", f"{f}:/tmp/new/file", cmd=["/bin/true"])
    assert r.rc == 125 and r.j is None, r
    assert f"--rootfs: /tmp in {root} is a symlink" in r.stderr, r
    assert snapshot(root) == before


@pytest.mark.parametrize("iso", LEVELS)
def test_copy_in_with_a_rootfs_stays_in_the_sandbox_tmp(sb, open_tmp, tmp_path_factory, iso):
    from conftest import cached_rootfs
    root = open_tmp / "rootfs"
    shutil.copytree(cached_rootfs(tmp_path_factory), root, symlinks=True)
    f = open_tmp / "payload"
    f.write_text("data\n")
    before = snapshot(root)
    r = sb("--isolation", iso, "--rootfs", root, "--copy-in", f"{f}:/tmp/etc/passwd",
           cmd=["/bin/sh", "-c", "cat /tmp/etc/passwd; head -1 /etc/passwd"])
    assert r.verdict == "ok", r
    assert r.out == "data\nroot:x:0:0:root:/root:/bin/sh\n", r
    assert snapshot(root) == before


# ---- --copy-out: bounded, sparse, and each file's fate in the result ---------


def allocated(path):
    return os.stat(path).st_blocks * 512


@pytest.mark.parametrize("iso", LEVELS)
def test_copy_out_keeps_holes_as_holes(sb, open_tmp, iso):
    """A 4 GiB sparse file in a 64 MiB /tmp costs the host no disk: its
    holes stay holes and only its data is written."""
    big = open_tmp / "big"
    r = sb("--isolation", iso, "--copy-out", f"/tmp/big:{big}",
           cmd=["sh", "-c", "truncate -s 4G /tmp/big; echo tail >> /tmp/big; "
                "printf head | dd of=/tmp/big conv=notrunc status=none"])
    assert r.verdict == "ok", r
    (f,) = r.j["files"]
    assert (f["status"], f["size"]) == ("ok", 4 * 1024 ** 3 + 5), r
    assert f["bytes"] <= 2 * 65536, r  # two pages of data, at most
    assert big.stat().st_size == 4 * 1024 ** 3 + 5
    assert allocated(big) <= 1 * MiB, allocated(big)
    with open(big, "rb") as h:
        assert h.read(4) == b"head"
        h.seek(4 * 1024 ** 3)
        assert h.read() == b"tail\n"


@pytest.mark.asan
@pytest.mark.parametrize("iso", LEVELS)
def test_copy_out_max_cuts_then_refuses(sb, open_tmp, iso):
    """--copy-out-max counts the data written to the host by all copy-outs
    together: the file that reaches it is cut, the next is refused, and
    each one's fate is in the result and said once on stderr."""
    a, b, c = open_tmp / "a", open_tmp / "b", open_tmp / "c"
    r = sb("--isolation", iso, "--copy-out-max", "1M", "--copy-out", f"/tmp/a:{a}",
           "--copy-out", f"/tmp/b:{b}", "--copy-out", f"/tmp/c:{c}",
           cmd=["sh", "-c", "head -c 3000000 /dev/urandom > /tmp/a; echo x > /tmp/b; "
                "truncate -s 1G /tmp/c"])
    assert r.verdict == "ok", r
    fa, fb, fc = r.j["files"]
    assert (fa["status"], fa["size"], fa["bytes"]) == ("truncated", MiB, MiB), r
    assert "--copy-out-max" in fa["error"]
    assert a.stat().st_size == MiB
    assert fb["status"] == "refused" and "--copy-out-max" in fb["error"] and not b.exists(), r
    # Holes cost nothing: an all-hole file still comes out after the cap.
    assert (fc["status"], fc["size"], fc["bytes"]) == ("ok", 1024 ** 3, 0), r
    assert allocated(c) == 0
    notes = [l for l in r.stderr.splitlines() if "copy-out" in l]
    assert len(notes) == 2, r.stderr
    assert notes[0].startswith("hull: sandbox: copy-out truncated: /tmp/a: cut at 1048576"), notes
    assert notes[1].startswith("hull: sandbox: copy-out refused: /tmp/b: "), notes
    assert sorted(os.listdir(open_tmp)) == ["a", "c"]  # no temporary left beside them


def test_copy_out_default_cap_is_64m(sb, open_tmp):
    big = open_tmp / "big"
    r = sb("--tmp-size", "100M", "--copy-out", f"/tmp/big:{big}",
           cmd=["sh", "-c", "head -c 70M /dev/zero > /tmp/big"])
    assert r.verdict == "ok", r
    (f,) = r.j["files"]
    assert (f["status"], f["bytes"]) == ("truncated", 64 * MiB), r
    assert big.stat().st_size == 64 * MiB


@pytest.mark.parametrize("iso", LEVELS)
def test_copy_out_of_a_file_never_written(sb, open_tmp, iso):
    """A missing file is not a silent success: status missing in the
    result, one line on stderr in plain mode, the rest still copied."""
    got, never = open_tmp / "got", open_tmp / "never"
    r = sb("--isolation", iso, "--copy-out", f"/tmp/none:{never}", "--copy-out", f"/tmp/x:{got}",
           cmd=["sh", "-c", "echo x > /tmp/x"])
    fn, fx = r.j["files"]
    assert (fn["status"], fn["bytes"]) == ("missing", 0) and "No such file" in fn["error"], r
    assert (fx["status"], fx["size"], fx["bytes"]) == ("ok", 2, 2) and "error" not in fx, r
    assert not never.exists() and got.read_text() == "x\n"
    p = sb("--isolation", iso, "--copy-out", f"/tmp/none:{never}", cmd=["true"], json_out=False)
    lines = [l for l in p.stderr.splitlines() if "/tmp/none" in l]
    assert lines == ["hull: sandbox: copy-out missing: /tmp/none: none: No such file or "
                     "directory"], p.stderr


def test_copy_out_refused_kinds(sb, open_tmp):
    d, l = open_tmp / "d", open_tmp / "l"
    r = sb("--copy-out", f"/tmp/dir:{d}", "--copy-out", f"/tmp/link:{l}",
           cmd=["sh", "-c", "mkdir /tmp/dir; ln -s /etc/passwd /tmp/link"])
    fd, fl = r.j["files"]
    assert fd["status"] == "refused" and fl["status"] == "refused", r
    assert not d.exists() and not l.exists()


def test_copy_out_max_is_checked(sb):
    r = sb("--copy-out-max", "lots", cmd=["true"])
    assert r.rc == 125 and "--copy-out-max: 'lots' is not a size" in r.stderr, r


def test_copy_out_at_microvm_level(open_tmp):
    """The guest's agent sends only the data extents, at most
    --copy-out-max bytes of them: the same statuses as the other levels."""
    from test_vm_lib import HULL, skip_unless_ready
    skip_unless_ready()
    import json
    import subprocess
    big, a, b, never = (open_tmp / n for n in ("big", "a", "b", "never"))
    cp = subprocess.run(
        [HULL, "sandbox", "run", "--isolation", "microvm", "--json", "--cpu-time", "60s",
         "--wall-time", "120s", "--copy-out-max", "1M", "--copy-out", f"/tmp/big:{big}",
         "--copy-out", f"/tmp/a:{a}", "--copy-out", f"/tmp/b:{b}",
         "--copy-out", f"/tmp/none:{never}", "--", "sh", "-c",
         "truncate -s 4G /tmp/big; echo tail >> /tmp/big; "
         "head -c 3000000 /dev/urandom > /tmp/a; echo x > /tmp/b"],
        capture_output=True, text=True, timeout=600)
    assert cp.returncode == 0, cp.stderr
    j = json.loads(cp.stdout)
    assert j["verdict"] == "ok" and "error" not in j, j
    fbig, fa, fb, fn = j["files"]
    assert (fbig["status"], fbig["size"], fbig["bytes"]) == ("ok", 4 * 1024 ** 3 + 5, 5), j
    assert big.stat().st_size == 4 * 1024 ** 3 + 5 and allocated(big) <= 1 * MiB
    assert fa["status"] == "truncated" and fa["bytes"] == MiB - 5, j
    assert a.stat().st_size == MiB - 5
    assert fb["status"] == "refused" and not b.exists(), j
    assert fn["status"] == "missing" and not never.exists(), j
    assert [l for l in cp.stderr.splitlines() if "copy-out" in l] == [
        f"hull: sandbox: copy-out truncated: {fa['error']}",
        f"hull: sandbox: copy-out refused: {fb['error']}",
        f"hull: sandbox: copy-out missing: {fn['error']}"], cp.stderr


# ---- process level: each run its own host uid --------------------------------

UID_DIR = "/run/hull/sandbox-uids"
PROC_UID_BASE = 1000100000


def host_uid(pid):
    from sandboxlib import status_fields
    return int(status_fields(pid)["Uid"].split()[0])


def test_process_level_fork_bomb_does_not_starve_a_concurrent_run(open_tmp):
    """RLIMIT_NPROC counts per host uid: with one uid for every
    process-level run, a run that forks all it may makes a fork in any
    other run fail. Each run has a uid of its own."""
    from sandboxlib import cancel, pids_with_env, wait_until
    bomb = Sandbox()
    p, out, err = bomb.start("--isolation", "process", "--pids", "300", "--wall-time", "120s",
                             "--cpu-time", "60s", cmd=[
                                 "sh", "-c", "(while sleep 100 & do :; done) 2>/dev/null; "
                                 "exec sleep 100"])
    try:
        # Forked until the kernel said no: it holds its whole allowance.
        assert wait_until(lambda: len(pids_with_env(bomb.token)) >= 250, timeout=60), \
            len(pids_with_env(bomb.token))
        bomb_uid = host_uid(bomb.workload_pid())
        honest = Sandbox()
        r = honest("--isolation", "process", "--wall-time", "60s", "--cpu-time", "20s", cmd=[
            "sh", "-c", "for i in 1 2 3 4 5 6 7 8; do sh -c 'echo $0' $i & done; wait; id -u"])
        assert r.verdict == "ok", r
        lines = r.out.split()
        assert sorted(lines[:8]) == [str(i) for i in range(1, 9)], r
        uid = int(lines[8])
        assert uid != bomb_uid, (uid, bomb_uid)
        assert len(pids_with_env(bomb.token)) >= 250  # still at its limit meanwhile
        assert PROC_UID_BASE <= uid < PROC_UID_BASE + 1024
        assert PROC_UID_BASE <= bomb_uid < PROC_UID_BASE + 1024
    finally:
        cancel(p)
        bomb.finish(p, out, err, timeout=120)


def try_lock(slot):
    import fcntl
    fd = os.open(f"{UID_DIR}/{slot}", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


@pytest.mark.parametrize("how", ["exit", "sigkill"])
def test_process_level_uid_is_released_however_the_run_ends(how):
    """The claim on a run's uid is a lock the kernel drops with its last
    holder: after a normal end and after SIGKILL of the supervisor alike,
    the uid is free again (no stale claim to reclaim by hand)."""
    from sandboxlib import wait_until
    sb = Sandbox()
    p, out, err = sb.start("--isolation", "process", "--wall-time", "60s",
                           cmd=["sh", "-c", "sleep 30"])
    uid = host_uid(sb.workload_pid())
    slot = uid - PROC_UID_BASE
    assert not try_lock(slot), "a running run's uid must be claimed"
    if how == "sigkill":
        p.kill()
        p.wait()
        assert wait_until(lambda: not sb.leftovers(p.pid).get("processes"), timeout=20)
        assert try_lock(slot)
        sb(cmd=["true"])  # collects the killed run's state
        sb.assert_clean(p.pid)
        out.close()
        err.close()
    else:
        from sandboxlib import cancel
        cancel(p)
        sb.finish(p, out, err)
        assert try_lock(slot)


def test_process_level_long_lived_sandboxes_have_their_own_uids(tmp_path):
    """hulld's long-lived sandboxes at process level: one uid each for
    their lifetime (execs and put files included), free again after."""
    from hulldlib import Hulld, wait_until
    h = Hulld(tmp_path, "--tenant-sandboxes", "4")
    Path(h.state).mkdir(parents=True)
    t = h.token("user", "acme", allow="process-isolation")
    h.start()
    try:
        uids = []
        for _ in range(2):
            r = h.request("POST", "/v1/sandboxes", {"isolation": "process"}, t)
            assert r.status == 201, r
            sid = r.json["id"]
            assert h.request("PUT", f"/v1/sandboxes/{sid}/files/f", b"x", t,
                             raw=True).status == 200
            ex = h.request("POST", f"/v1/sandboxes/{sid}/exec",
                           {"cmd": ["sh", "-c", "id -u; id -g; stat -c %u /tmp/f"]}, t)
            assert ex.status == 200 and ex.json["verdict"] == "ok", ex
            uid, gid, owner = ex.json["stdout"].split()
            assert uid == gid == owner, ex.json
            uids.append((sid, int(uid)))
        (a, ua), (b, ub) = uids
        assert ua != ub and all(PROC_UID_BASE <= u < PROC_UID_BASE + 1024 for u in (ua, ub))
        assert not try_lock(ua - PROC_UID_BASE)
        for sid, _ in uids:
            assert h.request("DELETE", f"/v1/sandboxes/{sid}", token=t).status in (200, 204)
        assert wait_until(lambda: try_lock(ua - PROC_UID_BASE) and try_lock(ub - PROC_UID_BASE),
                          30)
    finally:
        assert h.stop() == 0, h.log.read_text()


def test_concurrent_process_level_runs_never_share_a_uid():
    """Started at once by separate hull processes, every run that overlaps
    another has a uid of its own (the claim is a lock, not a guess)."""
    sb = Sandbox()
    runs = [sb.start("--isolation", "process", "--wall-time", "120s",
                     cmd=["sh", "-c", "id -u; sleep 5"]) for _ in range(8)]
    from sandboxlib import pids_with_env, wait_until

    def live_uids():
        uids = set()
        for pid in pids_with_env(sb.token):
            try:
                uids.add(host_uid(pid))
            except (OSError, KeyError):
                pass  # gone meanwhile
        return uids
    # Eight distinct uids live at once: the runs overlapped.
    assert wait_until(lambda: len(live_uids()) >= 8, timeout=60), live_uids()
    results = [sb.finish(*r) for r in runs]
    uids = [int(r.out.strip()) for r in results]
    assert all(r.verdict == "ok" for r in results), results
    assert len(set(uids)) == 8, uids


def start_big_copy_out(sb, open_tmp, *opts, json_out=True):
    """A run whose 800 MiB copy-out is under way: (Popen, out, err, the
    host directory it copies into), or a skip if it ended unseen."""
    import time
    out = open_tmp / "out"
    out.mkdir()
    out.chmod(0o755)
    p, o, e = sb.start("--tmp-size", "900M", "--memory", "1G", "--copy-out-max", "1G",
                       "--copy-out", f"/tmp/big:{out}/big", *opts, json_out=json_out,
                       cmd=["sh", "-c", "head -c 800M /dev/urandom > /tmp/big"])

    def copying():
        if any(out.iterdir()):
            return True
        try:
            fds = os.listdir(f"/proc/{p.pid}/fd")
        except FileNotFoundError:
            return False
        for fd in fds:
            try:
                if os.readlink(f"/proc/{p.pid}/fd/{fd}").startswith(str(out)):
                    return True
            except OSError:
                pass
        return False

    deadline = time.monotonic() + 300
    while p.poll() is None and not copying() and time.monotonic() < deadline:
        time.sleep(0.005)
    if p.poll() is not None:
        pytest.skip("the copy ended before it was seen under way")
    return p, o, e, out


def test_a_run_killed_while_copying_out_leaves_no_partial_file(sb, open_tmp):
    """The copy is written unnamed (O_TMPFILE) and named only when whole: a
    SIGKILL while it is written leaves nothing in the caller's directory,
    where nothing would ever clean it up."""
    import signal
    p, o, e, out = start_big_copy_out(sb, open_tmp)
    p.send_signal(signal.SIGKILL)
    p.wait()
    o.close()
    e.close()
    assert list(out.iterdir()) == []
    # What the killed runner left of the sandbox itself: the cleanup verb's.
    r = subprocess.run([HULL, "sandbox", "cleanup"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("json_out", [True, False])
def test_sigterm_while_copying_out_stops_the_copy(sb, open_tmp, json_out):
    """SIGTERM is heard during the copy-out too, not once it is over: the
    copy stops, the destination is not made, the run is killed (exit 143),
    and the file says it was not copied."""
    import signal
    p, o, e, out = start_big_copy_out(sb, open_tmp, json_out=json_out)
    p.send_signal(signal.SIGTERM)
    r = sb.finish(p, o, e, json_out=json_out)
    assert list(out.iterdir()) == [] and r.rc == 128 + signal.SIGTERM, r
    if json_out:
        assert r.verdict == "killed", r
        (f,) = r.j["files"]
        assert f["status"] == "failed" and "cancelled" in f["error"], f
    else:
        assert "verdict=killed" in r.stderr, r
        assert "copy-out failed" in r.stderr and "cancelled" in r.stderr, r
