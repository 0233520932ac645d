"""Each container joins a new session keyring named after it (as runc does);
--no-new-keyring keeps the caller's."""
import pytest


def keys_seen(hull, bundle, cid, *extra):
    bundle.set_args("cat", "/proc/keys")
    bundle.linux["maskedPaths"] = [p for p in bundle.linux["maskedPaths"] if p != "/proc/keys"]
    bundle.write()
    r = hull("run", *extra, "--bundle", str(bundle.path), cid)
    assert r.returncode == 0, r
    return r.stdout


@pytest.mark.asan
def test_new_session_keyring_named_after_the_container(hull, bundle):
    out = keys_seen(hull, bundle, "kr1")
    assert any("keyring" in line and line.rstrip().endswith("kr1: empty") for line in
               out.splitlines()), out


def test_no_new_keyring_keeps_the_callers(hull, bundle):
    out = keys_seen(hull, bundle, "kr2", "--no-new-keyring")
    assert "kr2" not in out, out
