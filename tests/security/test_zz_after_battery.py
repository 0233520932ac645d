"""After the battery (this file sorts last): the host once more, as a
whole, for every run this session started (other testers may share the
machine: their runs are not judged here)."""
import os
import re
from pathlib import Path

from sandboxlib import EMPTY_ROOT, RUN_PIDS, cgroup_dirs, is_sandbox_uid, state_dirs


def creator_pid(name):
    """The pid a sandbox id names, or None: "sandbox-nPID-..." is a run made
    in another pid namespace (someone else's: this battery runs in the
    host's), whose pid means nothing here."""
    part = Path(name).name.split("-")[1]
    return int(part) if part.isdigit() else None


def creator_alive(name):
    pid = creator_pid(name)
    if pid is None:
        return True  # not judged: it may well run
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def ours(name):
    return creator_pid(name) in RUN_PIDS


def test_no_state_or_cgroups_left():
    assert RUN_PIDS  # the battery ran
    states = [s for s in state_dirs("sandbox-") if ours(s)]
    cgroups = [c for c in cgroup_dirs("sandbox-") if ours(c)]
    assert states == [] and cgroups == [], (states, cgroups)


def someone_elses(pid):
    """Whether pid belongs to a run that is not over: a sandbox whose runner
    still runs, or a container (an OCI one may map the same uids)."""
    cg = Path(f"/proc/{pid}/cgroup").read_text()
    m = re.search(r"/hull/sandbox-(\d+)-", cg)
    if m:
        return creator_alive(f"sandbox-{m.group(1)}-")
    return "/hull/" in cg


def test_no_sandbox_process_left():
    """No process of a battery run: none with a test token in its
    environment, none with an id of the sandboxes' host range that is not
    in the cgroup of a run still going on (someone else's)."""
    left = []
    for d in filter(str.isdigit, os.listdir("/proc")):
        try:
            env = Path(f"/proc/{d}/environ").read_bytes()
            status = Path(f"/proc/{d}/status").read_text()
            uid = int([l for l in status.splitlines() if l.startswith("Uid:")][0].split()[1])
            if "State:\tZ" in status:
                continue
            if b"HULL_TEST_TOKEN=hulltest-" in env or \
                    (is_sandbox_uid(uid) and not someone_elses(d)):
                left.append((d, uid, Path(f"/proc/{d}/cmdline").read_bytes()[:80]))
        except OSError:
            continue
    assert left == []


def test_no_mounts_or_namespaces_left():
    info = Path("/proc/self/mountinfo").read_text().splitlines()
    on_empty_root = [l for l in info if l.split()[4].startswith(EMPTY_ROOT)]
    assert on_empty_root == []
    # A namespace survives its processes only when pinned by an nsfs mount
    # (or an fd); none may name the sandboxes' state or run directories.
    nsfs = [l for l in info if l.split()[l.split().index("-") + 1] == "nsfs"]
    assert not [l for l in nsfs if "/run/hull" in l], nsfs


def test_no_temporary_files_left():
    """copy-out writes .NAME.hull-PID.tmp beside its target before the
    rename; the battery's targets were in /tmp/hull-sec-* directories."""
    leftovers = []
    for d in Path("/tmp").glob("hull-sec-*"):
        leftovers += [str(p) for p in d.rglob(".*.hull-*.tmp")]
    assert leftovers == []
