"""Which OCI runtime the engine tests drive, and the packages they need.

OCI_RUNTIME=/path/to/runtime picks the runtime (runc, crun, hull...); without
it the tests drive $HULL, the hull binary the suite was started with. The
same tests therefore prove a peer runtime on this host today and hull as soon
as it implements the verbs.
"""

import os
import shutil
import subprocess

import pytest

SRC = os.environ.get("HULL_SRC") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
DEPS = os.path.join(SRC, "scripts", "deps.sh")


def oci_runtime():
    """Absolute path of the runtime under test; skips when none is named."""
    rt = os.environ.get("OCI_RUNTIME") or os.environ.get("HULL")
    if not rt:
        # The same default as the rest of the suite: the hull just built.
        rt = os.path.join(SRC, "build", "hull")
    path = shutil.which(rt) if os.sep not in rt else rt
    if not path or not os.access(path, os.X_OK):
        # A named runtime that is not there is a broken set-up, not a skip.
        pytest.fail(f"OCI runtime {rt!r} is not an executable file")
    return os.path.abspath(path)


def runtime_state_exists(runtime, cid, root=None):
    """True when the runtime still knows container cid (`RUNTIME state ID`
    succeeds): the runtime-agnostic way to see that delete really happened."""
    cmd = [runtime] + (["--root", root] if root else []) + ["state", cid]
    return subprocess.run(cmd, capture_output=True, timeout=30).returncode == 0


def require_packages(group, binaries):
    """Install the deps.sh group when any of binaries is missing; skip the
    caller (printing why) only when installing is impossible."""
    missing = [b for b in binaries if not shutil.which(b)]
    if not missing:
        return
    r = subprocess.run(["sh", DEPS, group], capture_output=True, text=True, timeout=1200)
    still = [b for b in binaries if not shutil.which(b)]
    if still:
        why = (r.stderr or r.stdout).strip().splitlines()[-3:]
        msg = f"cannot install {', '.join(still)} (scripts/deps.sh {group} exited {r.returncode}: {' | '.join(why)})"
        print(msg)
        pytest.skip(msg)
