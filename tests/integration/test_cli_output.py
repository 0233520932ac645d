"""What users read and copy: `hull token create` in a script, `hull list`
with long ids, and the README's examples run as written (only the binary
paths, --root, the state directories and the container ids are this
test's own)."""
import os
import pty
import re
import select
import subprocess
import time
from pathlib import Path

from conftest import HULL, SRC, wait_until
from hullrt import cid

TOKEN_RE = re.compile(r"^[A-Za-z0-9_.~+/=-]{20,}$")


def token_create(state, *extra, **kw):
    return subprocess.run([HULL, "token", "create", "--state-dir", str(state), "--role", "user",
                           "--tenant", "acme", *extra], capture_output=True, text=True,
                          timeout=60, **kw)


def token_ids(state):
    r = subprocess.run([HULL, "token", "list", "--state-dir", str(state)], capture_output=True,
                       text=True, check=True, timeout=60)
    return [line.split()[0] for line in r.stdout.splitlines()[1:]]


# ---- hull token create ------------------------------------------------------------

def test_token_create_captured_prints_only_the_token(tmp_path):
    r = token_create(tmp_path / "state")
    assert r.returncode == 0, r
    assert r.stdout.count("\n") == 1 and TOKEN_RE.match(r.stdout.strip()), r
    # The details a person would want go to stderr.
    ids = token_ids(tmp_path / "state")
    assert len(ids) == 1
    assert r.stderr.splitlines() == [f"id: {ids[0]}", "role: user", "tenant: acme"], r


def test_token_create_quiet_prints_the_token_alone(tmp_path):
    r = token_create(tmp_path / "state", "--quiet")
    assert r.returncode == 0, r
    assert TOKEN_RE.match(r.stdout.strip()) and r.stdout.count("\n") == 1, r
    assert r.stderr == "", r
    r = token_create(tmp_path / "state", "-q")
    assert r.returncode == 0 and TOKEN_RE.match(r.stdout.strip()) and r.stderr == "", r


def test_token_create_on_a_terminal_shows_the_details(tmp_path):
    master, slave = pty.openpty()
    try:
        p = subprocess.Popen([HULL, "token", "create", "--state-dir", str(tmp_path / "state"),
                              "--tenant", "acme"], stdout=slave, stderr=subprocess.PIPE,
                             stdin=subprocess.DEVNULL)
        os.close(slave)
        out = b""
        deadline = time.monotonic() + 60  # a hang guard, not a speed limit
        while time.monotonic() < deadline:
            if not select.select([master], [], [], 1)[0]:
                continue
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the other side is closed
                break
            if not chunk:
                break
            out += chunk
        assert p.wait(timeout=60) == 0
        assert p.stderr.read() == b""
        p.stderr.close()
    finally:
        os.close(master)
    lines = out.decode().replace("\r\n", "\n").splitlines()
    assert lines[0] == f"id: {token_ids(tmp_path / 'state')[0]}", lines
    assert lines[1:3] == ["role: user", "tenant: acme"], lines
    assert TOKEN_RE.match(lines[3]) and len(lines) == 4, lines


# ---- hull list ----------------------------------------------------------------------

def columns(header):
    """Start offset of each header word."""
    return [m.start() for m in re.finditer(r"\S+", header)]


def test_list_columns_fit_long_ids(hull, make_bundle):
    long_id = cid("a-container-id-much-longer-than-twenty-characters-" + "x" * 30)
    short_id = cid("s")
    b1 = make_bundle(["sleep", "1000"]).write()
    b2 = make_bundle(["sleep", "1000"]).write()
    try:
        hull("create", "--bundle", str(b1.path), long_id, check=True)
        hull("create", "--bundle", str(b2.path), short_id, check=True)
        r = hull("list")
        assert r.returncode == 0, r
        lines = r.stdout.splitlines()
        assert lines[0].split() == ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"], r
        starts = columns(lines[0])
        rows = {line.split()[0]: line for line in lines[1:]}
        assert set(rows) == {long_id, short_id}, r
        for c, line in rows.items():
            state = hull.state(c)
            cells = [str(state["pid"]), "created", state["bundle"]]
            # Every cell starts exactly under its header, after a blank.
            for start, cell in zip(starts[1:4], cells):
                assert line[start:start + len(cell)] == cell, (line, cell)
                assert line[start - 1] == " ", line
    finally:
        for c in (long_id, short_id):
            hull("delete", "--force", c)


