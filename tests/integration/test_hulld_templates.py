"""hulld: sandbox templates (docs/api.md, "Templates").

- POST /v1/templates {"sandbox", "name", "start_cmd"?, "ready_cmd"?,
  "ready_timeout"?} keeps a prepared sandbox's /tmp, limits and env as a
  template of the caller's tenant; GET lists and shows, DELETE removes it
  and its copy; another tenant's names are 404;
- POST /v1/sandboxes {"template": NAME} makes a sandbox with the files the
  source had (contents, modes, symlinks as links, sparse files sparse),
  owned by the new sandbox's user, its own copy; start_cmd runs as a
  background process and the 201 comes only once ready_cmd exited 0; a
  ready_cmd that never does leaves no sandbox;
- what the source's processes made is hostile: links are kept as links and
  never followed, fifos are skipped;
- templates outlive the sandbox they came from and hulld's restart."""
import concurrent.futures
import os
import subprocess
from pathlib import Path

import pytest

from hulldlib import HULLD, Hulld

pytestmark = pytest.mark.skipif(not os.path.exists(HULLD), reason="hulld not built")

PREPARE = r"""
set -e
mkdir -p /tmp/app/sub/deep
printf 'hello template\n' > /tmp/app/greeting.txt
head -c 1048576 /dev/urandom > /tmp/app/sub/random.bin
printf '#!/bin/sh\necho script ran "$@"\n' > /tmp/app/run.sh
chmod 0750 /tmp/app/run.sh
chmod 0700 /tmp/app/sub/deep
ln -s greeting.txt /tmp/app/link
ln -s /etc/shadow /tmp/app/shadow
ln -s ../../../../../etc/hostname /tmp/app/climb
truncate -s 4G /tmp/app/sparse
printf 'end' | dd of=/tmp/app/sparse bs=1 seek=4294967293 conv=notrunc 2>/dev/null
mkfifo /tmp/app/fifo
"""

SUMS = ("cd /tmp/app && sha256sum greeting.txt sub/random.bin run.sh && "
        "stat -c '%n %a %s' run.sh sub/deep sparse && readlink link shadow climb && "
        "du -k sparse | cut -f1 && tail -c 3 sparse && echo && "
        "(test -p fifo && echo fifo || echo nofifo) && ./run.sh x && echo FOO=$FOO && "
        "stat -c %u greeting.txt sub && id -u")


@pytest.fixture(scope="module")
def d(tmp_path_factory):
    h = Hulld(tmp_path_factory.mktemp("hulld"), "--tenant-sandboxes", "24")
    Path(h.state).mkdir(parents=True)
    h.tokens = {"user": h.token("user", "acme"), "other": h.token("user", "globex")}
    h.start()
    yield h
    rc = h.stop()
    assert rc == 0, h.log.read_text()
    assert h.leaks() == ([], [], [])


def call(d, method, path, body=None, who="user"):
    return d.request(method, path, body, d.tokens[who])


def create(d, who="user", **body):
    r = call(d, "POST", "/v1/sandboxes", body, who)
    assert r.status == 201, r
    return r.json


def exec_in(d, sid, script, who="user"):
    r = call(d, "POST", f"/v1/sandboxes/{sid}/exec",
             {"cmd": ["sh", "-c", script], "limits": {"wall_time": "60s"}}, who)
    assert r.status == 200, r
    return r.json


def delete(d, sid, who="user"):
    assert call(d, "DELETE", f"/v1/sandboxes/{sid}", who=who).status == 200


def copies(d):
    return sorted(os.listdir(Path(d.state) / "templates"))


def prepared(d, name, **extra):
    """A source sandbox prepared by commands, kept as template name, then
    deleted: the template must not need it."""
    src = create(d, limits={"tmp_size": "64M", "memory": "256M"}, env={"FOO": "bar"})
    try:
        res = exec_in(d, src["id"], PREPARE)
        assert res["exit_code"] == 0, res
        want = exec_in(d, src["id"], SUMS)
        assert want["exit_code"] == 0, want
        # A fifo is not kept: nothing to copy, and nothing to open.
        assert "\nfifo\n" in want["stdout"]
        want["stdout"] = want["stdout"].replace("\nfifo\n", "\nnofifo\n")
        r = call(d, "POST", "/v1/templates", {"sandbox": src["id"], "name": name, **extra})
        assert r.status == 201, r
        # The source goes on as it was (thawed after the copy).
        assert exec_in(d, src["id"], "echo alive")["stdout"] == "alive\n"
    finally:
        delete(d, src["id"])
    return r.json, want["stdout"]


