"""hulld and `hull token`: a state directory another user can change is
refused, like ssh refuses such keys.

hulld.db holds every token's hash, role and tenant and every tenant's run
output: a user who can put a database of their own in the state directory
(or replace the one there) has an admin token of their choosing, and one
who can read it reads every tenant's output."""
import os
import subprocess
from pathlib import Path

import pytest

from hulldlib import HULL, HULLD, Hulld

pytestmark = pytest.mark.skipif(not os.path.exists(HULLD), reason="hulld not built")

NOBODY = 65534


def start_refused(tmp, state):
    """hulld on state: its exit status and log, or None when it served."""
    sock = tmp / "hulld.sock"
    p = subprocess.Popen([HULLD, "--socket", str(sock), "--state-dir", str(state)],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:  # it serves: the old hulld
        p.terminate()
        out, _ = p.communicate(timeout=120)
        return None, out
    assert not sock.exists(), out
    return p.returncode, out


def token(state):
    return subprocess.run([HULL, "token", "create", "--state-dir", str(state), "--role", "admin",
                           "--tenant", "evil", "--quiet"], capture_output=True, text=True,
                          timeout=120)


def test_state_dir_of_another_user_is_refused(tmp_path):
    # Another user's state directory, with the admin token they made in it.
    state = tmp_path / "state"
    assert token(state).returncode == 0
    for f in [state, *state.iterdir()]:
        os.chown(f, NOBODY, NOBODY)
    rc, out = start_refused(tmp_path, state)
    assert rc == 1, out
    assert f"owned by uid {NOBODY}, neither the caller (uid 0) nor root" in out, out


def test_state_dir_others_may_write_is_refused(tmp_path):
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    os.chmod(state, 0o777)
    rc, out = start_refused(tmp_path, state)
    assert rc == 1 and "other users may write to it (mode 0777)" in out, out
    assert os.listdir(state) == []
    # `hull token` neither: a token made there would be in a database anyone can swap.
    r = token(state)
    assert r.returncode == 1 and r.stdout == "", r
    assert r.stderr.startswith("hull: token create: state directory ") and "mode 0777" in r.stderr
    assert os.listdir(state) == []
    # A directory above it anyone may write to (not sticky) is the same.
    os.chmod(state, 0o700)
    os.chmod(tmp_path, 0o777)
    try:
        rc, out = start_refused(tmp_path, state)
    finally:
        os.chmod(tmp_path, 0o700)
    assert rc == 1 and f"{tmp_path} may be written by other users (mode 0777)" in out, out


def test_database_others_may_read_or_a_link_is_refused(tmp_path):
    state = tmp_path / "state"
    assert token(state).returncode == 0
    db = state / "hulld.db"
    os.chmod(db, 0o644)
    rc, out = start_refused(tmp_path, state)
    assert rc == 1 and f"{db}: other users may read or write it (mode 0644): chmod 600" in out, out
    r = subprocess.run([HULL, "token", "list", "--state-dir", str(state)], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 1 and "mode 0644" in r.stderr, r
    # A link to a database elsewhere is not followed.
    os.chmod(db, 0o600)
    os.rename(db, tmp_path / "elsewhere.db")
    db.symlink_to(tmp_path / "elsewhere.db")
    rc, out = start_refused(tmp_path, state)
    assert rc == 1 and f"{db}: not a regular file" in out, out
    # Put right, the same directory serves.
    db.unlink()
    os.rename(tmp_path / "elsewhere.db", db)
    h = Hulld(tmp_path)
    h.state = str(state)
    h.start()
    try:
        assert h.request("GET", "/v1/runs", token=h.token("user", "acme")).status == 200
    finally:
        assert h.stop() == 0, h.log.read_text()
    assert os.stat(db).st_mode & 0o777 == 0o600
