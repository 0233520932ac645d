"""vm/ is layered: read from the objects of the build (nm), no file of
src/lib/vm calls a file that calls it back, directly or around a circle,
and the public lifecycle verbs live in one file on top (api.c), so that
template.c and snapshot.c build on the primitives only (issue 16)."""
import os
import shutil
import subprocess

import pytest

from test_vm_lib import HULL

OBJ = os.path.join(os.path.dirname(HULL), "obj", "src", "lib", "vm")
VERBS = ["hull_vm_create", "hull_vm_start", "hull_vm_pause", "hull_vm_resume", "hull_vm_stop",
         "hull_vm_delete", "hull_vm_state", "hull_vm_snapshot", "hull_vm_restore", "hull_vm_initrd"]


def symbols(obj, *flags):
    out = subprocess.run(["nm", "--format=posix", *flags, obj], capture_output=True, text=True,
                         check=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


@pytest.fixture(scope="module")
def graph():
    if not os.path.isdir(OBJ) or not shutil.which("nm"):
        pytest.skip(f"needs the build's objects in {OBJ} and nm")
    objs = sorted(f for f in os.listdir(OBJ) if f.endswith(".o"))
    assert "vm.o" in objs and "snapshot.o" in objs and "template.o" in objs, objs
    defined = {o: symbols(os.path.join(OBJ, o), "--defined-only", "--extern-only") for o in objs}
    used = {o: symbols(os.path.join(OBJ, o), "--undefined-only") for o in objs}
    calls = {}
    for o in objs:
        calls[o] = {}
        for p in objs:
            common = used[o] & defined[p]
            if p != o and common:
                calls[o][p] = sorted(common)
    return defined, calls


def test_no_file_of_vm_calls_back_up(graph):
    _, calls = graph
    # Depth-first search for a circle in "file calls file".
    state, stack = {}, []

    def visit(o):
        state[o] = "open"
        stack.append(o)
        for p in sorted(calls[o]):
            if state.get(p) == "open":
                circle = stack[stack.index(p):] + [p]
                hops = [f"{a} -> {b} ({', '.join(calls[a][b])})" for a, b in zip(circle, circle[1:])]
                pytest.fail("vm/ calls itself in a circle:\n  " + "\n  ".join(hops))
            if p not in state:
                visit(p)
        stack.pop()
        state[o] = "done"

    for o in sorted(calls):
        if o not in state:
            visit(o)


def test_public_verbs_live_in_one_file_above_the_primitives(graph):
    defined, calls = graph
    homes = {v: sorted(o for o in defined if v in defined[o]) for v in VERBS}
    assert all(h == ["api.o"] for h in homes.values()), homes
    # Nothing builds on the verbs; template and snapshot build on vm.c's primitives.
    assert not [o for o in calls if "api.o" in calls[o]], calls
    assert "vm.o" in calls["template.o"] and "vm.o" in calls["snapshot.o"]
    assert "snapshot.o" in calls["template.o"] and "template.o" not in calls["snapshot.o"]
