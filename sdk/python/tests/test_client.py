"""The client against a stub hulld (a stdlib HTTP server on a unix socket):
what it sends, and how it maps every answer, without a daemon. The real
daemon is exercised by test_e2e.py."""
import base64
import json

import pytest
from stub import Stub

import hull


@pytest.fixture
def stub():
    s = Stub()
    yield s
    s.close()
    assert not s.answers, "answers left unused"


@pytest.fixture
def client(stub):
    return hull.Client(socket_path=stub.path, token="tok-123")


RESULT = {"verdict": "ok", "exit_code": 0, "signal": 0, "cpu_time_ms": 3, "wall_time_ms": 4,
          "max_memory_kb": 900, "stdout": "42\n", "stdout_truncated": False, "stderr": "",
          "stderr_truncated": False, "files": [], "isolation": "container",
          "id": "r-1", "state": "finished"}


def test_run_sends_the_request_and_types_the_result(stub, client):
    stub.answer(200, RESULT)
    r = client.run(["python3", "-c", "print(42)"], stdin=b"in", files={"a.py": "x=1"},
                   env={"K": 1}, limits={"cpu_time": "2s", "pids": 16}, isolation="process",
                   workdir="/tmp", network="none")
    req = stub.requests[0]
    assert req["method"] == "POST" and req["path"] == "/v1/runs"
    assert req["headers"]["Authorization"] == "Bearer tok-123"
    assert stub.last_json() == {"cmd": ["python3", "-c", "print(42)"], "stdin": "in",
                                "files": {"a.py": "x=1"}, "env": {"K": "1"},
                                "limits": {"cpu_time": "2s", "pids": 16},
                                "isolation": "process", "workdir": "/tmp", "network": "none"}
    assert isinstance(r, hull.Result) and r.ok and r.stdout == "42\n" and r.id == "r-1"
    assert r.stdout_bytes == b"42\n" and r.cpu_time_ms == 3 and r.check() is r


def test_limits_follow_the_apis_units(stub, client):
    """Durations are seconds (or a string with a unit), sizes bytes; a
    timedelta is sent as seconds."""
    import datetime
    stub.answer(200, RESULT)
    stub.answer(201, {"id": "s-1", "state": "running"})
    client.run(["true"], limits={"cpu_time": datetime.timedelta(milliseconds=500),
                                 "wall_time": 3, "memory": 64 << 20, "output": "1M"})
    assert stub.last_json()["limits"] == {"cpu_time": 0.5, "wall_time": 3,
                                          "memory": 64 << 20, "output": "1M"}
    client.sandbox(lifetime=datetime.timedelta(minutes=5))
    assert stub.last_json() == {"lifetime": 300.0}


def test_string_command_runs_under_sh(stub, client):
    stub.answer(200, RESULT)
    client.run("echo $((6*7))")
    assert stub.last_json()["cmd"] == ["sh", "-c", "echo $((6*7))"]


def test_binary_output_and_failed_verdicts(stub, client):
    raw = bytes(range(256))
    stub.answer(200, dict(RESULT, verdict="exit_nonzero", exit_code=3, stdout=None,
                          stdout_base64=base64.b64encode(raw).decode()))
    r = client.run(["x"])
    assert r.stdout_bytes == raw and not r.ok
    with pytest.raises(hull.RunFailed, match="exit_nonzero .exit code 3."):
        r.check()


def test_bytes_that_are_not_utf8_are_refused_before_sending(stub, client):
    with pytest.raises(ValueError, match="not UTF-8"):
        client.run(["cat"], stdin=b"\xff\xfe")
    assert stub.requests == []