def test_twenty_sandboxes_from_one_template_see_the_prepared_files(d):
    t, want = prepared(d, "app")
    assert t["name"] == "app" and t["isolation"] == "container"
    assert t["files"] == 4 and t["bytes"] >= 1048576 + 3
    assert t["sandbox"]["env"] == {"FOO": "bar"}
    assert t["sandbox"]["limits"]["tmp_size"] == "64M"
    lines = want.splitlines()
    assert "nofifo" in lines and "script ran x" in lines and "FOO=bar" in lines
    assert lines[-3] == lines[-2] == lines[-1], want  # owned by the sandbox's user
    assert int(lines[lines.index("/etc/shadow") + 2]) < 1024, want  # sparse: a few KiB

    def one(i):
        s = create(d, template="app", metadata={"i": str(i)})
        got = exec_in(d, s["id"], SUMS)
        # Its own copy: a change here is seen nowhere else.
        exec_in(d, s["id"], f"echo {i} >> /tmp/app/greeting.txt")
        return s, got

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        made = list(pool.map(one, range(20)))
    try:
        assert len({s["id"] for s, _ in made}) == 20
        for s, got in made:
            assert s["template"] == "app" and s["state"] == "running"
            assert got["exit_code"] == 0, got
            assert got["stdout"] == want, (got["stdout"], want)
        for i, (s, _) in enumerate(made):
            text = exec_in(d, s["id"], "cat /tmp/app/greeting.txt")["stdout"]
            assert text == f"hello template\n{i}\n"
    finally:
        for s, _ in made:
            delete(d, s["id"])
    assert call(d, "DELETE", "/v1/templates/app").status == 200
    assert copies(d) == []


def test_the_copy_on_the_host_holds_only_what_it_should(d):
    """What the source's processes made, as hulld keeps it: links stay
    links (to host paths too: never followed), no set-id bit, nothing
    outside the template's directory, only root may enter it."""
    src = create(d)
    try:
        exec_in(d, src["id"], "mkdir -p /tmp/h && echo x > /tmp/h/suid && chmod 6755 /tmp/h/suid && "
                              "ln -s / /tmp/h/root && ln -s /etc/shadow /tmp/h/shadow && "
                              "ln /tmp/h/suid /tmp/h/hard && mkfifo /tmp/h/fifo && "
                              "python3 -c 'import socket; socket.socket(socket.AF_UNIX)"
                              ".bind(\"/tmp/h/sock\")'")
        t = call(d, "POST", "/v1/templates", {"sandbox": src["id"], "name": "host"}).json
    finally:
        delete(d, src["id"])
    try:
        top = Path(d.state) / "templates"
        assert os.stat(top).st_mode & 0o777 == 0o700
        copy = top / t["id"] / "h"
        names = sorted(os.listdir(copy))
        assert names == ["hard", "root", "shadow", "suid"], names
        assert os.readlink(copy / "root") == "/" and os.readlink(copy / "shadow") == "/etc/shadow"
        for n in ("suid", "hard"):
            st = os.lstat(copy / n)
            assert st.st_mode & 0o7777 == 0o755 and st.st_uid == 0, oct(st.st_mode)
            assert (copy / n).read_text() == "x\n"
        s = create(d, template="host")
        try:
            out = exec_in(d, s["id"], "cd /tmp/h && stat -c '%n %a %F' * && readlink root shadow")
            assert out["stdout"].splitlines() == [
                "hard 755 regular file", "root 777 symbolic link", "shadow 777 symbolic link",
                "suid 755 regular file", "/", "/etc/shadow"], out
        finally:
            delete(d, s["id"])
    finally:
        assert call(d, "DELETE", "/v1/templates/host").status == 200


