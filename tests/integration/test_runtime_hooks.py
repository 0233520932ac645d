"""OCI hooks, checked from the host: the state each hook reads on stdin (id,
pid, status, bundle, annotations), its args and env (and nothing of hull's),
the namespaces it runs in (createContainer and startContainer in the
container's, the others in the runtime's), timeouts, and which failures fail
the verb (prestart, createRuntime, createContainer, startContainer) and
which only warn (poststart, poststop) -- a failed verb leaving nothing.
"""
import json
import os
import shutil

import pytest

from conftest import pid_alive, pids_with_cmdline_containing, wait_until
from rt4 import TOKEN, assert_error, assert_nothing_left, cid, running, wait_exec

KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart",
         "poststop")
# where each kind runs: the runtime's namespaces or the container's
IN_CONTAINER = {"createContainer", "startContainer"}
NS = ("uts", "net", "ipc", "pid", "mnt", "cgroup")


def recorder(kind, out):
    """A hook that records what it was given into out/<kind>.*"""
    script = (f'cat > {out}/{kind}.json; env > {out}/{kind}.env; '
              f'echo "$0|$1|$2" > {out}/{kind}.args; hostname > {out}/{kind}.hostname; '
              + "".join(f"readlink /proc/self/ns/{n} > {out}/{kind}.{n}; " for n in NS))
    return {"path": "/bin/sh", "args": ["sh", "-c", script, kind, "arg one", "arg2"],
            "env": ["HOOKVAR=for " + kind, "PATH=/usr/bin:/bin"]}


@pytest.fixture
def logdir(tmp_path, bundle):
    """A host dir, also bound at /hooklog in the container (startContainer
    runs after pivot_root and only sees the container's files)."""
    d = tmp_path / "hooklog"
    d.mkdir()
    (bundle.rootfs / "hooklog").mkdir()
    bundle.config["mounts"].append({"destination": "/hooklog", "type": "bind",
                                    "source": str(d), "options": ["rbind", "rw"]})
    return d


@pytest.mark.asan
def test_every_hook_gets_state_args_env_and_its_namespaces(hull, bundle, logdir, tmp_path,
                                                            monkeypatch):
    monkeypatch.setenv("HULL_SECRET_OF_THE_CALLER", "must-not-leak")
    bundle.config["annotations"] = {"org.test.a": "1", "org.test.b": "two words"}
    bundle.config["hostname"] = "hooked"
    bundle.config["hooks"] = {k: [recorder(k, "/hooklog" if k == "startContainer" else logdir)]
                              for k in KINDS}
    with running(hull, bundle, start=False) as (c, pid):
        cns = {n: os.readlink(f"/proc/{pid}/ns/{n}") for n in NS}
        assert sorted(p.stem for p in logdir.glob("*.json")) == sorted(
            ["prestart", "createRuntime", "createContainer"])
        hull("start", c, check=True)
        wait_exec(pid, "sleep")
        assert wait_until(lambda: (logdir / "poststart.cgroup").exists())
        hull("kill", c, "KILL", check=True)
        assert wait_until(lambda: hull.state(c)["status"] == "stopped")
        hull("delete", c, check=True)
    hostns = {n: os.readlink(f"/proc/self/ns/{n}") for n in NS}
    for k in KINDS:
        st = json.loads((logdir / f"{k}.json").read_text())
        assert st["id"] == c and st["bundle"] == str(bundle.path), k
        assert st["annotations"] == {"org.test.a": "1", "org.test.b": "two words"}, k
        assert st["ociVersion"] == bundle.config["ociVersion"], k
        # prestart runs "after the start operation is called" (config.md),
        # createRuntime/createContainer during create (runc's statuses)
        want_status = {"prestart": "created", "createRuntime": "creating",
                       "createContainer": "creating", "startContainer": "created",
                       "poststart": "running", "poststop": "stopped"}[k]
        assert st["status"] == want_status, (k, st)
        if k != "poststop":
            assert st["pid"] == pid, (k, st)
        assert (logdir / f"{k}.args").read_text() == f"{k}|arg one|arg2\n", k
        env = dict(line.split("=", 1) for line in (logdir / f"{k}.env").read_text().splitlines())
        assert env["HOOKVAR"] == f"for {k}" and env["PATH"] == "/usr/bin:/bin", k
        assert "HULL_SECRET_OF_THE_CALLER" not in env, k
        want = cns if k in IN_CONTAINER else hostns
        got = {n: (logdir / f"{k}.{n}").read_text().strip() for n in NS}
        assert got == want, k
    # startContainer runs after the hostname is set, in the container's uts
    assert (logdir / "startContainer.hostname").read_text().strip() == "hooked"


def failing(code=3):
    return {"path": "/bin/sh", "args": ["sh", "-c", f"cat >/dev/null; exit {code}"]}


