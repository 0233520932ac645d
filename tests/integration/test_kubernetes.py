"""Kubernetes' path to hull: containerd's CRI plugin with hull as a RuntimeClass.

The test starts Debian's containerd with its own root, state and socket and
the CRI plugin configured as docs/kubernetes.md says (a `runtimes.hull`
table: the io.containerd.runc.v2 shim with BinaryName = hull), then acts as
the kubelet would through a small CRI client (engines/cri.py, cri/cri.proto
compiled at test time): run a pod sandbox with handler "hull", create and
start containers in it, read their logs and exit codes, exec into them
(ExecSync, and Exec over a WebSocket with a terminal), resize, stop and
remove them and the pod. hull's own state (`hull --root R list`, `state`)
proves that hull, not runc, ran the pause sandbox and the containers; the
host's cgroups, processes, mounts and bridge ports prove that nothing is
left afterwards.

Most pods use the node's network (hostNetwork); one runs on a CNI network
(Debian's reference bridge and host-local plugins) on a bridge the test
makes, on a /24 of the test range: nothing leaves the machine.
"""

import ipaddress
import json
import os
import socket
import subprocess

import pytest

import netlib
from engines import busybox, host
from engines.containerd import IMAGE
from engines.cri import PAUSE_IMAGE, Cri, CriContainerd, exit_code, read_cri_log, require_grpc, stream_exec
from engines.fixtures import _check_clean, busybox_layer, busybox_oci_archive, oci_runtime_path  # noqa: F401
from engines.runtime import DEPS, require_packages

pytestmark = pytest.mark.slow

CNI_BIN = "/usr/lib/cni"  # Debian's containernetworking-plugins
BRIDGE = f"hk8s{os.getpid() % 10000000}"


def make_pod_bridge():
    """The pods' bridge with the gateway address on a /24 of the test range
    no other interface of this machine has (netlib's lock and choice)."""
    with netlib._lock():
        _, net = netlib._free_slot()
        netlib.sh("ip", "link", "add", "name", BRIDGE, "type", "bridge")
        netlib.sh("ip", "addr", "add", f"{net.network_address + 1}/24", "dev", BRIDGE)
        netlib.sh("ip", "link", "set", BRIDGE, "up")
    return net


def bridge_ports():
    return netlib.sh("ip", "-o", "link", "show", "master", BRIDGE, check=False).stdout.split("\n")[:-1]


@pytest.fixture(scope="module")
def cri_engine(tmp_path_factory, oci_runtime_path, busybox_layer, busybox_oci_archive):  # noqa: F811
    require_packages("engines", ["containerd", "ctr", "containerd-shim-runc-v2"])
    require_grpc()
    top = str(tmp_path_factory.mktemp("cri"))
    # The pod's pause container: busybox sleeping until it is killed.
    pause = busybox.oci_archive(busybox_layer, os.path.join(top, "pause.tar"), PAUSE_IMAGE,
                                cmd=("/bin/sleep", "2147483647"))
    if not os.path.exists(os.path.join(CNI_BIN, "bridge")):
        subprocess.run(["sh", DEPS, "engines"], capture_output=True, timeout=1200)
    cd = CriContainerd(top, oci_runtime_path, cni_bin_dir=CNI_BIN)
    client = None
    try:
        if os.path.exists(os.path.join(CNI_BIN, "bridge")):
            cd.subnet = make_pod_bridge()
            cd.add_cni_network(f"hulltest-{os.getpid()}", BRIDGE, str(cd.subnet))
        cd.start()
        cd.import_image(busybox_oci_archive)
        cd.import_image(pause)
        client = Cri(cd.address, str(tmp_path_factory.mktemp("cri-gen")))
        v = client.wait_ready(cd)
        print(f"CRI: {v.runtime_name} {v.runtime_version}, API {v.runtime_api_version}")
        yield cd, client
    finally:
        if client:
            client.close()
        cd.stop()
        ports = bridge_ports()
        netlib.sh("ip", "link", "del", BRIDGE, check=False)
    assert not ports, f"veths left on {BRIDGE}: {ports}"
    assert not host.mounts_under(top), f"mounts left {host.mounts_under(top)}"
    assert not host.processes_mentioning(cd.address), "containerd's shims or processes left"