@pytest.mark.parametrize("status,body,headers,cls,check", [
    (400, {"error": {"code": "invalid_request", "message": "limits.memory: bad",
                     "field": "limits.memory"}}, {}, hull.ValidationError,
     lambda e: e.field == "limits.memory" and e.code == "invalid_request"),
    (400, {"error": {"code": "invalid_json", "message": "not JSON"}}, {}, hull.BadRequest,
     lambda e: not isinstance(e, hull.ValidationError)),
    (401, {"error": {"code": "unauthorized", "message": "no"}}, {}, hull.AuthError, None),
    (403, {"error": {"code": "forbidden", "message": "reader"}}, {}, hull.PermissionDenied, None),
    (404, {"error": {"code": "not_found", "message": "x"}}, {}, hull.NotFound, None),
    (405, {"error": {"code": "method_not_allowed", "message": "x"}}, {"Allow": "GET"},
     hull.MethodNotAllowed, None),
    (409, {"error": {"code": "conflict", "message": "done"}}, {}, hull.Conflict, None),
    (413, {"error": {"code": "payload_too_large", "message": "big"}}, {},
     hull.PayloadTooLarge, None),
    (429, {"error": {"code": "queue_full", "message": "busy"}}, {"Retry-After": "2"},
     hull.RateLimited, lambda e: e.retry_after == 2.0),
    (500, {"error": {"code": "internal", "message": "boom"}}, {}, hull.ServerError, None),
    (501, {"error": {"code": "not_implemented", "message": "microvm"}}, {},
     hull.NotImplementedByServer, lambda e: isinstance(e, hull.ServerError)),
    (503, {"error": {"code": "shutting_down", "message": "bye"}}, {}, hull.Unavailable, None),
    (502, b"<html>bad gateway</html>", {}, hull.ServerError,
     lambda e: "bad gateway" in e.message),
])
def test_error_statuses_map_to_typed_exceptions(stub, client, status, body, headers, cls, check):
    stub.answer(status, body, **headers)
    with pytest.raises(cls) as ei:
        client.run(["true"])
    e = ei.value
    assert e.status == status and isinstance(e, hull.APIError) and isinstance(e, hull.HullError)
    assert check is None or check(e)


def test_no_daemon_is_a_transport_error():
    c = hull.Client(socket_path="/nonexistent/hulld.sock", token="t")
    with pytest.raises(hull.TransportError, match="/nonexistent/hulld.sock"):
        c.health()


def test_async_submit_get_wait_cancel(stub, client):
    stub.answer(202, {"id": "r-9", "state": "queued"})
    run = client.submit(["sleep", "1"], limits={"wall_time": "5s"})
    assert stub.last_json()["async"] is True and run.id == "r-9" and not run.done
    stub.answer(200, {"id": "r-9", "state": "running"})
    stub.answer(200, dict(RESULT, id="r-9"))
    res = client.wait("r-9", poll=0.001)
    assert res.ok and [r["path"] for r in stub.requests[1:]] == ["/v1/runs/r-9"] * 2
    stub.answer(200, {"id": "r-9", "state": "cancelled"})
    run = client.cancel("r-9")
    assert stub.requests[-1]["method"] == "DELETE" and run.state == "cancelled" and run.done
    stub.answer(200, {"id": "r-9", "state": "cancelled"})
    with pytest.raises(hull.Conflict, match="ended as cancelled"):
        client.wait("r-9")
    stub.answer(200, {"runs": [{"id": "r-9", "state": "cancelled"}]})
    assert [r.id for r in client.runs(state="cancelled", limit=5)] == ["r-9"]
    assert stub.requests[-1]["path"] == "/v1/runs?state=cancelled&limit=5"


def test_queued_run_goes_through_the_queue_and_waits(stub, client):
    stub.answer(202, {"id": "r-q", "state": "queued", "queue": True})
    stub.answer(200, dict(RESULT, id="r-q"))
    assert client.run(["true"], queue=True, poll=0.001).ok
    assert stub.requests[0]["body"] and json.loads(stub.requests[0]["body"])["queue"] is True