@pytest.mark.parametrize("kind", ["prestart", "createRuntime", "createContainer"])
def test_failing_create_hook_fails_create_and_cleans_up(hull, bundle, tmp_path, kind):
    bundle.config["hooks"] = {kind: [recorder(kind, tmp_path), failing(4)]}
    bundle.write()
    c = cid()
    r = hull("create", "--bundle", str(bundle.path), c)
    assert_error(r, f"create {c}", f"hooks.{kind}[1]: /bin/sh exited with status 4")
    assert (tmp_path / f"{kind}.json").exists()  # the first one ran
    assert_nothing_left(hull, tmp_path, TOKEN)


def test_failing_start_container_hook_fails_run_and_cleans_up(hull, bundle, tmp_path):
    marker = tmp_path / "ran"
    bundle.config["hooks"] = {"startContainer": [failing(5)]}
    (bundle.rootfs / "out").mkdir()
    bundle.set_args("touch", "/out/ran").write()
    c = cid()
    r = hull("run", "--bundle", str(bundle.path), c)
    assert_error(r, f"run {c}", "hooks.startContainer[0]: /bin/sh exited with status 5")
    assert not marker.exists() and not (bundle.rootfs / "out" / "ran").exists()
    assert_nothing_left(hull, tmp_path, TOKEN)


def test_failing_start_container_hook_after_create(hull, bundle, tmp_path):
    """With create + start, the hook runs in the container after start was
    called: start fails with the hook's error (runtime-spec), the user
    program never runs, the container is stopped."""
    bundle.config["hooks"] = {"startContainer": [failing(5)]}
    (bundle.rootfs / "out").mkdir()
    bundle.config["root"]["readonly"] = False
    with running(hull, bundle, args=("touch", "/out/ran"), start=False) as (c, pid):
        r = hull("start", c)
        assert r.returncode == 1, r
        assert r.stderr.startswith(f"hull: start {c}: hooks.startContainer[0]: "), r.stderr
        assert "exited with status 5" in r.stderr, r.stderr
        assert wait_until(lambda: hull.state(c)["status"] == "stopped")
        assert not (bundle.rootfs / "out" / "ran").exists()
        assert hull("delete", c).returncode == 0
    assert_nothing_left(hull, tmp_path, TOKEN)


def test_failing_poststart_and_poststop_only_warn(hull, bundle, tmp_path):
    bundle.config["hooks"] = {"poststart": [failing(6), recorder("poststart", tmp_path)],
                              "poststop": [failing(7), recorder("poststop", tmp_path)]}
    with running(hull, bundle, start=False) as (c, pid):
        r = hull("start", c)
        assert r.returncode == 0, r
        assert "hooks.poststart[0]: /bin/sh exited with status 6" in r.stderr
        wait_exec(pid, "sleep")
        assert hull.state(c)["status"] == "running"
        hull("kill", c, "KILL", check=True)
        assert wait_until(lambda: hull.state(c)["status"] == "stopped")
        r = hull("delete", c)
        assert r.returncode == 0, r
        assert "hooks.poststop[0]: /bin/sh exited with status 7" in r.stderr
    # runtime-spec: a failing poststart/poststop hook is logged and the
    # remaining hooks still run
    assert json.loads((tmp_path / "poststart.json").read_text())["status"] == "running"
    assert json.loads((tmp_path / "poststop.json").read_text())["status"] == "stopped"
    assert_nothing_left(hull, tmp_path, TOKEN)


def test_start_refuses_a_config_that_no_longer_parses_instead_of_skipping_hooks(
        hull, bundle, tmp_path):
    """The config in state.json was valid at create; changed since so that
    it no longer parses, start cannot know its poststart hooks: it fails
    with the parse error and leaves the init waiting (still "created"),
    rather than starting the program and skipping the hooks in silence;
    delete --force still removes it, with a warning for poststop."""
    bundle.config["hooks"] = {"poststart": [recorder("poststart", tmp_path)],
                              "poststop": [recorder("poststop", tmp_path)]}
    with running(hull, bundle, start=False) as (c, pid):
        state = hull.root / c / "state.json"
        st = json.loads(state.read_text())
        st["config"]["process"]["args"] = []
        state.write_text(json.dumps(st))
        r = hull("start", c)
        assert_error(r, f"start {c}: state.json: config: ", "process.args")
        assert hull.state(c)["status"] == "created"
        assert pid_alive(pid)
        assert not (tmp_path / "poststart.json").exists()
        # delete still removes it, and says why its poststop hooks did not run
        r = hull("delete", "--force", c)
        assert r.returncode == 0, r
        assert f"delete {c}: state.json: config: " in r.stderr, r.stderr
        assert "poststop hooks not run" in r.stderr, r.stderr
    assert not (tmp_path / "poststop.json").exists()
    assert_nothing_left(hull, tmp_path, TOKEN)


def test_failing_poststart_hooks_in_run_warn_and_the_rest_run(hull, bundle, tmp_path):
    """run (create + start + wait + delete in one verb) takes the same path:
    every poststart and poststop hook runs, each failure is one warning."""
    bundle.config["hooks"] = {"poststart": [failing(6), failing(8),
                                            recorder("poststart", tmp_path)],
                              "poststop": [failing(7), recorder("poststop", tmp_path)]}
    bundle.set_args("true").write()
    c = cid()
    r = hull("run", "--bundle", str(bundle.path), c)
    assert r.returncode == 0, r
    assert "hooks.poststart[0]: /bin/sh exited with status 6" in r.stderr, r.stderr
    assert "hooks.poststart[1]: /bin/sh exited with status 8" in r.stderr, r.stderr
    assert "hooks.poststop[0]: /bin/sh exited with status 7" in r.stderr, r.stderr
    assert (tmp_path / "poststart.json").exists() and (tmp_path / "poststop.json").exists()
    assert_nothing_left(hull, tmp_path, TOKEN)