def hull_list(cd):
    """{id: status} from hull's own state for the CRI namespace."""
    root = os.path.join(cd.runtime_root, cd.namespace)
    r = subprocess.run([cd.runtime, "--root", root, "list", "--format", "json"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    return {c["id"]: c["status"] for c in json.loads(r.stdout or "[]") or []}


def hull_state(cd, cid):
    root = os.path.join(cd.runtime_root, cd.namespace)
    r = subprocess.run([cd.runtime, "--root", root, "state", cid], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def cpu_limits(pid):
    """(quota, shares) of pid's cgroup: cpu.cfs_quota_us and cpu.shares on
    cgroup v1, cpu.max and cpu.weight on cgroup2."""
    cpu = [k for k in host.cgroup_hierarchies() if "cpu" in k.split(",")]
    if cpu:
        return host.cgroup_file(pid, cpu[0], "cpu.cfs_quota_us"), host.cgroup_file(pid, cpu[0], "cpu.shares")
    return host.cgroup_file(pid, "", "cpu.max"), host.cgroup_file(pid, "", "cpu.weight")


def leftovers(cd):
    out = []
    for parent in (cd.cgroup_parent, "/" + cd.slice):
        out += [f"process {p} ({host.cmdline(p)})" for p in host.pids_in_cgroup_tree(parent) if host.alive(p)]
        out += [f"cgroup {c}" for c in host.cgroup_children(parent)]
    out += [f"hull state {i}" for i in hull_list(cd)]
    out += [f"mount {m}" for m in host.mounts_under(cd.state)]
    out += [f"bridge port {p}" for p in bridge_ports()]
    return out


@pytest.fixture
def cri(cri_engine):
    """The engine and the client; the test's pods must all be gone afterwards."""
    cd, client = cri_engine
    yield cd, client
    _check_clean("the test's pods", lambda: leftovers(cd))


def remove_pod(client, pod_id):
    client.call("StopPodSandbox", pod_sandbox_id=pod_id)
    client.call("RemovePodSandbox", pod_sandbox_id=pod_id)


def test_pod_and_container_run_through_hull(cri, tmp_path):
    cd, client = cri
    name = f"hello-{os.getpid()}"
    pod_cfg = client.pod_config(name, f"uid-{name}", str(tmp_path), cd.cgroup_parent)
    pod = client.run_pod(pod_cfg)
    try:
        status = client.pod_status(pod, verbose=True)
        assert status.status.state == client.pb.SANDBOX_READY
        assert status.status.runtime_handler == "hull"
        pause_pid = json.loads(status.info["info"])["pid"]
        assert host.cmdline(pause_pid) == "/bin/sleep 2147483647"
        # hull, not runc, holds the pause container: its state is hull's.
        assert hull_list(cd) == {pod: "running"}
        assert hull_state(cd, pod)["pid"] == pause_pid

        script = ("echo out-line; echo $GREETING; echo err-line >&2; "
                  "cat /proc/1/cmdline | tr '\\0' ' '; echo; echo $$; exit 3")
        cid = client.create_container(pod, pod_cfg, "hello", IMAGE, ["sh", "-c", script], "hello.log")
        # CreateContainer only records it; StartContainer has the shim run
        # `hull create` and `hull start`.
        assert hull_list(cd) == {pod: "running"}
        client.call("StartContainer", container_id=cid)
        st = client.wait_exited(cid)
        assert st.exit_code == 3, st
        assert st.reason == "Error", st

        lines = read_cri_log(tmp_path / "hello.log")
        out = [m for s, m in lines if s == "stdout"]
        # PID 1 of the pod's PID namespace is the pause process; the
        # container's shell is another process in it.
        assert out[:3] == ["out-line", "hello-from-cri", "/bin/sleep 2147483647 "], lines
        assert int(out[3]) > 1, lines
        assert ("stderr", "err-line") in lines
        # The CRI plugin deletes a task once it exited (`hull delete`).
        host.wait_until(lambda: hull_list(cd) == {pod: "running"}, what="the exited task's deletion")

        client.call("RemoveContainer", container_id=cid)
        assert hull_list(cd) == {pod: "running"}

        # The kubelet's default for a pod without shareProcessNamespace: a
        # PID namespace of the container's own, where its process is PID 1.
        cmd = ["sh", "-c", "echo $$; ps -o pid,comm; exit 0"]
        cid = client.create_container(pod, pod_cfg, "own-pid", IMAGE, cmd, "own-pid.log",
                                      pid_mode=client.pb.CONTAINER)
        client.call("StartContainer", container_id=cid)
        assert client.wait_exited(cid).exit_code == 0
        out = [m.split() for s, m in read_cri_log(tmp_path / "own-pid.log") if s == "stdout"]
        assert out == [["1"], ["PID", "COMMAND"], ["1", "sh"], ["2", "ps"]], out
        client.call("RemoveContainer", container_id=cid)
    finally:
        remove_pod(client, pod)
    assert hull_list(cd) == {}
    assert not host.alive(pause_pid)


def test_long_running_container_exec_stop_remove(cri, tmp_path):
    cd, client = cri
    name = f"long-{os.getpid()}"
    pod_cfg = client.pod_config(name, f"uid-{name}", str(tmp_path), cd.cgroup_parent)
    pod = client.run_pod(pod_cfg)
    try:
        # A TERM trap: StopContainer's signal reaches the process and it exits 7.
        script = "trap 'echo got-term; exit 7' TERM; echo ready; while :; do sleep 0.1; done"
        cid = client.create_container(pod, pod_cfg, "long", IMAGE, ["sh", "-c", script], "long.log",
                                      memory=64 << 20)
        client.call("StartContainer", container_id=cid)
        host.wait_until(lambda: client.container_status(cid).state == client.pb.CONTAINER_RUNNING,
                        what="the container to run")
        host.wait_until(lambda: ("stdout", "ready") in read_cri_log(tmp_path / "long.log"),
                        what="the container to set its trap")
        info = json.loads(client.call("ContainerStatus", container_id=cid, verbose=True).info["info"])
        pid = info["pid"]
        assert hull_list(cd) == {pod: "running", cid: "running"}
        assert hull_state(cd, cid)["pid"] == pid
        # Its cgroup is below the pod's parent and carries the memory limit.
        assert host.proc_cgroups(pid)["memory"].startswith(cd.cgroup_parent + "/"), host.proc_cgroups(pid)
        assert host.memory_limit(pid) == 64 << 20

        r = client.call("ExecSync", container_id=cid, cmd=["sh", "-c", "echo exec-out; echo exec-err >&2; exit 5"],
                        timeout=60)
        assert (r.stdout, r.stderr, r.exit_code) == (b"exec-out\n", b"exec-err\n", 5)

        # The kubelet resizing a pod: the shim hands `hull update --resources -`
        # the new limits, and the kernel's cgroup files show them.
        res = client.pb.LinuxContainerResources(memory_limit_in_bytes=96 << 20, cpu_period=100000,
                                                cpu_quota=50000, cpu_shares=512)
        client.call("UpdateContainerResources", container_id=cid, linux=res)
        assert host.memory_limit(pid) == 96 << 20
        assert cpu_limits(pid) in (("50000", "512"), ("50000 100000", "20"))  # v1, or cgroup2 (weight)

        # Stats come from the container's cgroup (the shim reads it).
        stats = client.call("ContainerStats", container_id=cid).stats
        assert stats.memory.usage_bytes.value > 0 and stats.cpu.usage_core_nano_seconds.value > 0, stats

        # kubectl exec -it: the Exec call's URL, a WebSocket, a terminal (the
        # shim's `hull exec --console-socket`) fed from the client's stdin.
        url = client.call("Exec", container_id=cid, cmd=["sh", "-c", "tty; read line; echo got:$line; exit 4"],
                          tty=True, stdin=True, stdout=True).url
        streams, status = stream_exec(url, stdin=b"typed-in\r")
        assert exit_code(status) == 4, (streams, status)
        lines = streams.get(1, b"").decode().replace("\r", "").split()
        # The terminal echoes what was typed (maybe before the shell ran).
        pts = [x for x in lines if x.startswith("/dev/pts/")]
        assert len(pts) == 1 and sorted(set(lines) - set(pts)) == ["got:typed-in", "typed-in"], streams
        assert lines.index("got:typed-in") > lines.index(pts[0]), streams

        client.call("StopContainer", container_id=cid, timeout=30)
        st = client.container_status(cid)
        assert st.state == client.pb.CONTAINER_EXITED and st.exit_code == 7, st
        assert ("stdout", "got-term") in read_cri_log(tmp_path / "long.log")
        assert not host.alive(pid)
        client.call("RemoveContainer", container_id=cid)
    finally:
        remove_pod(client, pod)
    assert hull_list(cd) == {}


def test_restricted_security_context(cri, tmp_path):
    """A container under the "restricted" Pod Security Standard: containerd
    turns it into an OCI spec with a user, an empty capability set,
    noNewPrivileges, its default seccomp profile and a read-only root; hull
    applies each (the kernel's view from inside says so)."""
    cd, client = cri
    name = f"restricted-{os.getpid()}"
    pod_cfg = client.pod_config(name, f"uid-{name}", str(tmp_path), cd.cgroup_parent)
    pod = client.run_pod(pod_cfg)
    try:
        script = ("id -u; grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status | tr -s '\\t' ' '; "
                  "touch /probe 2>/dev/null && echo root-writable || echo root-readonly")
        cid = client.create_container(pod, pod_cfg, "restricted", IMAGE, ["sh", "-c", script], "r.log",
                                      security=client.restricted())
        client.call("StartContainer", container_id=cid)
        st = client.wait_exited(cid)
        assert st.exit_code == 0, (st, read_cri_log(tmp_path / "r.log"))
        out = [m for s, m in read_cri_log(tmp_path / "r.log") if s == "stdout"]
        assert out == ["65534", "CapEff: 0000000000000000", "CapBnd: 0000000000000000", "NoNewPrivs: 1",
                       "Seccomp: 2", "root-readonly"], out
        client.call("RemoveContainer", container_id=cid)
    finally:
        remove_pod(client, pod)


def test_pod_network_through_cni(cri, tmp_path):
    """A pod on its own network: containerd makes the network namespace and
    has the CNI bridge plugin give it an address, the pause container (hull)
    joins it by path, and the pod's containers join the pause container's.
    The host reaches a server in the container at the pod's address."""
    cd, client = cri
    if not getattr(cd, "subnet", None):
        pytest.skip(f"no CNI plugins in {CNI_BIN} (Debian's containernetworking-plugins)")
    name = f"net-{os.getpid()}"
    # A namespaced sysctl of the pod (the kubelet's safe sysctls): set in
    # the pause container's network namespace, seen by the pod's containers.
    pod_cfg = client.pod_config(name, f"uid-{name}", str(tmp_path), cd.cgroup_parent, host_network=False,
                                sysctls={"net.ipv4.ip_unprivileged_port_start": "80"})
    pod = client.run_pod(pod_cfg)
    try:
        ip = client.pod_status(pod).status.network.ip
        assert ipaddress.ip_address(ip) in cd.subnet, ip
        script = ("hostname; ip -4 -o addr show eth0 | awk '{print $4}'; "
                  "cat /proc/sys/net/ipv4/ip_unprivileged_port_start; echo pod-reply | nc -l -p 8080")
        cid = client.create_container(pod, pod_cfg, "server", IMAGE, ["sh", "-c", script], "server.log")
        client.call("StartContainer", container_id=cid)

        def fetch():
            try:
                with socket.create_connection((ip, 8080), timeout=10) as c:
                    return c.makefile().readline()
            except OSError:
                return None

        assert host.wait_until(fetch, timeout=60, interval=0.2, what="the pod's server to answer") == "pod-reply\n"
        st = client.wait_exited(cid)
        assert st.exit_code == 0, st
        out = [m for s, m in read_cri_log(tmp_path / "server.log") if s == "stdout"]
        assert out == [name, f"{ip}/24", "80"], out
        assert len(bridge_ports()) == 1  # the pod's veth
        client.call("RemoveContainer", container_id=cid)
    finally:
        remove_pod(client, pod)
    assert bridge_ports() == []


def test_oom_kill_is_reported(cri, tmp_path):
    """A container over its memory limit: the kernel kills it in the cgroup
    hull made, the shim sees the OOM event there, and the CRI reports what
    the kubelet shows as OOMKilled with status 137."""
    cd, client = cri
    name = f"oom-{os.getpid()}"
    pod_cfg = client.pod_config(name, f"uid-{name}", str(tmp_path), cd.cgroup_parent)
    pod = client.run_pod(pod_cfg)
    try:
        # tail keeps the one endless "line" of /dev/zero in memory.
        cid = client.create_container(pod, pod_cfg, "hog", IMAGE, ["tail", "/dev/zero"], "hog.log",
                                      memory=32 << 20)
        client.call("StartContainer", container_id=cid)
        st = client.wait_exited(cid)
        assert (st.exit_code, st.reason) == (137, "OOMKilled"), st
        client.call("RemoveContainer", container_id=cid)
    finally:
        remove_pod(client, pod)


def test_systemd_cgroup_driver(cri, tmp_path):
    """A kubelet with cgroupDriver "systemd" gives pods a slice as cgroup
    parent; the handler with SystemdCgroup = true makes containerd write
    cgroupsPath as slice:cri-containerd:ID and the shim pass hull
    --systemd-cgroup. hull maps that onto cgroupfs (it does not talk to
    systemd): the container's cgroup is the scope below the slice."""
    cd, client = cri
    name = f"sd-{os.getpid()}"
    pod_cfg = client.pod_config(name, f"uid-{name}", str(tmp_path), cd.slice)
    pod = client.run_pod(pod_cfg, handler="hull-systemd")
    try:
        cid = client.create_container(pod, pod_cfg, "sd", IMAGE, ["sleep", "1000"], "sd.log", memory=48 << 20)
        client.call("StartContainer", container_id=cid)
        info = json.loads(client.call("ContainerStatus", container_id=cid, verbose=True).info["info"])
        pid = info["pid"]
        assert info["runtimeSpec"]["linux"]["cgroupsPath"] == f"{cd.slice}:cri-containerd:{cid}"
        want = f"/{cd.slice}/cri-containerd-{cid}.scope"
        assert host.proc_cgroups(pid)["memory"] == want, host.proc_cgroups(pid)
        assert host.memory_limit(pid) == 48 << 20
        assert hull_state(cd, cid)["pid"] == pid
        client.call("StopContainer", container_id=cid, timeout=0)
        client.call("RemoveContainer", container_id=cid)
    finally:
        remove_pod(client, pod)


def test_unknown_handler_is_refused(cri, tmp_path):
    """A RuntimeClass whose handler has no runtimes table is an error, not a
    silent fall-back to the default runtime."""
    import grpc

    cd, client = cri
    name = f"nohandler-{os.getpid()}"
    with pytest.raises(grpc.RpcError) as e:
        client.run_pod(client.pod_config(name, f"uid-{name}", str(tmp_path), cd.cgroup_parent), handler="nope")
    assert "nope" in e.value.details()
    assert hull_list(cd) == {}
