"""How long after a migration a guest reaches its gateway when the target's
bridge MAC differs from the source's (hull's random bridge MACs before
issue 15) and when it is the same (derived from the network's name and
subnet: docs/network.md). Not part of the suite: a pytest file reusing
test_vm_migrate_net.py's two hosts; run it under the VM lock:

    flock /work/wt/vm.lock python3 -m pytest -q -s -p no:cacheprovider \\
        bench/vm_migrate_gwmac.py

It prints MEASURED {"differs": S, "differs_back": S, "equal": S}: seconds
from the move to the guest's first answer from its gateway, polled through
`hull vm exec` (~2.5 s a poll under TCG). docs/vm.md quotes a run."""
import json
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "integration"))
from test_vm_migrate_net import GW, GW_PORT, MEM, NET, SUBNET, env, fetch, migrate  # noqa


def until_gateway(h, vid, want):
    t0 = time.monotonic()
    while time.monotonic() - t0 < 60:
        if fetch(h, vid, f"http://{GW}:{GW_PORT}/whoami", timeout=1) == want:
            return time.monotonic() - t0
    return None


def test_measure(env):
    a, b, auth = env["a"], env["b"], env["auth"]
    a.ok("vm", "create", "--memory", MEM, "--from-template", "--network", NET, "--egress",
         f"all,{GW}/32:{GW_PORT}/tcp", "mm")
    a.ok("vm", "start", "mm")
    assert until_gateway(a, "mm", "host-a\n") is not None
    b.ok("network", "create", "--subnet", SUBNET, NET)
    b.serve_gateway()
    br = json.loads(b.ok("network", "inspect", NET).stdout)[0]["bridge"]
    derived = re.search(r"link/ether (\S+)", b.cmd("ip", "link", "show", br).stdout).group(1)
    print("bridge", br, derived)
    res = {}
    # 1. the target's gateway MAC differs (a random bridge MAC, as before)
    b.cmd("ip", "link", "set", br, "address", "02:12:34:56:78:9a")
    p, rc, out, err = migrate(a, b, "mm", "mm-b", auth)
    assert p.returncode == 0, p.stderr
    res["differs"] = until_gateway(b, "mm-b", "host-b\n")
    # 2. equal (derived on both): back to A (its derived MAC), after the
    # guest learnt B's random one: differs again; then B derived, move again.
    b.cmd("ip", "link", "set", br, "address", derived)
    p, rc, out, err = migrate(b, a, "mm-b", "mm", auth)
    assert p.returncode == 0, p.stderr
    res["differs_back"] = until_gateway(a, "mm", "host-a\n")
    p, rc, out, err = migrate(a, b, "mm", "mm-b", auth)
    assert p.returncode == 0, p.stderr
    res["equal"] = until_gateway(b, "mm-b", "host-b\n")
    print("MEASURED", json.dumps(res))
    b.ok("vm", "delete", "--force", "mm-b")