def test_hook_without_env_gets_the_runtime_environment(hull, bundle, tmp_path, monkeypatch):
    """runc and crun run a hook without "env" with their own environment
    (a hook finding PATH, XDG_RUNTIME_DIR, ...); with "env", exactly that."""
    monkeypatch.setenv("HULL_TEST_CALLER_VAR", "from the caller")
    bare = recorder("createRuntime", tmp_path)
    del bare["env"]
    bundle.config["hooks"] = {"createRuntime": [bare],
                              "prestart": [recorder("prestart", tmp_path)]}
    with running(hull, bundle, start=False):
        pass
    env = dict(line.split("=", 1)
               for line in (tmp_path / "createRuntime.env").read_text().splitlines()
               if "=" in line)
    assert env.get("HULL_TEST_CALLER_VAR") == "from the caller", env
    assert env.get("PATH") == os.environ["PATH"], env
    given = (tmp_path / "prestart.env").read_text()
    assert "HULL_TEST_CALLER_VAR" not in given and "HOOKVAR=for prestart" in given
    assert_nothing_left(hull, tmp_path, TOKEN)


@pytest.mark.parametrize("kind", ["prestart", "createRuntime", "createContainer"])
def test_hook_that_cannot_be_executed_is_one_error(hull, bundle, tmp_path, kind):
    missing = tmp_path / "no-such-hook"
    bundle.config["hooks"] = {kind: [{"path": str(missing)}]}
    bundle.write()
    c = cid()
    r = hull("create", "--bundle", str(bundle.path), c)
    assert_error(r, f"create {c}: hooks.{kind}[0]: exec {missing}: No such file or directory")
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    assert "status 127" not in r.stderr
    assert_nothing_left(hull, tmp_path, TOKEN)


def hanging(tmp_path, timeout=1):
    """A hook that hangs, with a child of its own (which must die too); the
    program's path holds tmp_path so the leak check can find it."""
    sleeper = tmp_path / "hook-sleep"
    if not sleeper.exists():
        shutil.copy("/bin/sleep", sleeper)
    return {"path": "/bin/sh", "args": ["sh", "-c", f"{sleeper} 1000 & {sleeper} 1000; true"],
            "timeout": timeout}


@pytest.mark.parametrize("kind", ["createRuntime", "createContainer"])
def test_hook_timeout_fails_create_and_kills_the_hook(hull, bundle, tmp_path, kind):
    bundle.config["hooks"] = {kind: [hanging(tmp_path)]}
    bundle.write()
    c = cid()
    r = hull("create", "--bundle", str(bundle.path), c)
    assert_error(r, f"create {c}", f"hooks.{kind}[0]: /bin/sh timed out after 1 s")
    assert wait_until(lambda: not [p for p in pids_with_cmdline_containing(str(tmp_path))
                                   if pid_alive(p)], timeout=5)
    assert_nothing_left(hull, tmp_path, TOKEN)


def test_start_container_hook_timeout_fails_run(hull, bundle, tmp_path):
    # inside the container after pivot_root: the hook's program is the container's
    bundle.config["hooks"] = {"startContainer": [{
        "path": "/bin/sh", "args": ["sh", "-c", "sleep 1000 & sleep 1000; true"],
        "timeout": 1}]}
    bundle.set_args("true").write()
    c = cid()
    r = hull("run", "--bundle", str(bundle.path), c)
    assert_error(r, f"run {c}", "hooks.startContainer[0]: /bin/sh timed out after 1 s")
    assert_nothing_left(hull, tmp_path, TOKEN)


def test_poststart_timeout_only_warns_and_kills_the_hook(hull, bundle, tmp_path):
    bundle.config["hooks"] = {"poststart": [hanging(tmp_path)]}
    with running(hull, bundle, start=False) as (c, pid):
        r = hull("start", c)
        assert r.returncode == 0, r
        assert "hooks.poststart[0]: /bin/sh timed out after 1 s" in r.stderr
        assert wait_until(lambda: not [p for p in pids_with_cmdline_containing(str(tmp_path))
                                       if pid_alive(p)], timeout=5)
        assert hull.state(c)["status"] == "running"
    assert_nothing_left(hull, tmp_path, TOKEN)


def test_poststop_runs_on_delete_force_of_a_running_container(hull, bundle, tmp_path):
    bundle.config["hooks"] = {"poststop": [recorder("poststop", tmp_path)]}
    with running(hull, bundle) as (c, pid):
        hull("delete", "--force", c, check=True)
    st = json.loads((tmp_path / "poststop.json").read_text())
    assert st["status"] == "stopped" and st["id"] == c
    assert_nothing_left(hull, tmp_path, TOKEN)
