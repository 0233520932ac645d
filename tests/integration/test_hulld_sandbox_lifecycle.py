"""hulld: a sandbox's metadata (labels) and its extendable timeout, over
raw HTTP (docs/api.md, "Sandboxes").

- POST /v1/sandboxes takes "metadata": {"k": "v"} (at most 32 keys, key and
  value at most 256 bytes; a 400 naming the JSON path beyond, and nothing
  made); the sandbox JSON shows it, also once destroyed;
- GET /v1/sandboxes?metadata.k=v lists only the sandboxes whose metadata
  has every pair asked for, of the caller's tenant only;
- POST /v1/sandboxes/{id}/timeout {"lifetime": "30m"} sets a new idle
  lifetime (at most 24h) counted from now, and the reaper follows it."""
import os
import urllib.parse
from pathlib import Path

import pytest

from hulldlib import HULLD, Hulld, wait_until

pytestmark = pytest.mark.skipif(not os.path.exists(HULLD), reason="hulld not built")


@pytest.fixture(scope="module")
def d(tmp_path_factory):
    h = Hulld(tmp_path_factory.mktemp("hulld"), "--tenant-sandboxes", "8")
    Path(h.state).mkdir(parents=True)
    h.tokens = {"user": h.token("user", "acme"), "other": h.token("user", "globex")}
    h.start()
    yield h
    rc = h.stop()
    assert rc == 0, h.log.read_text()
    assert h.leaks() == ([], [], [])


def call(d, method, path, body=None, who="user"):
    return d.request(method, path, body, d.tokens[who])


def create(d, who="user", **body):
    r = call(d, "POST", "/v1/sandboxes", body, who)
    assert r.status == 201, r
    return r.json


def listed(d, who="user", **filters):
    q = urllib.parse.urlencode({f"metadata.{k}": v for k, v in filters.items()})
    r = call(d, "GET", "/v1/sandboxes" + ("?" + q if q else ""), who=who)
    assert r.status == 200, r
    return [s["id"] for s in r.json["sandboxes"]]


def delete(d, sid, who="user"):
    assert call(d, "DELETE", f"/v1/sandboxes/{sid}", who=who).status == 200


def test_metadata_is_shown_and_filters_the_list(d):
    a = create(d, metadata={"team": "ml", "job": "train", "ünï": "cødé"})
    b = create(d, metadata={"team": "ml", "job": "eval"})
    c = create(d)
    o = create(d, "other", metadata={"team": "ml"})
    try:
        assert a["metadata"] == {"team": "ml", "job": "train", "ünï": "cødé"}
        assert c["metadata"] == {}
        got = call(d, "GET", f"/v1/sandboxes/{a['id']}").json
        assert got["metadata"] == a["metadata"]
        every = call(d, "GET", "/v1/sandboxes").json["sandboxes"]
        assert {s["id"]: s["metadata"] for s in every if s["id"] in (a["id"], c["id"])} == {
            a["id"]: a["metadata"], c["id"]: {}}
        # Filters: one pair, several ANDed, none matching; a tenant's own only.
        assert sorted(listed(d, team="ml")) == sorted([a["id"], b["id"]])
        assert listed(d, team="ml", job="eval") == [b["id"]]
        assert listed(d, team="ml", job="nope") == []
        assert listed(d, job="train", **{"ünï": "cødé"}) == [a["id"]]
        assert listed(d, "other", team="ml") == [o["id"]]
        assert set(listed(d)) >= {a["id"], b["id"], c["id"]} and o["id"] not in listed(d)
    finally:
        for s in (a, b, c):
            delete(d, s["id"])
        delete(d, o["id"], "other")
    # A destroyed sandbox still shows what it was labelled with, and is no
    # longer listed.
    gone = call(d, "GET", f"/v1/sandboxes/{a['id']}").json
    assert gone["state"] == "destroyed" and gone["metadata"]["job"] == "train"
    assert listed(d, team="ml") == []


@pytest.mark.parametrize("metadata,field", [
    ("ml", "metadata"),
    (["team", "ml"], "metadata"),
    ({"team": 1}, "metadata.team"),
    ({"team": None}, "metadata.team"),
    ({"team": {"x": "y"}}, "metadata.team"),
    ({"": "v"}, "metadata."),
    ({"k" * 257: "v"}, "metadata." + "k" * 64),
    ({"team": "v" * 257}, "metadata.team"),
    ({"nul": "a\u0000b"}, "metadata.nul"),
    ({f"k{i}": "v" for i in range(33)}, "metadata"),
])
def test_bad_metadata_is_refused_by_path_and_nothing_is_made(d, metadata, field):
    before = listed(d)
    r = call(d, "POST", "/v1/sandboxes", {"metadata": metadata})
    assert r.status == 400, r
    err = r.json["error"]
    assert err["field"] == field and err["code"] == "invalid_request", err
    assert listed(d) == before


