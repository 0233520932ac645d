"""hulld --cluster, issue 15 leftovers (docs/cluster.md): anti-affinity by
metadata in placement, and the checks of "restart" (the restore itself,
with real microVMs: test_cluster_restore.py), on three real nodes (each
hulld in its own network namespace, a real redis-server, as
test_cluster.py).

- "placement": {"anti_affinity": {"app": "web"}} keeps sandboxes whose
  metadata has app=web on different nodes while a node without one fits,
  even under binpack (which would stack them); when every node that fits
  runs one, the sandbox goes to the node with the fewest, or is refused
  (409, nothing made) with "anti_affinity_required": true;
- bad anti-affinity fields are refused by JSON path (400, nothing made);
- "restart" refused by name where it cannot work (400, nothing made)."""
import os

import pytest

from hulldlib import HULLD
from queuelib import REDIS_SERVER
from test_cluster import NAMES, call, cluster, create, delete, nodes_of  # noqa: F401

pytestmark = [
    pytest.mark.skipif(not os.path.exists(HULLD), reason="hulld not built"),
    pytest.mark.skipif(not os.path.exists(REDIS_SERVER), reason="redis-server not installed"),
]

WEB = {"app": "web"}


def total(c):
    return sum(n["sandboxes"] for n in nodes_of(c).values())


def test_binpack_stacks_sandboxes_without_anti_affinity(cluster):
    # The control: n2 places by binpack, so both land on one node.
    made = [create(cluster, "n2", metadata=WEB) for _ in range(2)]
    try:
        assert made[0]["node"] == made[1]["node"], made
    finally:
        for s in made:
            delete(cluster, "n1", s["id"])


def test_another_tenants_sandboxes_do_not_count_for_anti_affinity(cluster):
    """globex's app=web sandboxes on every node neither keep acme's required
    anti-affinity off them nor tell acme they exist (a 409 would)."""
    theirs = []
    try:
        for _ in NAMES:
            r = call(cluster, "n2", "POST", "/v1/sandboxes",
                     {"metadata": WEB, "placement": {"anti_affinity": WEB}},
                     cluster["other"])
            assert r.status == 201, r
            theirs.append(r.json["id"])
        assert total(cluster) == len(NAMES)
        r = call(cluster, "n3", "POST", "/v1/sandboxes",
                 {"metadata": WEB, "placement": {"anti_affinity": WEB,
                                                 "anti_affinity_required": True}})
        assert r.status == 201, r
        delete(cluster, "n3", r.json["id"])
    finally:
        for sid in theirs:
            assert call(cluster, "n1", "DELETE", f"/v1/sandboxes/{sid}",
                        token=cluster["other"]).status == 200
    assert total(cluster) == 0


def test_anti_affinity_keeps_labelled_sandboxes_apart(cluster):
    made = []
    try:
        # Through the binpack node: one per node all the same.
        for _ in NAMES:
            made.append(create(cluster, "n2", metadata=WEB,
                               placement={"anti_affinity": WEB}))
        assert sorted(s["node"] for s in made) == list(NAMES), made
        # A sandbox without the label is not kept apart from them.
        other = create(cluster, "n2", metadata={"app": "db"},
                       placement={"anti_affinity": {"app": "db"}})
        made.append(other)
        # Every node runs one app=web: preferred places it anyway, on the
        # node with the fewest (all have one: then the policy) ...
        extra = create(cluster, "n1", metadata=WEB, placement={"anti_affinity": WEB})
        made.append(extra)
        assert extra["node"] in NAMES
        # ... required refuses it, and nothing is made.
        before = total(cluster)
        r = call(cluster, "n3", "POST", "/v1/sandboxes",
                 {"metadata": WEB, "placement": {"anti_affinity": WEB,
                                                 "anti_affinity_required": True}})
        assert r.status == 409 and r.json["error"]["code"] == "no_capacity", r
        assert "placement.anti_affinity" in r.json["error"]["message"], r
        assert total(cluster) == before
        # Preferred again: the node with two goes last; a fourth and a
        # fifth go to the two nodes that still have one.
        more = [create(cluster, "n2", metadata=WEB, placement={"anti_affinity": WEB})
                for _ in range(2)]
        made += more
        assert extra["node"] not in [s["node"] for s in more], (extra, more)
        assert len({s["node"] for s in more}) == 2, more
    finally:
        for s in made:
            delete(cluster, "n3", s["id"])
    assert total(cluster) == 0


def test_anti_affinity_with_labels_and_required(cluster):
    # zone=a is n1 and n3: two fit apart, the third is refused.
    p = {"labels": {"zone": "a"}, "anti_affinity": WEB, "anti_affinity_required": True}
    made = [create(cluster, "n2", metadata=WEB, placement=p) for _ in range(2)]
    try:
        assert sorted(s["node"] for s in made) == ["n1", "n3"], made
        r = call(cluster, "n2", "POST", "/v1/sandboxes", {"metadata": WEB, "placement": p})
        assert r.status == 409 and "anti_affinity" in r.json["error"]["message"], r
        # Once one goes, its node takes the next.
        delete(cluster, "n1", made[0]["id"])
        gone = made.pop(0)
        made.append(create(cluster, "n2", metadata=WEB, placement=p))
        assert made[-1]["node"] == gone["node"], made
    finally:
        for s in made:
            delete(cluster, "n1", s["id"])


@pytest.mark.parametrize("placement, field", [
    ({"anti_affinity": "web"}, "placement.anti_affinity"),
    ({"anti_affinity": {}}, "placement.anti_affinity"),
    ({"anti_affinity": {"app": 1}}, "placement.anti_affinity"),
    ({"anti_affinity": WEB, "anti_affinity_required": "yes"}, "placement.anti_affinity_required"),
    ({"anti_affinity_required": True}, "placement.anti_affinity_required"),
])
def test_bad_anti_affinity_is_refused(cluster, placement, field):
    before = total(cluster)
    r = call(cluster, "n1", "POST", "/v1/sandboxes", {"metadata": WEB, "placement": placement})
    assert r.status == 400 and r.json["error"]["field"] == field, r
    assert total(cluster) == before


@pytest.mark.parametrize("body, message", [
    ({"restart": "from-snapshot"}, "only a microVM sandbox"),
    ({"restart": "always", "isolation": "microvm"}, "must be \"from-snapshot\" or \"never\""),
    ({"restart": 1, "isolation": "microvm"}, "must be"),
    # These nodes have no --cluster-snapshots.
    ({"restart": "from-snapshot", "isolation": "microvm"}, "no --cluster-snapshots"),
])
def test_restart_refused_where_it_cannot_work(cluster, body, message):
    before = total(cluster)
    r = call(cluster, "n1", "POST", "/v1/sandboxes", body)
    assert r.status == 400 and r.json["error"]["field"] == "restart", r
    assert message in r.json["error"]["message"], r
    assert total(cluster) == before
