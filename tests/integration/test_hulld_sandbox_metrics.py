"""hulld: per-sandbox metrics over time (GET /v1/sandboxes/{id}/metrics).

A real hulld sampling every 200 ms: a process that holds 64 MiB shows in
the sandbox's memory and its peak (which stays after the process ends); a
CPU loop shows CPU time rising; a file written to /tmp shows as disk used;
`since` returns only later samples and a bad one is a 400 naming it; the
samples are the tenant's alone (404 for another, and /metrics shows no
other tenant's sandbox); a deleted sandbox's samples go with it. No
wall-clock thresholds: every wait is a generous poll for what must come."""
import os
from pathlib import Path
from urllib.parse import quote

import pytest

from hulldlib import HULLD, Hulld, hull_cli, private_net_dirs, wait_until

pytestmark = pytest.mark.skipif(not os.path.exists(HULLD), reason="hulld not built")

MiB = 1 << 20
GENEROUS = {"cpu_time": "120s", "wall_time": "300s"}


TAG = f"obsm{os.getpid() % 100000}"


@pytest.fixture(scope="module")
def netdirs(tmp_path_factory):
    """Networks in state directories of this module's own (hulld inherits
    them), removed afterwards."""
    base = tmp_path_factory.mktemp("netstate")
    with private_net_dirs(base) as made:
        yield made


@pytest.fixture(scope="module")
def d(tmp_path_factory, netdirs):
    h = Hulld(tmp_path_factory.mktemp("hulld"), "--metrics-interval", "200")
    Path(h.state).mkdir(parents=True)
    h.tok = h.token("user", "acme")
    h.reader = h.token("reader", "acme")
    h.other = h.token("user", "globex")
    h.proc_tok = h.token("user", "acme", allow="process-isolation")
    h.netdirs = netdirs
    h.start()
    yield h
    rc = h.stop()
    assert rc == 0, h.log.read_text()
    assert wait_until(lambda: h.leaks() == ([], [], []), 30), h.leaks()


@pytest.fixture
def sb(d):
    r = d.request("POST", "/v1/sandboxes", {"limits": {"memory": "512M"}}, d.tok)
    assert r.status == 201, r
    sid = r.json["id"]
    yield sid
    d.request("DELETE", f"/v1/sandboxes/{sid}", token=d.tok)


def samples(d, sid, token=None, since=None):
    q = f"?since={quote(since)}" if since else ""
    r = d.request("GET", f"/v1/sandboxes/{sid}/metrics{q}", token=token or d.tok)
    assert r.status == 200, r
    assert r.json["sandbox"] == sid and r.json["interval_ms"] == 200
    return r.json["samples"]


def start(d, sid, cmd):
    r = d.request("POST", f"/v1/sandboxes/{sid}/processes", {"cmd": cmd, "limits": GENEROUS},
                  d.tok)
    assert r.status == 201, r
    return r.json["id"]


def until_sample(d, sid, pred, timeout=60, after=None):
    """The first sample (later than after's) for which pred holds."""
    got = []

    def check():
        got[:] = [s for s in samples(d, sid, since=after and after["time"]) if pred(s)]
        return bool(got)

    assert wait_until(check, timeout), samples(d, sid)[-3:]
    return got[0]


def test_memory_shows_64mib_and_the_peak_stays(d, sb):
    pid = start(d, sb, ["python3", "-c",
                        "import sys, time\nb = b'x' * (64 << 20)\nprint('held', flush=True)\n"
                        "time.sleep(300)"])
    s = until_sample(d, sb, lambda s: s.get("memory_bytes", 0) >= 64 * MiB)
    assert s["memory_peak_bytes"] >= s["memory_bytes"] or s["memory_peak_bytes"] == 0
    peak = s["memory_peak_bytes"]
    r = d.request("POST", f"/v1/sandboxes/{sb}/processes/{pid}/signal", {"signal": "KILL"},
                  d.tok)
    assert r.status == 200, r
    # Freed: memory falls back under 64 MiB; the peak (where the kernel
    # keeps one) does not.
    s = until_sample(d, sb, lambda s: s["memory_bytes"] < 32 * MiB, after=s)
    if peak:
        assert s["memory_peak_bytes"] >= 64 * MiB


def test_cpu_time_rises_with_a_loop(d, sb):
    first = until_sample(d, sb, lambda s: "cpu_seconds" in s)
    start(d, sb, ["sh", "-c", "while :; do :; done"])
    until_sample(d, sb, lambda s: s["cpu_seconds"] >= first["cpu_seconds"] + 1.0, timeout=120,
                 after=first)
    got = [s["cpu_seconds"] for s in samples(d, sb)]
    assert got == sorted(got), got  # a counter never goes back
    times = [s["time"] for s in samples(d, sb)]
    assert times == sorted(times) and len(set(times)) == len(times)


def test_disk_used_of_tmp(d, sb):
    r = d.request("POST", f"/v1/sandboxes/{sb}/exec",
                  {"cmd": ["dd", "if=/dev/zero", "of=/tmp/f", "bs=1M", "count=8"]}, d.tok)
    assert r.status == 200 and r.json["exit_code"] == 0, r
    s = until_sample(d, sb, lambda s: s.get("disk_bytes", 0) >= 8 * MiB)
    r = d.request("DELETE", f"/v1/sandboxes/{sb}/fs/tmp/f", token=d.tok)
    assert r.status == 200, r
    until_sample(d, sb, lambda s: s["disk_bytes"] < 8 * MiB, after=s)