def test_sandbox_context_manager_execs_moves_files_and_deletes(stub, client):
    sbx = {"id": "s-1", "state": "running", "isolation": "container"}
    stub.answer(201, sbx)
    stub.answer(201, {"name": "a b.txt", "path": "/tmp/dir/a b.txt", "type": "file", "size": 3})
    stub.answer(200, b"\x00\x01\x02")
    stub.answer(200, RESULT)
    stub.answer(200, {"id": "s-1", "state": "destroyed"})
    with client.sandbox(isolation="container", limits={"memory": "64M"}, lifetime="5m") as sb:
        assert stub.last_json() == {"isolation": "container", "limits": {"memory": "64M"},
                                    "lifetime": "5m"}
        assert sb.files.write("/tmp/dir/a b.txt", b"abc")["size"] == 3
        assert stub.requests[-1]["path"] == "/v1/sandboxes/s-1/fs/tmp/dir/a%20b.txt"
        assert stub.requests[-1]["body"] == b"abc"
        assert sb.files.read("dir/a b.txt") == b"\x00\x01\x02"
        assert sb.exec(["ls"]).ok
    assert stub.requests[-1]["method"] == "DELETE" and stub.requests[-1]["path"] == "/v1/sandboxes/s-1"
    assert sb.info.state == "destroyed"
    sb.delete()  # a second delete sends nothing


def test_sandbox_is_deleted_when_the_block_raises(stub, client):
    stub.answer(201, {"id": "s-2", "state": "running"})
    stub.answer(200, {"id": "s-2", "state": "destroyed"})
    with pytest.raises(RuntimeError):
        with client.sandbox():
            raise RuntimeError("user code failed")
    assert stub.requests[-1]["method"] == "DELETE"


def test_relative_sandbox_paths_are_under_tmp(stub, client):
    """Relative paths stay the first files API's (under /tmp) and cannot
    climb out of it; absolute ones go anywhere, resolved by hulld inside
    the sandbox."""
    stub.answer(201, {"id": "s-3", "state": "running"})
    stub.answer(201, {"name": "passwd", "path": "/etc/passwd", "type": "file", "size": 1})
    stub.answer(200, {"id": "s-3", "state": "destroyed"})
    with client.sandbox() as sb:
        with pytest.raises(ValueError, match="under /tmp"):
            sb.files.write("../etc/passwd", b"x")
        assert sb.files.write("/etc/passwd", b"x").path == "/etc/passwd"
        assert stub.requests[-1]["path"] == "/v1/sandboxes/s-3/fs/etc/passwd"


def test_token_from_environment_and_url_validation(monkeypatch, stub):
    monkeypatch.setenv("HULL_TOKEN", "from-env")
    c = hull.Client(socket_path=stub.path)
    stub.answer(200, {"status": "ok"})
    assert c.health() == {"status": "ok"}
    assert stub.requests[-1]["headers"]["Authorization"] == "Bearer from-env"
    with pytest.raises(ValueError):
        hull.Client(url="ftp://x")
    with pytest.raises(ValueError):
        hull.Client(socket_path="/a", url="https://x:1")


# ---- images -------------------------------------------------------------------------

IMAGE = {"name": "localhost:5000/app:1", "digest": "sha256:" + "ab" * 32, "size": 1234,
         "created": "2026-01-01T00:00:00Z", "media_type": "application/vnd.oci.image.manifest.v1+json"}


def test_images_list_get_pull_remove_send_what_the_api_takes(stub, client):
    stub.answer(200, {"images": [IMAGE]})
    imgs = client.images.list()
    assert stub.requests[-1]["method"] == "GET" and stub.requests[-1]["path"] == "/v1/images"
    assert [i.name for i in imgs] == ["localhost:5000/app:1"] and imgs[0].size == 1234
    assert isinstance(imgs[0], hull.ImageInfo) and imgs[0].layers == []
    full = dict(IMAGE, manifest_digest=IMAGE["digest"], platform="linux/amd64",
                config={"cmd": ["sh"]}, layers=[{"digest": "sha256:" + "cd" * 32, "size": 9}],
                in_use=False)
    stub.answer(200, full)
    info = client.images.get("localhost:5000/app:1")
    # One path segment, whatever the reference holds (":" and "/").
    assert stub.requests[-1]["path"] == "/v1/images/localhost%3A5000%2Fapp%3A1"
    assert info.platform == "linux/amd64" and info.config == {"cmd": ["sh"]}
    assert info.in_use is False and len(info.layers) == 1
    stub.answer(201, full)
    assert client.images.pull("localhost:5000/app:1", tls_verify=False).digest == IMAGE["digest"]
    req = stub.requests[-1]
    assert req["method"] == "POST" and req["path"] == "/v1/images"
    assert stub.last_json() == {"ref": "localhost:5000/app:1", "tls_verify": False}
    stub.answer(201, full)
    client.images.pull("busybox", platform="linux/arm64")
    assert stub.last_json() == {"ref": "busybox", "platform": "linux/arm64"}
    stub.answer(200, {"name": IMAGE["name"], "digest": IMAGE["digest"], "removed": True})
    assert client.images.remove("localhost:5000/app:1")["removed"] is True
    assert stub.requests[-1]["method"] == "DELETE"
    assert stub.requests[-1]["path"] == "/v1/images/localhost%3A5000%2Fapp%3A1"
    stub.answer(200, {"name": IMAGE["name"], "digest": IMAGE["digest"], "removed": True})
    client.images.remove(IMAGE["digest"], force=True)
    assert stub.requests[-1]["path"] == "/v1/images/sha256%3A" + "ab" * 32 + "?force=true"