def test_the_template_api_and_tenancy(d):
    t, _ = prepared(d, "api-1", start_cmd=["sleep", "1000"])
    try:
        r = call(d, "GET", "/v1/templates")
        assert r.status == 200 and [x["name"] for x in r.json["templates"]] == ["api-1"]
        g = call(d, "GET", "/v1/templates/api-1")
        assert g.status == 200 and g.json == t and g.json["start_cmd"] == ["sleep", "1000"]
        assert copies(d) == [t["id"]]
        # Another tenant sees nothing of it, and cannot use or remove it.
        assert call(d, "GET", "/v1/templates", who="other").json["templates"] == []
        for m in ("GET", "DELETE"):
            assert call(d, m, "/v1/templates/api-1", who="other").status == 404
        r = call(d, "POST", "/v1/sandboxes", {"template": "api-1"}, who="other")
        assert r.status == 404, r
        # Nor keep its sandbox.
        s = create(d)
        try:
            r = call(d, "POST", "/v1/templates", {"sandbox": s["id"], "name": "x"}, who="other")
            assert r.status == 404, r
            r = call(d, "POST", "/v1/templates", {"sandbox": s["id"], "name": "api-1"})
            assert r.status == 409 and r.json["error"]["field"] == "name", r
        finally:
            delete(d, s["id"])
        assert copies(d) == [t["id"]]
    finally:
        assert call(d, "DELETE", "/v1/templates/api-1").status == 200
    assert call(d, "GET", "/v1/templates/api-1").status == 404
    assert call(d, "DELETE", "/v1/templates/api-1").status == 404
    r = call(d, "POST", "/v1/sandboxes", {"template": "api-1"})
    assert r.status == 404, r
    assert copies(d) == []


@pytest.mark.parametrize("body,field", [
    ({"name": "x"}, "sandbox"),
    ({"sandbox": "s-none", "name": ""}, "name"),
    ({"sandbox": "s-none", "name": ".x"}, "name"),
    ({"sandbox": "s-none", "name": "a/b"}, "name"),
    ({"sandbox": "s-none", "name": "x" * 64}, "name"),
    ({"sandbox": "s-none", "name": "x", "start_cmd": []}, "start_cmd"),
    ({"sandbox": "s-none", "name": "x", "ready_cmd": "true"}, "ready_cmd"),
    ({"sandbox": "s-none", "name": "x", "ready_timeout": "1h"}, "ready_timeout"),
    ({"sandbox": "s-none", "name": "x", "limits": {}}, "limits"),
])
def test_bad_template_requests_are_refused_by_name(d, body, field):
    r = call(d, "POST", "/v1/templates", body)
    assert r.status == 400 and r.json["error"]["field"] == field, r
    assert copies(d) == []


def test_a_sandbox_from_a_template_takes_only_lifetime_and_metadata(d):
    prepared(d, "narrow")
    try:
        for extra in ({"limits": {"memory": "1G"}}, {"image": "x"}, {"env": {"A": "b"}}):
            r = call(d, "POST", "/v1/sandboxes", {"template": "narrow", **extra})
            k = next(iter(extra))
            assert r.status == 400 and r.json["error"]["field"] == k, r
        r = call(d, "POST", "/v1/sandboxes", {"template": 7})
        assert r.status == 400 and r.json["error"]["field"] == "template", r
        s = create(d, template="narrow", lifetime="2h", metadata={"a": "b"})
        assert s["lifetime_s"] == 7200 and s["metadata"] == {"a": "b"}
        delete(d, s["id"])
    finally:
        assert call(d, "DELETE", "/v1/templates/narrow").status == 200


def test_start_and_ready_commands(d):
    src = create(d)
    try:
        exec_in(d, src["id"], "printf 'sleep 1; echo up > /tmp/ready; exec sleep 1000' > /tmp/s.sh")
        r = call(d, "POST", "/v1/templates", {
            "sandbox": src["id"], "name": "svc", "start_cmd": ["sh", "/tmp/s.sh"],
            "ready_cmd": ["test", "-e", "/tmp/ready"], "ready_timeout": "60s"})
        assert r.status == 201, r
        assert not exec_in(d, src["id"], "test -e /tmp/ready && echo y")["stdout"]
    finally:
        delete(d, src["id"])
    s = create(d, template="svc")
    try:
        # Ready before the 201: the start command had written its mark.
        assert exec_in(d, s["id"], "cat /tmp/ready")["stdout"] == "up\n"
        procs = call(d, "GET", f"/v1/sandboxes/{s['id']}/processes").json["processes"]
        assert [p["id"] for p in procs if p["state"] == "running"] == [s["start_process"]]
    finally:
        delete(d, s["id"])
    assert call(d, "DELETE", "/v1/templates/svc").status == 200


