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
    rc, out = run_refused(["--state-dir", str(state)], sock)
    if rc is not None:
        assert not sock.exists(), out
    return rc, out


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


def run_refused(args, sock):
    """hulld with args: (exit status, output), or (None, output) when it served."""
    p = subprocess.Popen([HULLD, "--socket", str(sock), *args], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:  # it serves: the old hulld
        p.terminate()
        out, _ = p.communicate(timeout=120)
        return None, out
    return p.returncode, out


def test_socket_in_a_directory_others_may_change_is_refused(tmp_path):
    """Whoever may rename what is in --socket's directory can put a socket
    of theirs in hulld's place and take the tokens its clients send."""
    state = tmp_path / "state"
    d = tmp_path / "run"
    d.mkdir(mode=0o700)
    os.chmod(d, 0o777)
    rc, out = run_refused(["--state-dir", str(state)], d / "hulld.sock")
    assert rc == 1 and f"{d} may be written by other users (mode 0777)" in out, out
    assert not (d / "hulld.sock").exists()
    assert not state.exists(), "a refused --socket left a state directory"
    # Not made yet: its nearest existing parent is the one checked.
    rc, out = run_refused(["--state-dir", str(state)], d / "sub" / "hulld.sock")
    assert rc == 1 and f"{d} may be written by other users (mode 0777)" in out, out
    assert not (d / "sub").exists() and not state.exists()
    os.chmod(d, 0o700)
    os.chown(d, NOBODY, NOBODY)
    rc, out = run_refused(["--state-dir", str(state)], d / "hulld.sock")
    assert rc == 1 and f"{d} is owned by uid {NOBODY}, neither the caller" in out, out
    # Sticky, as /tmp is: nobody else may rename hulld's socket there.
    os.chown(d, 0, 0)
    os.chmod(d, 0o1777)
    h = Hulld(tmp_path)
    h.state, h.sock = str(state), str(d / "hulld.sock")
    h.start()
    assert h.stop() == 0, h.log.read_text()


def cluster_args(tmp_path, *extra):
    from registrylib import make_ca
    ca, crt, key = make_ca(tmp_path / "tls")
    # Checked before Redis is asked: nothing needs to listen on port 1.
    return ["--state-dir", str(tmp_path / "state"), "--listen", "127.0.0.1:0", "--tls-cert",
            str(crt), "--tls-key", str(key), "--cluster", "redis://127.0.0.1:1", "--node", "n1",
            "--advertise", "127.0.0.1:8443", *extra]


def test_cluster_secret_of_another_user_is_refused(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("long enough to be a cluster secret\n")
    secret.chmod(0o600)
    os.chown(secret, NOBODY, NOBODY)
    rc, out = run_refused(cluster_args(tmp_path, "--cluster-secret", str(secret)),
                          tmp_path / "s.sock")
    assert rc == 1 and out.startswith("hulld: --cluster-secret "), out
    assert f"owned by uid {NOBODY}, neither the caller (uid 0) nor root" in out, out
    assert not (tmp_path / "s.sock").exists()


def test_cluster_snapshots_others_may_change_are_refused(tmp_path):
    snaps = tmp_path / "snaps"
    snaps.mkdir(mode=0o700)
    os.chmod(snaps, 0o777)
    rc, out = run_refused(cluster_args(tmp_path, "--cluster-snapshots", str(snaps)),
                          tmp_path / "s.sock")
    assert rc == 1 and f"--cluster-snapshots {snaps}: other users may write to it" in out, out
    os.chmod(snaps, 0o700)
    os.chown(snaps, NOBODY, NOBODY)
    rc, out = run_refused(cluster_args(tmp_path, "--cluster-snapshots", str(snaps)),
                          tmp_path / "s.sock")
    assert rc == 1 and f"owned by uid {NOBODY}, neither the caller" in out, out
    assert not (tmp_path / "s.sock").exists()