def test_image_on_runs_and_sandboxes(stub, client):
    stub.answer(200, RESULT)
    client.run(["cat", "/etc/os-release"], image="localhost:5000/app:1")
    assert stub.last_json() == {"cmd": ["cat", "/etc/os-release"], "image": "localhost:5000/app:1"}
    stub.answer(202, {"id": "r-2", "state": "queued"})
    client.submit(["true"], image="app")
    assert stub.last_json() == {"cmd": ["true"], "image": "app", "async": True}
    stub.answer(201, {"id": "s-9", "state": "running"})
    stub.answer(200, {"id": "s-9", "state": "destroyed"})
    with client.sandbox(image="app"):
        assert stub.last_json() == {"image": "app"}


@pytest.mark.parametrize("status,code,cls", [
    (403, "forbidden", hull.PermissionDenied),
    (404, "not_found", hull.NotFound),
    (409, "conflict", hull.Conflict),
    (429, "too_many_pulls", hull.RateLimited),
    (502, "registry_error", hull.RegistryError),
    (504, "registry_timeout", hull.RegistryError),
    (507, "insufficient_storage", hull.ServerError),
])
def test_image_errors_are_typed(stub, client, status, code, cls):
    stub.answer(status, {"error": {"code": code, "message": "m"}})
    with pytest.raises(cls) as ei:
        client.images.pull("app")
    assert ei.value.status == status and ei.value.code == code


def test_networks_are_listed_and_named_in_runs_and_sandboxes(stub, client):
    stub.answer(200, {"networks": [{"name": "hull0", "bridge": "hullbr0",
                                    "subnet": "10.89.0.0/24", "gateway": "10.89.0.1",
                                    "internal": False, "allow_peers": True, "created": 1,
                                    "members": 3}], "default": "hull0"})
    nets = client.networks()
    assert stub.requests[-1]["method"] == "GET" and stub.requests[-1]["path"] == "/v1/networks"
    assert len(nets) == 1 and isinstance(nets[0], hull.NetworkInfo)
    n = nets[0]
    assert (n.name, n.subnet, n.gateway, n.members) == ("hull0", "10.89.0.0/24", "10.89.0.1", 3)
    assert n.allow_peers and not n.internal and n.ipv6_subnet is None and n.raw["bridge"]
    net = {"name": "hull0", "egress": ["198.18.0.0/15:443/tcp"],
           "publish": ["127.0.0.1:8080:80"]}
    stub.answer(200, RESULT)
    client.run(["true"], network=net)
    assert stub.last_json()["network"] == net
    stub.answer(403, {"error": {"code": "forbidden", "field": "network.publish[0]",
                                "permission": "publish-public", "message": "needs a grant"}})
    with pytest.raises(hull.PermissionDenied) as e:
        client.sandbox(network={"name": "hull0", "publish": ["8080:80"]})
    assert e.value.permission == "publish-public" and e.value.field == "network.publish[0]"
    assert stub.last_json() == {"network": {"name": "hull0", "publish": ["8080:80"]}}
