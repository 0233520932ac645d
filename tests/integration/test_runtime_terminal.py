"""process.terminal: the pty master handed over --console-socket with
SCM_RIGHTS (as conmon and containerd-shim take it), the slave as the
container's controlling terminal, the foreground relay with window size set
and changed through SIGWINCH under a pty the test controls, and a console
socket that does not exist refused before anything is created.
"""
import fcntl
import os
import pty
import signal
import struct
import subprocess
import termios
from pathlib import Path

import pytest

from conftest import wait_until
from rt4 import (ConsoleListener, TOKEN, assert_error, assert_nothing_left, cid, read_until,
                 running)


TIOCGPTN = 0x80045430  # _IOR("T", 0x30, unsigned int)


def winsize(fd, rows, cols):
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


@pytest.mark.asan
def test_console_socket_receives_the_pty_master(hull, bundle, tmp_path):
    bundle.process["terminal"] = True
    bundle.process["consoleSize"] = {"height": 24, "width": 80}
    script = "tty; stty size; read line; echo got:$line; exec sleep 1000"
    lst = ConsoleListener(tmp_path / "console.sock")
    try:
        with running(hull, bundle, args=("sh", "-c", script), start=False,
                     create_args=("--console-socket", lst.path)) as (c, pid):
            m = lst.master()
            # a pty master: TIOCGPTN answers, and the name matches what the container sees
            n = struct.unpack("I", fcntl.ioctl(m, TIOCGPTN, b"\0" * 4))[0]
            hull("start", c, check=True)
            out = read_until(m, "24 80")
            assert out.splitlines()[0].strip() == f"/dev/pts/{n}", out
            os.write(m, b"hello\n")
            assert "got:hello" in read_until(m, "got:hello")
            # the slave is the init's controlling terminal and its stdio
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            assert int(stat[4]) == os.makedev(136, n)  # tty_nr
            assert int(stat[3]) == int(stat[2])  # session leader (sid == pid)
            for fd in (0, 1, 2):
                assert os.readlink(f"/proc/{pid}/fd/{fd}") == f"/dev/pts/{n}"
            # the pty lives in the container's own devpts, not the host's
            assert not Path(f"/dev/pts/{n}").exists() or \
                os.stat(f"/dev/pts/{n}").st_dev != os.stat(f"/proc/{pid}/root/dev/pts/{n}").st_dev
    finally:
        lst.close()
    assert_nothing_left(hull, tmp_path, TOKEN)


@pytest.mark.parametrize("root_readonly", [True, False])
def test_dev_console_is_the_pty(hull, bundle, tmp_path, root_readonly):
    """runtime-spec (default devices): with a terminal, /dev/console is the
    pty bound on it, as runc does; also on a read-only root whose /dev is
    no tmpfs, and never for a container without a terminal."""
    bundle.config["root"]["readonly"] = root_readonly
    if root_readonly:
        bundle.config["mounts"] = [m for m in bundle.config["mounts"] if m["destination"] != "/dev"]
    bundle.process["terminal"] = True
    script = "ls -lnL /dev/console | awk '{print $5 $6}'; tty; exec sleep 1000"
    lst = ConsoleListener(tmp_path / "console.sock")
    try:
        with running(hull, bundle, args=("sh", "-c", script), start=False,
                     create_args=("--console-socket", lst.path)) as (c, pid):
            m = lst.master()
            n = struct.unpack("I", fcntl.ioctl(m, TIOCGPTN, b"\0" * 4))[0]
            hull("start", c, check=True)
            out = read_until(m, f"/dev/pts/{n}")
            assert out.split()[:2] == [f"136,{n}", f"/dev/pts/{n}"], out
            st = os.stat(f"/proc/{pid}/root/dev/console")
            assert st.st_rdev == os.makedev(136, n)
            # exec'd processes see the same console
            r = hull("exec", c, "sh", "-c", "echo via-console > /dev/console")
            assert r.returncode == 0, r
            assert "via-console" in read_until(m, "via-console")
    finally:
        lst.close()
    assert_nothing_left(hull, tmp_path, TOKEN)
    bundle.process["terminal"] = False
    with running(hull, bundle, args=("sleep", "1000")) as (c, pid):
        assert not os.path.exists(f"/proc/{pid}/root/dev/console") or \
            os.stat(f"/proc/{pid}/root/dev/console").st_size == 0


