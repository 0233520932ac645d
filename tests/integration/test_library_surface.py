"""libhull's surface and the build around it, checked on the real build.

- libhull.so exports include/hull.h and nothing else; in libhull.a every
  other global is hidden (visibility), so no internal name (cg_*, vm_*,
  hj_*, hull_* helpers) is part of the interface.
- The layers below the front ends call no object that calls them back, and
  the CLI and hulld include no header from the orchestration or mechanism
  layers (docs/architecture.md says which internal headers they do use).
- The Makefile: static libraries from the compiler's multiarch directory,
  only the known glibc static-link notes hidden, `make clean` honours BUILD.
"""
import os
import re
import subprocess
from pathlib import Path

import pytest

from conftest import HULL, SRC

BUILD = Path(HULL).resolve().parent


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def api_text():
    """include/hull.h and the microVM part it includes (hull_vm.h)."""
    return "".join((SRC / "include" / h).read_text() for h in ("hull.h", "hull_vm.h"))


def public_api():
    """Function names declared HULL_PUBLIC in include/hull.h (hull_vm.h too)."""
    text = api_text()
    names = set(re.findall(r"^HULL_PUBLIC\b[^;(]*?\b(hull_\w+)\(", text, re.M))
    assert len(names) > 50, "hull.h declares its API with HULL_PUBLIC"
    return names


def declared_functions():
    """Every function hull.h declares (outside comments)."""
    text = re.sub(r"/\*.*?\*/", "", api_text(), flags=re.S)
    return set(re.findall(r"\b(hull_\w+)\s*\(", text))


def built(path):
    # `make all` builds every one of them: one missing is a broken build.
    assert path.exists(), f"{path} not built (make all)"
    return path


def test_every_hull_h_function_is_public():
    assert declared_functions() == public_api()


def test_shared_library_exports_only_the_public_api():
    so = built(BUILD / "libhull.so")
    out = run(["nm", "-D", "--defined-only", str(so)], check=True).stdout
    exported = {line.split()[-1] for line in out.splitlines() if line.strip()}
    assert exported == public_api(), (
        f"exported but not in hull.h: {sorted(exported - public_api())[:20]}; "
        f"in hull.h but not exported: {sorted(public_api() - exported)}")


def test_static_library_hides_internal_names():
    lib = built(BUILD / "libhull.a")
    out = run(["readelf", "-sW", str(lib)], check=True).stdout
    visible = set()
    for line in out.splitlines():
        f = line.split()
        # Num: Value Size Type Bind Vis Ndx Name
        if len(f) == 8 and f[4] == "GLOBAL" and f[5] == "DEFAULT" and f[6] != "UND":
            visible.add(f[7])
    assert visible == public_api(), sorted(visible - public_api())[:20]


def object_graph(objdir):
    """object -> set of objects whose globals it uses (from nm)."""
    defs, undef = {}, {}
    for o in sorted(objdir.glob("*/*.o")):
        name = str(o.relative_to(objdir))
        defs[name], undef[name] = set(), set()
        for line in run(["nm", str(o)], check=True).stdout.splitlines():
            f = line.split()
            if len(f) == 2 and f[0] == "U":
                undef[name].add(f[1])
            elif len(f) == 3 and f[1] in "TDBR":
                defs[name].add(f[2])
    owner = {s: o for o, ss in defs.items() for s in ss}
    return {o: {owner[s] for s in undef[o] if s in owner and owner[s] != o} for o in defs}