def test_a_template_that_never_gets_ready_makes_no_sandbox(d):
    src = create(d)
    try:
        r = call(d, "POST", "/v1/templates", {
            "sandbox": src["id"], "name": "never", "ready_cmd": ["sh", "-c", "echo no >&2; exit 3"],
            "ready_timeout": "1s"})
        assert r.status == 201, r
    finally:
        delete(d, src["id"])
    before = call(d, "GET", "/v1/sandboxes").json["sandboxes"]
    r = call(d, "POST", "/v1/sandboxes", {"template": "never"})
    assert r.status == 504 and r.json["error"]["code"] == "not_ready", r
    assert "exit code 3" in r.json["error"]["message"], r
    assert call(d, "GET", "/v1/sandboxes").json["sandboxes"] == before
    assert call(d, "DELETE", "/v1/templates/never").status == 200


def test_templates_survive_a_restart(tmp_path):
    h = Hulld(tmp_path)
    Path(h.state).mkdir(parents=True)
    h.tokens = {"user": h.token("user", "acme")}
    h.start()
    try:
        t, want = prepared(h, "kept")
        # Left by a crash mid-copy: swept at the next start.
        stray = Path(h.state) / "templates" / ".new-t-0000000000000000"
        (stray / "x").mkdir(parents=True)
        assert h.stop() == 0
        h.start()
        assert copies(h) == [t["id"]]
        g = call(h, "GET", "/v1/templates/kept")
        assert g.status == 200 and g.json == t
        s = create(h, template="kept")
        try:
            assert exec_in(h, s["id"], SUMS)["stdout"] == want
        finally:
            delete(h, s["id"])
        assert call(h, "DELETE", "/v1/templates/kept").status == 200
    finally:
        assert h.stop() == 0, h.log.read_text()
    assert h.leaks() == ([], [], [])
    # The host gained nothing but the state directory's own files.
    out = subprocess.run(["find", h.state, "-name", "random.bin"], capture_output=True, text=True)
    assert out.stdout == ""


def test_a_template_over_its_limit_or_quota_is_refused_and_leaves_nothing(tmp_path):
    h = Hulld(tmp_path, "--template-max", "1M", "--tenant-templates", "1")
    Path(h.state).mkdir(parents=True)
    h.tokens = {"user": h.token("user", "acme")}
    h.start()
    try:
        s = create(h)
        try:
            # 2 MiB of data: over; a 1 GiB sparse file holding 4 KiB: not.
            exec_in(h, s["id"], "head -c 2097152 /dev/zero > /tmp/big")
            r = call(h, "POST", "/v1/templates", {"sandbox": s["id"], "name": "big"})
            assert r.status == 413, r
            assert "--template-max" in r.json["error"]["message"], r
            assert copies(h) == []
            assert call(h, "GET", "/v1/templates").json["templates"] == []
            exec_in(h, s["id"], "rm /tmp/big && truncate -s 1G /tmp/sparse && "
                                "echo x >> /tmp/sparse")
            r = call(h, "POST", "/v1/templates", {"sandbox": s["id"], "name": "small"})
            assert r.status == 201 and r.json["bytes"] < 8192, r
            r = call(h, "POST", "/v1/templates", {"sandbox": s["id"], "name": "two"})
            assert r.status == 429 and r.json["error"]["code"] == "quota_exceeded", r
            assert len(copies(h)) == 1
        finally:
            delete(h, s["id"])
        assert call(h, "DELETE", "/v1/templates/small").status == 200
        assert copies(h) == []
    finally:
        assert h.stop() == 0, h.log.read_text()
    assert h.leaks() == ([], [], [])


def test_a_process_level_template(tmp_path):
    h = Hulld(tmp_path)
    Path(h.state).mkdir(parents=True)
    h.tokens = {"user": h.token("user", "acme", allow="process-isolation"),
                "plain": h.token("user", "acme")}
    h.start()
    try:
        s = create(h, isolation="process")
        try:
            exec_in(h, s["id"], "mkdir /tmp/d && echo p > /tmp/d/f")
            assert call(h, "POST", "/v1/templates", {"sandbox": s["id"], "name": "p"}).status == 201
            # No freezer at process level: copied live while a process
            # churns files; each copy is whole (201) or refused (409).
            r = call(h, "POST", f"/v1/sandboxes/{s['id']}/processes", {"cmd": [
                "sh", "-c", "mkdir -p /tmp/c; i=0; while :; do i=$((i+1)); "
                "echo $i > /tmp/c/f$((i%50)); rm -f /tmp/c/f$(((i+25)%50)); done"]})
            assert r.status == 201, r
            for i in range(5):
                r = call(h, "POST", "/v1/templates", {"sandbox": s["id"], "name": f"c{i}"})
                assert r.status in (201, 409), r
                if r.status == 201:
                    assert call(h, "DELETE", f"/v1/templates/c{i}").status == 200
        finally:
            delete(h, s["id"])
        # The template's isolation needs the same grant of whoever uses it.
        r = call(h, "POST", "/v1/sandboxes", {"template": "p"}, who="plain")
        assert r.status == 403, r
        n = create(h, template="p")
        try:
            assert n["isolation"] == "process"
            out = exec_in(h, n["id"], "cat /tmp/d/f; stat -c %u /tmp/d/f; id -u")["stdout"]
            lines = out.split()
            assert lines[0] == "p" and lines[1] == lines[2], out
        finally:
            delete(h, n["id"])
        assert call(h, "DELETE", "/v1/templates/p").status == 200
    finally:
        assert h.stop() == 0, h.log.read_text()
    assert h.leaks() == ([], [], [])


