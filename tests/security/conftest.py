"""The escape and abuse battery of `hull sandbox run` (issue 5).

Each test runs a hostile program in the default sandbox (container
isolation, default limits unless the attack needs a smaller one) and
checks the verdict or the way each attack failed, AND the host afterwards:
sandboxlib.Sandbox asserts that no state, cgroup, mount or process of the
run is left, and each test checks what its attack aimed at (a file, the
clock, a host process, the hull binary). test_zz_after_battery.py checks
the host once more at the end.

The attacks that need C are in hostile.c, built here with the host's gcc
into a directory the sandbox can read and copied in with --copy-in.

This directory is a package (__init__.py) so that this conftest does not
take the module name "conftest" from tests/integration's when both run in
one pytest invocation; shared helpers live in tests/integration/sandboxlib.py.
"""
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

from sandboxlib import HULL, Sandbox, sha256  # noqa: E402

HERE = Path(__file__).resolve().parent


def pytest_configure(config):
    config.addinivalue_line("markers", "asan: quick core test, also run against the ASan build")
    config.addinivalue_line("markers", "slow: takes more than a few seconds")
    if os.geteuid() != 0:
        raise pytest.UsageError("hull's security tests must run as root")


WHOAMI = r"""
#define _GNU_SOURCE
#include <stdio.h>
#include <unistd.h>
int main(void) {
    uid_t r, e, s;
    getresuid(&r, &e, &s);
    printf("%u %u %u\n", r, e, s);
    return 0;
}
"""


@pytest.fixture(scope="session")
def bins():
    """hostile, whoami, and setuid-root copies of whoami and /bin/id (in
    bins/suid), in a directory every uid can read."""
    d = Path(tempfile.mkdtemp(prefix="hull-sec-"))
    d.chmod(0o755)
    subprocess.run(["gcc", "-O2", "-Wall", "-pthread", "-o", str(d / "hostile"),
                    str(HERE / "hostile.c")], check=True, capture_output=True)
    (d / "whoami.c").write_text(WHOAMI)
    subprocess.run(["gcc", "-O2", "-o", str(d / "whoami"), str(d / "whoami.c")], check=True,
                   capture_output=True)
    suid = d / "suid"
    suid.mkdir(mode=0o755)
    for src, name in ((d / "whoami", "whoami"), (Path("/bin/id"), "id")):
        shutil.copy(src, suid / name)
        os.chown(suid / name, 0, 0)
        os.chmod(suid / name, 0o4755)
    yield d
    shutil.rmtree(d)


@pytest.fixture
def sb():
    return Sandbox()


@pytest.fixture
def hostile(sb, bins):
    """Run `hostile SUBCOMMAND ARGS...` in a default sandbox; returns the Run
    and the output as {name: (ret, errno)} for the T() lines."""

    def run(*args, opts=()):
        r = sb("--copy-in", f"{bins / 'hostile'}:/tmp/hostile", *opts,
               cmd=["/tmp/hostile", *args])
        lines = {}
        for line in (r.out if r.j else "").splitlines():
            parts = line.split()
            if len(parts) == 3:
                lines[parts[0]] = (parts[1], parts[2])
        return r, lines

    return run


@pytest.fixture(scope="session")
def hull_hash():
    """The hull binary's hash before the battery; tests compare after."""
    return sha256(HULL)