def test_pty_belongs_to_the_process_user(hull, bundle, tmp_path):
    """As runc: the pty of a process that is not root is its user's (the
    group stays tty), so it can reopen $(tty); for the init and for
    exec -t alike."""
    bundle.process["terminal"] = True
    bundle.process["user"] = {"uid": 1000, "gid": 1000}
    script = "echo reopened > $(tty) && echo init-ok; exec sleep 1000"
    lst = ConsoleListener(tmp_path / "console.sock")
    try:
        with running(hull, bundle, args=("sh", "-c", script), start=False,
                     create_args=("--console-socket", lst.path)) as (c, pid):
            m = lst.master()
            n = struct.unpack("I", fcntl.ioctl(m, TIOCGPTN, b"\0" * 4))[0]
            hull("start", c, check=True)
            assert "init-ok" in read_until(m, "init-ok")
            st = os.stat(f"/proc/{pid}/root/dev/pts/{n}")
            assert (st.st_uid, st.st_gid) == (1000, 5)
            lst.close()
            lst = ConsoleListener(tmp_path / "exec.sock")
            r = hull("exec", "-d", "-t", "--console-socket", lst.path, c, "sh", "-c",
                     "echo reopened > $(tty) && echo exec-ok; sleep 5")
            assert r.returncode == 0, r
            assert "exec-ok" in read_until(lst.master(), "exec-ok")
    finally:
        lst.close()
    assert_nothing_left(hull, tmp_path, TOKEN)


def test_console_socket_with_run_detach(hull, bundle, tmp_path):
    bundle.process["terminal"] = True
    bundle.set_args("sh", "-c", "echo ready; exec cat").write()
    lst = ConsoleListener(tmp_path / "console.sock")
    c = cid()
    try:
        r = hull("run", "-d", "--console-socket", lst.path, "--bundle", str(bundle.path), c)
        assert r.returncode == 0, r
        m = lst.master()
        assert "ready" in read_until(m, "ready")
        os.write(m, b"echoed back\n")
        assert "echoed back" in read_until(m, "echoed back")
        # closing the master hangs up the terminal: the container ends
        lst.close()
        assert wait_until(lambda: hull.state(c)["status"] == "stopped")
    finally:
        hull("delete", "--force", c)
    assert_nothing_left(hull, tmp_path, TOKEN)


@pytest.mark.asan
@pytest.mark.parametrize("verb", ["create", "run"])
def test_missing_console_socket_refused_before_anything(hull, bundle, tmp_path, verb):
    bundle.process["terminal"] = True
    bundle.write()
    c = cid()
    args = ["-d"] if verb == "run" else []
    r = hull(verb, *args, "--console-socket", str(tmp_path / "nobody.sock"),
             "--bundle", str(bundle.path), c)
    assert_error(r, f"--console-socket {tmp_path / 'nobody.sock'}", "No such file or directory")
    assert_nothing_left(hull, tmp_path, TOKEN)


def test_console_socket_not_a_socket_refused(hull, bundle, tmp_path):
    bundle.process["terminal"] = True
    bundle.write()
    (tmp_path / "plain").write_text("")
    r = hull("create", "--console-socket", str(tmp_path / "plain"),
             "--bundle", str(bundle.path), cid())
    assert_error(r, "not a socket")
    assert_nothing_left(hull, tmp_path, TOKEN)


def test_detached_terminal_without_console_socket_refused(hull, bundle, tmp_path):
    bundle.process["terminal"] = True
    bundle.write()
    r = hull("run", "-d", "--bundle", str(bundle.path), cid())
    assert_error(r, "process.terminal", "--console-socket")
    assert_nothing_left(hull, tmp_path, TOKEN)


def test_foreground_run_relays_the_tty_and_window_size(hull, bundle, tmp_path):
    """hull run under a pty the test controls: our window size reaches the
    container's pty; resizing ours (the kernel sends SIGWINCH to hull, the
    terminal's foreground process) resizes the container's."""
    bundle.process["terminal"] = True
    script = ("stty size; trap 'stty size' WINCH; echo trapped; "
              "while :; do sleep 0.05; done")
    bundle.set_args("sh", "-c", script).write()
    master, slave = pty.openpty()
    winsize(master, 40, 120)

    def controlling_tty():
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    p = subprocess.Popen(hull.cmd("run", "--bundle", str(bundle.path), cid()),
                         stdin=slave, stdout=slave, stderr=slave, preexec_fn=controlling_tty)
    os.close(slave)
    try:
        out = read_until(master, "trapped", timeout=20)
        assert "40 120" in out, out
        winsize(master, 50, 132)
        assert "50 132" in read_until(master, "50 132"), "SIGWINCH not relayed"
        # keystrokes pass through raw: ^C reaches the container's terminal,
        # whose line discipline turns it into SIGINT for the container
        os.write(master, b"\x03")
        assert p.wait(30) == 128 + signal.SIGINT
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        os.close(master)
    assert_nothing_left(hull, tmp_path, TOKEN)