def test_inline_files_of_the_source_come_once_as_it_changed_them(d):
    src = create(d, files={"a.txt": "first\n"})
    try:
        exec_in(d, src["id"], "echo second >> /tmp/a.txt")
        r = call(d, "POST", "/v1/templates", {"sandbox": src["id"], "name": "inline"})
        assert r.status == 201 and "files" not in r.json["sandbox"], r
    finally:
        delete(d, src["id"])
    try:
        s = create(d, template="inline")
        try:
            assert exec_in(d, s["id"], "cat /tmp/a.txt")["stdout"] == "first\nsecond\n"
        finally:
            delete(d, s["id"])
    finally:
        assert call(d, "DELETE", "/v1/templates/inline").status == 200


def test_a_template_of_an_image_sandbox_keeps_the_image_pinned(tmp_path):
    import imagelib as il
    root = tmp_path / "images"
    tar = tmp_path / "base.tar"
    tar.write_bytes(il.rootfs_tar(il.busybox_layer()))
    il.hull_run("image", "import", tar, "localhost/tplbase:1", root=root, check=True)
    h = Hulld(tmp_path / "d", "--image-root", str(root))
    Path(h.state).mkdir(parents=True)
    h.tokens = {"user": h.token("user", "acme")}
    h.start()
    try:
        s = create(h, image="localhost/tplbase:1")
        try:
            exec_in(h, s["id"], "echo from-image > /tmp/mark")
            t = call(h, "POST", "/v1/templates", {"sandbox": s["id"], "name": "img"}).json
        finally:
            delete(h, s["id"])
        assert t["sandbox"]["image"] == s["image"] and "@sha256:" in s["image"], t
        n = create(h, template="img")
        try:
            assert n["image"] == s["image"]
            out = exec_in(h, n["id"], "cat /tmp/mark; ls /bin/busybox")["stdout"]
            assert out == "from-image\n/bin/busybox\n", out
        finally:
            delete(h, n["id"])
        assert call(h, "DELETE", "/v1/templates/img").status == 200
    finally:
        assert h.stop() == 0, h.log.read_text()
    assert h.leaks() == ([], [], [])


def test_racing_keeps_and_deletes_leave_whole_templates_or_nothing(d):
    src = create(d)
    try:
        exec_in(d, src["id"], "head -c 4194304 /dev/urandom > /tmp/blob && sha256sum /tmp/blob")
        want = exec_in(d, src["id"], "sha256sum /tmp/blob")["stdout"]
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            rs = list(pool.map(lambda _: call(d, "POST", "/v1/templates",
                                              {"sandbox": src["id"], "name": "race"}), range(4)))
    finally:
        delete(d, src["id"])
    assert sorted(r.status for r in rs) == [201, 409, 409, 409], rs
    assert len(copies(d)) == 1

    def make(_):
        r = call(d, "POST", "/v1/sandboxes", {"template": "race"})
        if r.status != 201:
            return r.status, None
        try:
            return 201, exec_in(d, r.json["id"], "sha256sum /tmp/blob")["stdout"]
        finally:
            delete(d, r.json["id"])

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        made = [pool.submit(make, i) for i in range(6)]
        assert call(d, "DELETE", "/v1/templates/race").status == 200
        got = [f.result() for f in made]
    # Each sandbox either got the whole copy or was never made.
    for status, out in got:
        assert (status, out) in ((201, want), (404, None)), got
    assert copies(d) == []
    assert call(d, "GET", "/v1/sandboxes").json["sandboxes"] == []