def test_no_network_no_network_fields(d, sb):
    s = until_sample(d, sb, lambda s: "cpu_seconds" in s)
    assert "net_rx_bytes" not in s and "net_tx_bytes" not in s


# 200 UDP datagrams of 1000 bytes to the network's gateway (the bridge):
# the default route's, else the .1 beside eth0's address.
SEND = """import fcntl, socket, struct
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
gw = None
for line in open('/proc/net/route').read().splitlines()[1:]:
    f = line.split()
    if f[1] == '00000000' and f[2] != '00000000':
        gw = socket.inet_ntoa(struct.pack('<I', int(f[2], 16)))
if gw is None:
    ip = fcntl.ioctl(s.fileno(), 0x8915, struct.pack('256s', b'eth0'))[20:24]
    gw = socket.inet_ntoa(ip[:3] + b'\\x01')
for _ in range(200):
    s.sendto(b'x' * 1000, (gw, 9))
print(gw)
"""


def test_network_bytes_with_a_network(d):
    name = f"{TAG}-m"
    r = hull_cli("network", "create", name)
    assert r.returncode == 0, r
    d.netdirs.append(name)
    r = d.request("POST", "/v1/sandboxes", {"network": {"name": name, "egress": "none"}}, d.tok)
    assert r.status == 201, r
    sid = r.json["id"]
    try:
        first = until_sample(d, sid, lambda s: "net_tx_bytes" in s)
        assert "net_rx_bytes" in first
        r = d.request("POST", f"/v1/sandboxes/{sid}/exec", {"cmd": ["python3", "-c", SEND]},
                      d.tok)
        assert r.status == 200 and r.json["verdict"] == "ok", r
        until_sample(d, sid, lambda s: s["net_tx_bytes"] >= first["net_tx_bytes"] + 200_000,
                     after=first)
    finally:
        assert d.request("DELETE", f"/v1/sandboxes/{sid}", token=d.tok).status == 200


def test_process_isolation_has_no_cgroup_fields(d):
    r = d.request("POST", "/v1/sandboxes", {"isolation": "process"}, d.proc_tok)
    assert r.status == 201, r
    sid = r.json["id"]
    try:
        s = until_sample(d, sid, lambda s: True)
        assert not {"cpu_seconds", "memory_bytes", "memory_peak_bytes"} & set(s), s
    finally:
        assert d.request("DELETE", f"/v1/sandboxes/{sid}", token=d.tok).status == 200


def test_since(d, sb):
    assert wait_until(lambda: len(samples(d, sb)) >= 4, 60)
    all_ = samples(d, sb)
    mid = all_[1]["time"]
    later = samples(d, sb, since=mid)
    assert later and all(s["time"] > mid for s in later)
    assert later[0] == all_[2]
    # An offset names the same instant.
    assert samples(d, sb, since=mid.replace("Z", "+00:00"))[0] == all_[2]
    assert samples(d, sb, since="2999-01-01T00:00:00Z") == []
    for bad in ("yesterday", "2026-13-01T00:00:00Z", "2026-01-01T00:00:00", "2026-01-01T00:00:00Zx"):
        r = d.request("GET", f"/v1/sandboxes/{sb}/metrics?since={quote(bad)}", token=d.tok)
        assert r.status == 400 and r.json["error"]["field"] == "since", (bad, r)


def test_tenancy_roles_methods(d, sb):
    assert wait_until(lambda: samples(d, sb), 60)
    assert samples(d, sb, token=d.reader)  # a reader may look
    r = d.request("GET", f"/v1/sandboxes/{sb}/metrics", token=d.other)
    assert r.status == 404, r
    r = d.request("GET", f"/v1/sandboxes/s-0000000000000000/metrics", token=d.tok)
    assert r.status == 404, r
    r = d.request("POST", f"/v1/sandboxes/{sb}/metrics", {}, token=d.tok)
    assert r.status == 405 and r.headers.get("Allow") == "GET", r
    r = d.request("GET", f"/v1/sandboxes/{sb}/metrics/x", token=d.tok)
    assert r.status == 404, r
    r = d.request("GET", "/metrics", token=d.tok)
    assert r.status == 200
    assert f'hull_sandbox_memory_peak_bytes{{tenant="acme",sandbox="{sb}"}}' in r.body.decode()
    assert f'hull_sandbox_disk_bytes{{tenant="acme",sandbox="{sb}"}}' in r.body.decode()
    r = d.request("GET", "/metrics", token=d.other)
    assert sb not in r.body.decode()


def test_samples_go_with_the_sandbox(d):
    r = d.request("POST", "/v1/sandboxes", {}, d.tok)
    sid = r.json["id"]
    assert wait_until(lambda: samples(d, sid), 60)
    assert d.request("DELETE", f"/v1/sandboxes/{sid}", token=d.tok).status == 200
    r = d.request("GET", f"/v1/sandboxes/{sid}/metrics", token=d.tok)
    assert r.status == 404, r
    assert wait_until(lambda: sid not in d.request("GET", "/metrics", token=d.tok).body.decode(),
                      60)