# ---- the README ---------------------------------------------------------------------

def readme_block(heading):
    """The first ```sh block after a README heading, one command a line
    (backslash continuations joined; bash drops the comments)."""
    text = (SRC / "README.md").read_text()
    part = text[text.index(heading):]
    block = part[part.index("```sh\n") + 6:]
    block = block[:block.index("```")]
    block = block.replace("\\\n", " ")
    return [line.strip() for line in block.splitlines() if line.strip()]


def sh(cmd, cwd, timeout=120):
    # Output to files: a detached container keeps the run's stdio open.
    out, err = cwd / "out.txt", cwd / "err.txt"
    with open(out, "wb") as o, open(err, "wb") as e:
        p = subprocess.run(["bash", "-c", cmd], cwd=cwd, stdout=o, stderr=e,
                           stdin=subprocess.DEVNULL, timeout=timeout)
    return p.returncode, out.read_text(), err.read_text()


def test_readme_detached_container_stays_up(hull, tmp_path):
    cmds = readme_block("## Using hull as an OCI runtime")
    assert any(" run -d " in c for c in cmds)
    demo, demo2 = cid("demo"), cid("demo2")
    work = tmp_path / "readme"
    work.mkdir()
    ran_detached = False
    try:
        for c in cmds:
            c = c.replace("scripts/", f"{SRC}/scripts/")
            c = c.replace("build/hull", f"{HULL} --root {hull.root}")
            c = re.sub(r"\bdemo2\b", demo2, c)
            c = re.sub(r"\bdemo\b", demo, c)
            rc, out, err = sh(c, work)
            assert rc == 0, (c, out, err)
            if " run -d " in c:
                ran_detached = True
                # Still up a moment later, and the next commands can use it.
                time.sleep(1)
                assert hull.state(demo2)["status"] == "running"
            if " state " in c:
                assert '"running"' in out, out
            if " exec " in c:
                assert "PID" in out and "sleep" in out, out
        assert ran_detached
        assert hull("list", "-q").stdout == ""
    finally:
        for c in (demo, demo2):
            hull("delete", "--force", c)


def test_readme_service_example_gets_its_token(tmp_path):
    cmds = readme_block("## The service: hulld, tokens, the Python SDK")
    assert cmds[0].startswith("TOKEN=$(build/hull token create ")
    hulld = str(Path(HULL).resolve().parent / "hulld")
    sock = tmp_path / "hulld.sock"
    script = []
    for c in cmds:
        c = re.sub(r"(?<![\w/])build/(hulld|hull)\b",
                   lambda m: hulld if m.group(1) == "hulld" else HULL, c)
        c = c.replace("/var/lib/hull", str(tmp_path / "state"))
        c = c.replace("/run/hull/hulld.sock", str(sock))
        script.append(c)
        if re.search(r"&\s*(#.*)?$", c):
            # A person waits for hulld to come up before typing on.
            script.append(f"pid=$!; for i in $(seq 600); do curl -sf --unix-socket {sock} "
                          "http://hull/healthz >/dev/null && break; sleep 0.1; done")
    script.append("kill $pid; wait $pid")
    rc, out, err = sh("set -e\n" + "\n".join(script), tmp_path, timeout=300)
    assert rc == 0, (script, out, err)
    assert '"stdout":"42\\n"' in out.replace(" ", ""), out
    assert '"verdict":"ok"' in out.replace(" ", ""), out
    assert wait_until(lambda: not sock.exists(), 30)
