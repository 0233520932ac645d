"""The kernel-escape probes of test_kernel_escape.py, run in a long-lived
hulld sandbox through each way the API starts a program there: exec, a
background process, and a process on a PTY.

The battery's other files attack `hull sandbox run`. A long-lived sandbox
starts its programs another way (joining the running sandbox), so each of
its guarantees must be checked again there: until this test, those
programs ran with no seccomp filter at all."""
import base64
import json
import os

import pytest

from hulldlib import HULLD, Hulld, wait_until

from .test_kernel_escape import NSCLONE, REFUSED

pytestmark = pytest.mark.skipif(not os.path.exists(HULLD), reason="hulld not built")


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory, bins):
    tmp = tmp_path_factory.mktemp("hulld-sec")
    h = Hulld(tmp)
    os.makedirs(h.state, exist_ok=True)
    tok = h.token("user", "acme", allow="process-isolation")
    h.start()
    try:
        sids = {}
        for iso in ("container", "process"):
            r = h.request("POST", "/v1/sandboxes", {"isolation": iso}, tok)
            assert r.status == 201, r
            sids[iso] = r.json["id"]
            r = h.request("PUT", f"/v1/sandboxes/{sids[iso]}/fs/tmp/hostile?mode=0755",
                          (bins / "hostile").read_bytes(), tok, raw=True)
            assert r.status == 201, r
        yield h, tok, sids["container"], sids["process"]
        for sid in sids.values():
            h.request("DELETE", f"/v1/sandboxes/{sid}", token=tok)
    finally:
        rc = h.stop()
    assert rc == 0, h.log.read_text()
    assert wait_until(lambda: h.leaks() == ([], [], []), 30), h.leaks()


def probe(sandbox, how, *args, level="container"):
    """stdout of `/tmp/hostile ARGS` started the given way."""
    h, tok, sid, process_sid = sandbox
    if level == "process":
        sid = process_sid
    cmd = ["/tmp/hostile", *args]
    if how == "exec":
        r = h.request("POST", f"/v1/sandboxes/{sid}/exec", {"cmd": cmd}, tok, timeout=300)
        assert r.status == 200 and r.json["verdict"] == "ok", r
        return r.json["stdout"]
    body = {"cmd": cmd}
    if how == "pty":
        body["pty"] = {"rows": 24, "cols": 80}
    r = h.request("POST", f"/v1/sandboxes/{sid}/processes", body, tok)
    assert r.status == 201, r
    pid = r.json["id"]
    r = h.request("POST", f"/v1/sandboxes/{sid}/processes/{pid}/wait", {"timeout": "300s"}, tok,
                  timeout=330)
    assert r.status == 200 and r.json["state"] == "exited", r
    assert r.json["result"]["exit_code"] == 0, r
    r = h.request("GET", f"/v1/sandboxes/{sid}/processes/{pid}/output?follow=false", token=tok)
    assert r.status == 200, r
    out = b""
    for line in r.body.splitlines():
        ev = json.loads(line)
        if ev["type"] in ("stdout", "stderr"):
            out += base64.b64decode(ev["data_b64"]) if "data_b64" in ev else ev["data"].encode()
    return out.decode(errors="replace").replace("\r\n", "\n")


def answers(out):
    got = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3:
            got[parts[0]] = parts[2]
    return got


@pytest.mark.parametrize("how", ["exec", "process", "pty"])
def test_refused_syscalls_from_what_the_api_starts(sandbox, how):
    got = answers(probe(sandbox, how, "syscalls"))
    assert got == REFUSED, {k: (got.get(k), v) for k, v in REFUSED.items() if got.get(k) != v}


@pytest.mark.parametrize("how", ["exec", "process"])
def test_no_namespace_through_clone_from_what_the_api_starts(sandbox, how):
    got = answers(probe(sandbox, how, "nsclone"))
    assert got == NSCLONE, {k: (got.get(k), v) for k, v in NSCLONE.items() if got.get(k) != v}


def test_x32_is_killed_in_what_the_api_starts(sandbox):
    h, tok, sid, _ = sandbox
    r = h.request("POST", f"/v1/sandboxes/{sid}/exec", {"cmd": ["/tmp/hostile", "x32"]}, tok,
                  timeout=300)
    assert r.status == 200, r
    assert (r.json["verdict"], r.json["signal"]) == ("signaled", 31), r.json


@pytest.mark.parametrize("how", ["exec", "process"])
def test_process_level_refuses_the_key_calls_in_what_the_api_starts(sandbox, how):
    """The process level's own filter (a uid's keyrings outlive its run)
    holds for what the API starts there too."""
    got = answers(probe(sandbox, how, "syscalls", level="process"))
    keys = {k: got.get(k) for k in ("keyctl", "add_key", "request_key")}
    assert keys == {"keyctl": "EPERM", "add_key": "EPERM", "request_key": "EPERM"}, got