def cycles(graph):
    """Strongly connected components with more than one object (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


@pytest.mark.parametrize("layer", ["linux", "util", "spec", "container", "sandbox", "service", "vm"])
def test_no_object_calls_back_into_its_caller(layer):
    """mounts.c <-> devices.c and cgroup.c <-> cgroup_freeze.c were such
    circles; the shared helpers now sit below both (bind.c, cgroup_pids.c)."""
    objdir = built(BUILD / "obj" / "src" / "lib")
    graph = object_graph(objdir)
    found = [c for c in cycles(graph) if any(o.startswith(layer + "/") for o in c)]
    assert found == []


def test_json_helpers_hold_only_json():
    """The string-vector helpers have their own file (util/strv.c)."""
    obj = built(BUILD / "obj" / "src" / "lib" / "util" / "json.o")
    out = run(["nm", "--defined-only", "-g", str(obj)], check=True).stdout
    names = [line.split()[-1] for line in out.splitlines() if line.strip()]
    assert names and all(n.startswith(("hj_", "hull_json_")) for n in names), names


def test_daemon_handlers_depend_on_shared_helpers_not_on_each_other():
    """runs.c and sandboxes.c took resp_*/request_query from http.c and
    sandboxes.c took policy_check/new_id from runs.c; what they share is
    in response.c now."""
    objdir = built(BUILD / "obj" / "src")
    graph = object_graph(objdir)
    handlers = {"daemon/runs.o", "daemon/sandboxes.o"}
    for h in sorted(handlers):
        uses = graph[h]
        assert "daemon/response.o" in uses, (h, sorted(uses))
        assert not uses & (handlers | {"daemon/http.o"}), (h, sorted(uses))
    assert not graph["daemon/response.o"] & (handlers | {"daemon/http.o"})


def test_daemon_names_say_what_they_are():
    """No global new_id in hulld; the local run and the Redis job are two
    types with two names (struct run_job, struct queue_job)."""
    objdir = built(BUILD / "obj" / "src" / "daemon")
    for o in sorted(objdir.glob("*.o")):
        out = run(["nm", "--defined-only", "-g", str(o)], check=True).stdout
        assert "new_id" not in [line.split()[-1] for line in out.splitlines()], o
    sources = [*(SRC / "src" / "daemon").glob("*.[ch]"),
               *(SRC / "src" / "lib" / "service").glob("queue*.c")]
    for f in sources:
        assert not re.search(r"\bstruct job\b", f.read_text()), f


def front_end_includes():
    for d in ("cli", "daemon"):
        for f in sorted((SRC / "src" / d).glob("*.[ch]")):
            for inc in re.findall(r'^#include "([^"]+)"', f.read_text(), re.M):
                yield f.relative_to(SRC), inc


def test_front_ends_take_no_orchestration_or_mechanism_header():
    """The CLI and hulld use hull.h plus util/ and service/ headers only,
    as docs/architecture.md lists (hull_pid_alive came from container/)."""
    below = [(str(f), inc) for f, inc in front_end_includes()
             if inc.split("/")[0] in ("container", "sandbox", "vm", "linux", "spec")]
    assert below == []


def test_architecture_doc_lists_the_internal_headers_front_ends_use():
    internal = sorted({inc for _, inc in front_end_includes() if "/" in inc})
    doc = (SRC / "docs" / "architecture.md").read_text()
    assert "use only the public API" not in doc
    missing = [h for h in internal if f"`{h}`" not in doc]
    assert internal and missing == []


def test_daemon_header_is_guarded_whole(tmp_path):
    """daemon.h included twice compiles: its internal part is inside the
    include guard too."""
    src = tmp_path / "twice.c"
    src.write_text('#include "daemon.h"\n#include "daemon.h"\nint main(void) { return 0; }\n')
    cflags = run(["pkg-config", "--cflags", "json-c"]).stdout.split()
    r = run(["cc", "-std=c11", "-D_GNU_SOURCE", "-fsyntax-only", "-I", str(SRC / "include"),
             "-iquote", str(SRC / "src" / "lib"), "-iquote", str(SRC / "src" / "daemon"),
             *cflags, str(src)])
    assert r.returncode == 0, r.stderr


def make(*args, **kw):
    return run(["make", "-C", str(SRC), "--no-print-directory", *args], **kw)


def test_make_clean_removes_the_build_directory_it_is_given(tmp_path):
    # -n: what clean would run, without removing anything.
    r = make("-n", "clean", f"BUILD={tmp_path / 'b'}")
    assert r.returncode == 0, r.stderr
    assert str(tmp_path / "b") in r.stdout
    assert not re.search(r"rm -rf( --)? build\b", r.stdout), r.stdout


def test_static_libraries_come_from_the_compilers_multiarch_dir(tmp_path):
    """A compiler for another architecture names its own directory."""
    cc = tmp_path / "other-cc"
    cc.write_text('#!/bin/sh\n[ "$1" = -print-multiarch ] && { echo aarch64-linux-gnu; exit 0; }\n'
                  'exec cc "$@"\n')
    cc.chmod(0o755)
    r = make("-s", f"CC={cc}", f"BUILD={tmp_path / 'b'}",
             "--eval=print-static-libs: ; @echo $(STATIC_LIBS)", "print-static-libs")
    assert r.returncode == 0, r.stderr
    libs = r.stdout.split()
    assert libs and all(lib.startswith("/usr/lib/aarch64-linux-gnu/lib") for lib in libs), libs


def test_static_link_keeps_real_warnings(tmp_path):
    """Only glibc's notes about the named calls are dropped; another linker
    warning and a failing link's errors and status come through."""
    if not (Path("/usr/lib") / run(["cc", "-print-multiarch"]).stdout.strip() / "libc.a").exists():
        pytest.skip("no static libc")
    src = tmp_path / "w.c"
    src.write_text("#include <netdb.h>\n#include <stdio.h>\n"
                   "int main(void) { char b[L_tmpnam]; struct addrinfo *ai;\n"
                   "    return tmpnam(b) == NULL || getaddrinfo(\"x\", 0, 0, &ai); }\n")
    wrap = str(SRC / "scripts" / "link-static.sh")
    r = run([wrap, "dlopen,getaddrinfo", "cc", "-static", "-o", str(tmp_path / "w"), str(src)])
    assert r.returncode == 0, r.stderr
    assert "tmpnam" in r.stderr and "getaddrinfo" not in r.stderr, r.stderr
    r = run([wrap, "dlopen", "cc", "-static", "-o", str(tmp_path / "w"), str(src)])
    assert r.returncode == 0 and "Using 'getaddrinfo'" in r.stderr, r.stderr
    r = run([wrap, "dlopen,getaddrinfo", "cc", "-static", "-o", str(tmp_path / "w"), str(src),
             "-lhull-no-such-library"])
    assert r.returncode != 0 and "hull-no-such-library" in r.stderr, r.stderr


def test_hull_link_hides_no_warning_wholesale():
    r = make("-n", "-B", f"BUILD={BUILD}", f"{BUILD}/hull")
    assert r.returncode == 0, r.stderr
    assert "--no-warnings" not in r.stdout
    if " -static" in r.stdout:
        assert "scripts/link-static.sh" in r.stdout
