"""Nothing of the host's command line, environment or paths is visible from
inside: every process a sandbox or container can see, hull's own forks
included (the sandbox's init stays as pid 1 and never execs), shows neither
hull's argv nor its environment in /proc/<pid>/{cmdline,environ,comm,stat,
status}, and /proc/1/exe (the hull binary) cannot be followed.

Each test puts a unique token in every host path and in hull's (or
hulld's) own environment, and looks for it from inside."""
import os
import uuid
from pathlib import Path

import pytest

from hullrt import started
from sandboxlib import Sandbox

# Every process's view: pid, then each file as text (or ERR when refused).
SCAN = r"""
for p in /proc/[0-9]*; do
  for f in cmdline environ comm stat status; do
    printf '%s/%s: ' "$p" "$f"; tr '\0' ' ' < $p/$f 2>/dev/null || printf 'ERR'; echo
  done
  printf '%s/exe: ' "$p"; readlink $p/exe 2>/dev/null || echo ERR
done
"""


def token():
    return "leaktok" + uuid.uuid4().hex[:12]


def assert_hidden(out, tok, *host_strings):
    assert "/proc/1/cmdline" in out, out
    for s in (tok, *host_strings):
        assert s not in out, f"{s!r} visible inside:\n{out}"
    # The sandbox's init is a fork of hull: a fixed title, nothing else.
    line = next(l for l in out.splitlines() if l.startswith("/proc/1/cmdline: "))
    assert line.split(": ", 1)[1].strip() in ("hull-init", "")
    assert "/proc/1/exe: ERR" in out, out
    assert "/proc/1/environ: ERR" in out or "/proc/1/environ: \n" in out + "\n"


@pytest.mark.parametrize("iso", ["container", "process"])
def test_sandbox_run_shows_nothing_of_hulls_command_line(tmp_path, iso):
    tok = token()
    d = tmp_path / tok
    d.mkdir()
    (d / "in.txt").write_text("in\n")
    (d / "stdin.txt").write_text("")
    sb = Sandbox()
    env_before = os.environ.get("HULL_LEAK_PROBE")
    os.environ["HULL_LEAK_PROBE"] = tok  # hull's own environment
    try:
        r = sb("--isolation", iso, "--copy-in", f"{d / 'in.txt'}:/tmp/in.txt", "--stdin", d / "stdin.txt",
               "--copy-out", f"/tmp/none:{d / 'out.txt'}", cmd=["sh", "-c", SCAN])
    finally:
        if env_before is None:
            del os.environ["HULL_LEAK_PROBE"]
        else:
            os.environ["HULL_LEAK_PROBE"] = env_before
    assert r.verdict == "ok", r
    assert_hidden(r.out, tok, str(tmp_path), "--copy-in", "sandbox run")


@pytest.fixture
def hulld_with_token(tmp_path):
    from hulldlib import Hulld  # needs this directory's conftest, as every test here has
    tok = token()
    base = tmp_path / tok
    base.mkdir()
    h = Hulld(base)
    Path(h.state).mkdir()
    h.user = h.token("user", "acme")
    os.environ["HULL_LEAK_PROBE"] = tok
    try:
        h.start()
    finally:
        del os.environ["HULL_LEAK_PROBE"]
    yield h, tok
    assert h.stop() == 0, h.log.read_text()


def test_hulld_run_shows_nothing_of_the_workers_command_line(hulld_with_token):
    h, tok = hulld_with_token
    r = h.request("POST", "/v1/runs", {"cmd": ["sh", "-c", SCAN],
                                       "limits": {"cpu_time": "60s", "wall_time": "120s"}},
                  h.user)
    assert r.status == 200 and r.json["verdict"] == "ok", r
    assert_hidden(r.json["stdout"], tok, "--helper", "--state-dir", h.state)


def test_hulld_sandbox_exec_shows_nothing_of_the_keepers_command_line(hulld_with_token):
    """A process exec'd into a long-lived sandbox is a fork of hulld's helper
    until it execs, visible in the sandbox's pid namespace: a watcher left
    running there by a first exec reads every command line while more execs
    join, and must never see the helper's."""
    h, tok = hulld_with_token
    generous = {"cpu_time": "60s", "wall_time": "120s"}
    r = h.request("POST", "/v1/sandboxes", {"lifetime": "5m", "limits": {"pids": 64}}, h.user)
    assert r.status == 201, r
    sid = r.json["id"]
    # The patterns are written so that the watcher's own command line
    # (which the scans read too) does not match them.
    watch = ("(while :; do cat /proc/[0-9]*/cmdline 2>/dev/null; echo; done | tr '\\0' ' ' | "
             f"grep -a -m1 -e '--hel[p]er' -e '--state-di[r]' -e '{tok[:-1]}[{tok[-1]}]' "
             "> /tmp/seen) >/dev/null 2>&1 &")
    try:
        ex = h.request("POST", f"/v1/sandboxes/{sid}/exec",
                       {"cmd": ["sh", "-c", watch], "limits": generous}, h.user)
        assert ex.status == 200 and ex.json["verdict"] == "ok", ex
        for _ in range(30):
            ex = h.request("POST", f"/v1/sandboxes/{sid}/exec",
                           {"cmd": ["sh", "-c", SCAN], "limits": generous}, h.user)
            assert ex.status == 200 and ex.json["verdict"] == "ok", ex
            for s in (tok, "--helper", "--state-dir", h.state):
                assert s not in ex.json["stdout"], f"{s!r} visible inside:\n{ex.json['stdout']}"
        ex = h.request("POST", f"/v1/sandboxes/{sid}/exec",
                       {"cmd": ["cat", "/tmp/seen"], "limits": generous}, h.user)
        assert ex.json["verdict"] == "ok" and ex.json["stdout"] == "", ex
    finally:
        assert h.request("DELETE", f"/v1/sandboxes/{sid}", token=h.user).status in (200, 204)


def test_created_container_init_shows_nothing_of_hulls_command_line(hull, bundle):
    """`hull create`: until `start`, the init is a fork of hull waiting in
    the container; a process `exec`'d there must not read the host's
    `hull --root ... create --bundle ...` from /proc/1/cmdline."""
    with started(hull, bundle, start=False) as (c, pid):
        r = hull("exec", c, "sh", "-c", SCAN)
        assert r.returncode == 0, r
        out = r.stdout
        for s in (str(hull.root), str(bundle.path), "--bundle", "create"):
            assert s not in out, f"{s!r} visible inside:\n{out}"
        line = next(l for l in out.splitlines() if l.startswith("/proc/1/cmdline: "))
        assert line.split(": ", 1)[1].strip() == "hull-init", out