def test_metadata_at_its_limits_is_taken(d):
    big = {f"k{i:02d}" + "x" * 253: "v" * 256 for i in range(32)}
    assert all(len(k) == 256 for k in big)
    s = create(d, metadata=big)
    try:
        assert s["metadata"] == big
        assert listed(d, **{next(iter(big)): "v" * 256}) == [s["id"]]
    finally:
        delete(d, s["id"])


def test_exec_and_filters_refuse_what_they_do_not_take(d):
    s = create(d, metadata={"a": "b"})
    try:
        r = call(d, "POST", f"/v1/sandboxes/{s['id']}/exec",
                 {"cmd": ["true"], "metadata": {"a": "c"}})
        assert r.status == 400 and r.json["error"]["field"] == "metadata", r
        r = call(d, "GET", "/v1/sandboxes?metadata.=x")
        assert r.status == 400 and r.json["error"]["field"] == "metadata", r
        r = call(d, "GET", "/v1/sandboxes?metadata.a=" + "b" * 257)
        assert r.status == 400, r
        # A parameter that is not a filter does not narrow the list.
        assert s["id"] in [x["id"] for x in
                           call(d, "GET", "/v1/sandboxes?other=1").json["sandboxes"]]
    finally:
        delete(d, s["id"])


def test_timeout_sets_a_new_lifetime(d):
    s = create(d, lifetime="1h")
    sid = s["id"]
    try:
        assert s["lifetime_s"] == 3600
        r = call(d, "POST", f"/v1/sandboxes/{sid}/timeout", {"lifetime": "24h"})
        assert r.status == 200, r
        got = r.json
        assert got["id"] == sid and got["lifetime_s"] == 86400 and got["state"] == "running"
        assert got["expires"] > s["expires"]
        assert call(d, "GET", f"/v1/sandboxes/{sid}").json["lifetime_s"] == 86400
        r = call(d, "POST", f"/v1/sandboxes/{sid}/timeout", {"lifetime": 90})
        assert r.status == 200 and r.json["lifetime_s"] == 90
        for body, field in [({"lifetime": "25h"}, "lifetime"), ({"lifetime": "0s"}, "lifetime"),
                            ({"lifetime": "soon"}, "lifetime"), ({}, "lifetime"),
                            ({"lifetime": "1m", "x": 1}, "x")]:
            r = call(d, "POST", f"/v1/sandboxes/{sid}/timeout", body)
            assert r.status == 400 and r.json["error"]["field"] == field, (body, r)
        assert call(d, "GET", f"/v1/sandboxes/{sid}").json["lifetime_s"] == 90
        assert call(d, "POST", f"/v1/sandboxes/{sid}/timeout", {"lifetime": "1m"},
                    "other").status == 404
        assert call(d, "POST", "/v1/sandboxes/s-nonexistent/timeout",
                    {"lifetime": "1m"}).status == 404
        assert call(d, "GET", f"/v1/sandboxes/{sid}/timeout").status == 405
        # A paused sandbox's timeout can be changed too.
        assert call(d, "POST", f"/v1/sandboxes/{sid}/pause").status == 200
        r = call(d, "POST", f"/v1/sandboxes/{sid}/timeout", {"lifetime": "2m"})
        assert r.status == 200 and r.json["state"] == "paused"
        assert call(d, "POST", f"/v1/sandboxes/{sid}/resume").status == 200
    finally:
        if call(d, "GET", f"/v1/sandboxes/{sid}").json["state"] != "destroyed":
            delete(d, sid)


def test_a_shortened_timeout_is_what_the_reaper_follows(d):
    s = create(d, lifetime="1h", metadata={"short": "yes"})
    sid = s["id"]
    assert call(d, "POST", f"/v1/sandboxes/{sid}/timeout", {"lifetime": "1s"}).status == 200
    assert wait_until(lambda: call(d, "GET", f"/v1/sandboxes/{sid}").json["state"]
                      == "destroyed", 60)
    gone = call(d, "GET", f"/v1/sandboxes/{sid}").json
    assert gone["reason"] == "lifetime expired" and gone["metadata"] == {"short": "yes"}
    assert call(d, "POST", f"/v1/sandboxes/{sid}/timeout", {"lifetime": "1m"}).status == 404


def test_openapi_describes_metadata_and_timeout(d):
    doc = d.request("GET", "/v1/openapi.json").json
    schemas = doc["components"]["schemas"]
    assert schemas["SandboxRequest"]["properties"]["metadata"]["$ref"].endswith("/Metadata")
    assert schemas["Metadata"]["maxProperties"] == 32
    assert "post" in doc["paths"]["/v1/sandboxes/{id}/timeout"]
    params = doc["paths"]["/v1/sandboxes"]["get"]["parameters"]
    assert [p["name"] for p in params] == ["metadata.KEY"]
