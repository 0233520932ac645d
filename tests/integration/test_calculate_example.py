"""The worked example of docs/examples/calculate/, end to end: the README's
own command line, then user functions that behave, loop, eat memory, fork,
reach for the network, sleep, flood, raise -- each with its verdict, and
nothing left on the host after any of them."""
import json
import re
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from sandboxlib import HULL, SRC, Sandbox

EXAMPLE = SRC / "docs" / "examples" / "calculate"
TOOL = Path(HULL).parent / "tests" / "sandboxtool"


def readme_command():
    """The sh block after the test marker in the README, as argv."""
    text = (EXAMPLE / "README.md").read_text()
    block = re.search(r"test_calculate_example\.py -->\n```sh\n(.*?)```", text, re.S).group(1)
    argv = shlex.split(block.replace("\\\n", " "))
    assert argv[:3] == ["hull", "sandbox", "run"], argv
    return argv[3:]


@pytest.fixture
def work():
    """A copy of the example directory, readable by anyone (copy-in sources)."""
    d = Path(tempfile.mkdtemp(prefix="hull-calc-"))
    for f in ("runner.py", "user_code.py", "inputs.json"):
        shutil.copy(EXAMPLE / f, d / f)
    yield d
    shutil.rmtree(d)


def run_user_code(work, code, inputs=None, extra=()):
    """The README's command on another user file (and inputs)."""
    (work / "user_code.py").write_text(code)
    if inputs is not None:
        (work / "inputs.json").write_text(json.dumps(inputs))
    sb = Sandbox()
    opts = readme_command()
    sep = opts.index("--")
    p, out, err = sb.start(*opts[:sep], *extra, cmd=opts[sep + 1:])  # extra wins
    return sb.finish(p, out, err)


@pytest.fixture
def calc(work, monkeypatch):
    # The README's relative --copy-in and --stdin paths: run from its copy.
    monkeypatch.chdir(work)

    def run(code, inputs=None, extra=()):
        return run_user_code(work, code, inputs, extra)
    return run


def test_readme_command_as_written(work, monkeypatch):
    monkeypatch.chdir(work)
    p = subprocess.run([HULL, "sandbox", "run", *readme_command()], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p
    r = json.loads(p.stdout)
    assert r["verdict"] == "ok", r
    assert json.loads(r["stdout"]) == {"count": 5, "sum": 15.0, "mean": 3.0, "max": 5.5,
                                       "scaled": [6.0, 3.0, 8.0, 2.0, 11.0]}


def test_normal_function(calc):
    r = calc("def calculate(inputs):\n"
             "    print('debug output goes to stderr')\n"
             "    return {'total': sum(inputs['xs']), 'names': sorted(inputs['names'])}\n",
             inputs={"xs": [1, 2, 3.5], "names": ["b", "a"]})
    assert r.verdict == "ok", r
    assert json.loads(r.out) == {"total": 6.5, "names": ["a", "b"]}
    assert r.err == "debug output goes to stderr\n"


def test_loops_forever(calc):
    # A wall clock that cannot come first, even on a busy machine.
    r = calc("def calculate(inputs):\n    while True:\n        pass\n",
             extra=("--wall-time", "120s"))
    assert r.verdict == "cpu_time_limit", r
    assert r.j["cpu_time_ms"] >= 2000 and r.out == ""


def test_allocates_10_gib(calc):
    # In 100 MiB pieces, so the kernel sees the pages being touched rather
    # than one allocation it may refuse up front on a small machine.
    r = calc("def calculate(inputs):\n"
             "    blocks = [bytearray(100 << 20) for _ in range(100)]\n"
             "    return len(blocks)\n")
    assert r.verdict == "memory_limit", r
    assert r.j["max_memory_kb"] <= 128 * 1024


def test_forks_without_end(calc):
    r = calc("import os\n"
             "def calculate(inputs):\n"
             "    while True:\n"
             "        os.fork()\n")
    assert r.verdict == "pids_limit", r


def test_opens_a_socket(calc):
    r = calc("import socket\n"
             "def calculate(inputs):\n"
             "    s = socket.socket()\n"
             "    s.connect(('93.184.216.34', 80))\n"
             "    return 'connected'\n")
    assert r.verdict == "exit_nonzero" and r.j["exit_code"] == 1, r
    assert "OSError: [Errno 101] Network is unreachable" in r.err, r.err
    assert r.out == ""


def test_resolves_a_name(calc):
    r = calc("import socket\n"
             "def calculate(inputs):\n"
             "    return socket.gethostbyname('example.com')\n")
    assert r.verdict == "exit_nonzero", r
    assert "socket.gaierror" in r.err, r.err


def test_sleeps(calc):
    r = calc("import time\ndef calculate(inputs):\n    time.sleep(3600)\n")
    assert r.verdict == "wall_time_limit" and r.j["wall_time_ms"] >= 5000, r


def test_floods_output(calc):
    r = calc("import sys\n"
             "def calculate(inputs):\n"
             "    while True:\n"
             "        sys.__stdout__.write('x' * 65536)\n")
    assert r.verdict == "output_limit" and r.j["stdout_truncated"], r
    assert len(r.out) == 64 * 1024


def test_raises(calc):
    r = calc("def calculate(inputs):\n    return inputs['missing']\n")
    assert r.verdict == "exit_nonzero", r
    assert "KeyError: 'missing'" in r.err


def test_writes_outside_tmp(calc):
    r = calc("def calculate(inputs):\n"
             "    open('/usr/lib/evil', 'w')\n")
    assert r.verdict == "exit_nonzero", r
    assert "Read-only file system" in r.err


def test_bad_inputs_json(calc, work):
    (work / "inputs.json").write_text("{not json")
    r = calc("def calculate(inputs):\n    return 1\n")
    assert r.verdict == "exit_nonzero" and "JSONDecodeError" in r.err, r


def run_tool(req):
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        p = subprocess.Popen([str(TOOL)], stdin=subprocess.PIPE, stdout=out, stderr=err)
        p.communicate(json.dumps(req).encode(), timeout=60)
        out.seek(0)
        err.seek(0)
        Sandbox().assert_clean(p.pid)
        return p.returncode, out.read().decode(), err.read().decode()


def test_through_the_library():
    """The request form the REST API will take, run by libhull directly:
    inline files under /tmp and stdin as data."""
    req = {
        "cmd": ["python3", "-I", "/tmp/runner.py", "/tmp/user_code.py"],
        "limits": {"cpu_time": "2s", "wall_time": "5s", "memory": "128M", "pids": 16,
                   "output": "64K"},
        "files": {"runner.py": (EXAMPLE / "runner.py").read_text(),
                  "user_code.py": (EXAMPLE / "user_code.py").read_text()},
        "stdin": (EXAMPLE / "inputs.json").read_text(),
    }
    rc, out, err = run_tool(req)
    assert rc == 0, (out, err)
    r = json.loads(out)
    assert r["verdict"] == "ok", r
    assert json.loads(r["stdout"])["sum"] == 15.0
    req["limits"]["memory"] = "lots"
    rc, out, err = run_tool(req)
    assert rc == 2 and "limits.memory: 'lots' is not a size" in err, (out, err)
