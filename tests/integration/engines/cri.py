"""containerd's CRI plugin with hull as a RuntimeClass, and a small CRI client.

Kubernetes reaches a container runtime through the CRI: the kubelet calls
containerd's CRI plugin over gRPC, the plugin picks the runtime named by the
pod's RuntimeClass handler from its `runtimes` table, and the
io.containerd.runc.v2 shim drives that runtime's binary (`BinaryName`) with
runc's command line. CriContainerd starts Debian's containerd in a directory
of its own with exactly that configuration (the one docs/kubernetes.md
documents) and the handler "hull"; Cri is the kubelet's side: the calls of
tests/integration/cri/cri.proto, compiled here at test time with
grpc_tools' protoc.

Pods use the node's network (hostNetwork) unless the test adds a CNI
network (add_cni_network: the reference bridge plugin on a bridge of its
own); everything else (pause sandbox, containers joining its namespaces,
logs, exec, resize, stop, remove) is the real CRI path. stream_exec is the
client side of the CRI streaming server (kubectl exec's WebSocket).
"""

import base64
import hashlib
import importlib
import json
import os
import socket
import struct
import subprocess
import sys
import urllib.parse

import pytest

from . import host
from .containerd import Containerd
from .runtime import DEPS

CRI_NAMESPACE = "k8s.io"  # the containerd namespace the CRI plugin works in
HANDLER = "hull"
PAUSE_IMAGE = "localhost/hull-pause:test"
PROTO_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "cri")

_DISABLED = [
    "io.containerd.snapshotter.v1.btrfs",
    "io.containerd.snapshotter.v1.zfs",
    "io.containerd.snapshotter.v1.aufs",
    "io.containerd.snapshotter.v1.devmapper",
    "io.containerd.tracing.processor.v1.otlp",
    "io.containerd.internal.v1.tracing",
]


def cni_conflist(name, bridge, subnet, data_dir):
    """A CNI network for the pods: the reference `bridge` plugin on a bridge
    the test made (with the gateway address already on it) and `host-local`
    addresses from subnet. No gateway role, no masquerade: the pods reach
    the host and each other on the bridge, nothing else."""
    return json.dumps(
        {
            "cniVersion": "1.0.0",
            "name": name,
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": bridge,
                    "isGateway": False,
                    "ipMasq": False,
                    "ipam": {"type": "host-local", "ranges": [[{"subnet": subnet}]], "dataDir": data_dir},
                }
            ],
        },
        indent=2,
    )


def cri_config(top, runtime, runtime_root, address, cni_bin_dir):
    """containerd's config.toml: its own root, state and sockets, and the CRI
    plugin with a runtime "hull" (the runc v2 shim running `runtime`)."""
    disabled = ", ".join(f'"{p}"' for p in _DISABLED)
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    return (
        "version = 2\n"
        f'root = "{top}/root"\n'
        f'state = "{top}/state"\n'
        f"disabled_plugins = [{disabled}]\n"
        "[grpc]\n"
        f'  address = "{address}"\n'
        "[ttrpc]\n"
        f'  address = "{address}.ttrpc"\n'
        f"[{cri}]\n"
        f'  sandbox_image = "{PAUSE_IMAGE}"\n'
        # The streaming server (exec/attach/port-forward URLs) on loopback only.
        '  stream_server_address = "127.0.0.1"\n'
        '  stream_server_port = "0"\n'
        # Never ask for an oom_score_adj below containerd's own (the pause
        # container's -998 needs CAP_SYS_RESOURCE, which root lacks here).
        "  restrict_oom_score_adj = true\n"
        # Pod network namespaces under containerd's state, not /var/run/netns.
        "  netns_mounts_under_state_dir = true\n"
        f"[{cri}.cni]\n"
        f'  bin_dir = "{cni_bin_dir}"\n'
        f'  conf_dir = "{top}/cni/net.d"\n'
        f"[{cri}.containerd]\n"
        # Pods without a RuntimeClass keep runc; a runtimes table per handler.
        '  default_runtime_name = "runc"\n'
        f"[{cri}.containerd.runtimes.runc]\n"
        '  runtime_type = "io.containerd.runc.v2"\n'
        f"[{cri}.containerd.runtimes.{HANDLER}]\n"
        '  runtime_type = "io.containerd.runc.v2"\n'
        f"[{cri}.containerd.runtimes.{HANDLER}.options]\n"
        f'  BinaryName = "{runtime}"\n'
        f'  Root = "{runtime_root}"\n'
        "  SystemdCgroup = false\n"
        # The same for a kubelet with cgroupDriver "systemd": cgroup parents
        # are slices, cgroupsPath slice:cri-containerd:ID, hull gets
        # --systemd-cgroup.
        f"[{cri}.containerd.runtimes.{HANDLER}-systemd]\n"
        '  runtime_type = "io.containerd.runc.v2"\n'
        f"[{cri}.containerd.runtimes.{HANDLER}-systemd.options]\n"
        f'  BinaryName = "{runtime}"\n'
        f'  Root = "{runtime_root}"\n'
        "  SystemdCgroup = true\n"
    )


class CriContainerd(Containerd):
    """Containerd (engines/containerd.py) with the CRI plugin enabled and
    configured by cri_config(); ctr works in the CRI's namespace."""

    def __init__(self, top, runtime, cni_bin_dir=None):
        super().__init__(top, runtime)
        self.namespace = CRI_NAMESPACE
        self.cgroup_parent = f"/hulltest-k8s-{os.getpid()}"
        self.slice = f"hullk8s{os.getpid()}.slice"  # the systemd handler's parent
        self.log_dir = os.path.join(top, "pods")
        for d in ("cni/bin", "cni/net.d", "pods"):
            os.makedirs(os.path.join(top, d), exist_ok=True)
        with open(self.config, "w") as f:
            f.write(cri_config(top, runtime, self.runtime_root, self.address, cni_bin_dir or f"{top}/cni/bin"))

    def add_cni_network(self, name, bridge, subnet):
        """Write the pods' CNI network (containerd picks it up on its own)."""
        path = os.path.join(self.top, "cni", "net.d", f"10-{name}.conflist")
        with open(path, "w") as f:
            f.write(cni_conflist(name, bridge, subnet, os.path.join(self.top, "cni", "ipam")))

    def stop(self):
        """Containerd.stop(), then the pods' cgroup parent (hull makes it
        for the first pod and leaves it, as runc does: it is the kubelet's)."""
        try:
            super().stop()
        finally:
            host.remove_cgroup_tree(self.cgroup_parent)
            host.remove_cgroup_tree("/" + self.slice)

    def cri_state(self):
        """Where the CRI plugin keeps per-sandbox files (shm, hosts, resolv.conf)."""
        return os.path.join(self.state, "io.containerd.grpc.v1.cri")


def _have_grpc():
    try:
        importlib.import_module("grpc")
        importlib.import_module("grpc_tools.protoc")
        return None
    except ImportError as e:
        return e


def require_grpc():
    """python3-grpcio and python3-grpc-tools (Debian's): installed by
    `scripts/deps.sh engines` when missing; skip only if that is impossible."""
    if _have_grpc() is None:
        return
    r = subprocess.run(["sh", DEPS, "engines"], capture_output=True, text=True, timeout=1200)
    importlib.invalidate_caches()
    missing = _have_grpc()
    if missing is not None:
        why = (r.stderr or r.stdout).strip().splitlines()[-3:]
        pytest.skip(f"no gRPC for Python ({missing}; scripts/deps.sh engines exited {r.returncode}: {' | '.join(why)})")


def compile_proto(out_dir):
    """Compile cri.proto into out_dir and import the generated modules."""
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", "-I", PROTO_DIR, f"--python_out={out_dir}",
         f"--grpc_python_out={out_dir}", os.path.join(PROTO_DIR, "cri.proto")],
        check=True, capture_output=True, timeout=120,
    )
    sys.path.insert(0, out_dir)
    try:
        return importlib.import_module("cri_pb2"), importlib.import_module("cri_pb2_grpc")
    finally:
        sys.path.remove(out_dir)


class Cri:
    """The kubelet's side of the CRI, over containerd's gRPC socket."""

    def __init__(self, address, gen_dir, timeout=120):
        import grpc

        self.pb, grpc_mod = compile_proto(gen_dir)
        self.channel = grpc.insecure_channel("unix://" + address)
        self.rt = grpc_mod.RuntimeServiceStub(self.channel)
        self.timeout = timeout

    def wait_ready(self, cd):
        """Until the CRI plugin answers Version (it fails to load on a bad
        config while containerd itself starts: then its log says why)."""
        import grpc

        def up():
            try:
                return self.call("Version", version="v1")
            except grpc.RpcError as e:
                if e.code() == grpc.StatusCode.UNIMPLEMENTED:
                    raise AssertionError(f"containerd has no CRI service: {cd.log_tail()}") from None
                return None

        return host.wait_until(up, timeout=60, what="the CRI plugin to answer")

    def close(self):
        self.channel.close()

    def call(self, name, **fields):
        req = getattr(self.pb, name + "Request")(**fields)
        return getattr(self.rt, name)(req, timeout=self.timeout)

    def pod_config(self, name, uid, log_dir, cgroup_parent, host_network=True, sysctls=None):
        """A pod with its own PID and IPC namespaces, on the node's network
        (hostNetwork) or on its own (the CNI network)."""
        pb = self.pb
        ns = pb.NamespaceOption(network=pb.NODE if host_network else pb.POD, pid=pb.POD, ipc=pb.POD)
        return pb.PodSandboxConfig(
            metadata=pb.PodSandboxMetadata(name=name, uid=uid, namespace="default"),
            # As the kubelet does: no hostname for a hostNetwork pod (the
            # node's UTS namespace is shared; runc and hull refuse to set one).
            hostname="" if host_network else name,
            log_directory=log_dir,
            labels={"app": name},
            linux=pb.LinuxPodSandboxConfig(
                cgroup_parent=cgroup_parent,
                sysctls=sysctls or {},
                security_context=pb.LinuxSandboxSecurityContext(namespace_options=ns),
            ),
        )

    def run_pod(self, config, handler=HANDLER):
        return self.call("RunPodSandbox", config=config, runtime_handler=handler).pod_sandbox_id

    def restricted(self):
        """The security context of Kubernetes' "restricted" Pod Security
        Standard: non-root, every capability dropped, no_new_privs, the
        runtime's default seccomp profile; plus a read-only root."""
        pb = self.pb
        return dict(
            capabilities=pb.Capability(drop_capabilities=["ALL"]),
            run_as_user=pb.Int64Value(value=65534),
            readonly_rootfs=True,
            no_new_privs=True,
            seccomp=pb.SecurityProfile(profile_type=pb.SecurityProfile.RuntimeDefault),
        )

    def create_container(self, pod_id, pod_config, name, image, command, log_path, memory=0, security=None,
                         pid_mode=None):
        """pid_mode: POD (the pod's PID namespace, shareProcessNamespace) by
        default, CONTAINER for one of its own (what the kubelet asks for
        by default)."""
        pb = self.pb
        ns = pb.NamespaceOption(network=pod_config.linux.security_context.namespace_options.network,
                                pid=pb.POD if pid_mode is None else pid_mode, ipc=pb.POD)
        config = pb.ContainerConfig(
            metadata=pb.ContainerMetadata(name=name),
            image=pb.ImageSpec(image=image),
            command=list(command),
            envs=[pb.KeyValue(key="GREETING", value="hello-from-cri")],
            log_path=log_path,
            linux=pb.LinuxContainerConfig(
                resources=pb.LinuxContainerResources(memory_limit_in_bytes=memory),
                security_context=pb.LinuxContainerSecurityContext(namespace_options=ns, **(security or {})),
            ),
        )
        r = self.call("CreateContainer", pod_sandbox_id=pod_id, config=config, sandbox_config=pod_config)
        return r.container_id

    def container_status(self, cid):
        return self.call("ContainerStatus", container_id=cid).status

    def pod_status(self, pod_id, verbose=False):
        return self.call("PodSandboxStatus", pod_sandbox_id=pod_id, verbose=verbose)

    def wait_exited(self, cid, timeout=120):
        host.wait_until(lambda: self.container_status(cid).state == self.pb.CONTAINER_EXITED, timeout=timeout,
                        what=f"container {cid[:12]} to exit")
        return self.container_status(cid)


def read_cri_log(path):
    """The lines of a CRI log file: `TIMESTAMP STREAM F|P MESSAGE` each;
    returns [(stream, message)] with partial lines (P) joined."""
    out, partial = [], {}
    with open(path) as f:
        for line in f.read().splitlines():
            ts, stream, tag, msg = (line.split(" ", 3) + [""])[:4]
            partial[stream] = partial.get(stream, "") + msg
            if tag == "F":
                out.append((stream, partial.pop(stream)))
    return out


_WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455's fixed key suffix


def _recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError("the streaming server closed the connection")
        buf += chunk
    return buf


def _send_frame(sock, payload):
    """One binary WebSocket message from the client (clients mask theirs)."""
    mask = os.urandom(4)
    n = len(payload)
    head = bytes([0x82]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack("!H", n))
    sock.sendall(head + mask + bytes(c ^ mask[i % 4] for i, c in enumerate(payload)))


def stream_exec(url, stdin=None, timeout=60):
    """Run a CRI Exec's command at its streaming URL the way kubectl's
    WebSocket client does (protocol v4.channel.k8s.io: each binary message
    starts with its channel, 0 stdin, 1 stdout, 2 stderr, 3 the final status
    as JSON). stdin (bytes) is sent once the server is ready.
    Returns ({channel: bytes}, status dict)."""
    u = urllib.parse.urlsplit(url)
    assert u.hostname == "127.0.0.1", url  # the streaming server stays on loopback
    key = base64.b64encode(os.urandom(16)).decode()
    with socket.create_connection((u.hostname, u.port), timeout=timeout) as sock:
        target = u.path + (f"?{u.query}" if u.query else "")
        sock.sendall(
            (f"GET {target} HTTP/1.1\r\nHost: {u.netloc}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
             "Sec-WebSocket-Protocol: v4.channel.k8s.io\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += _recv_exact(sock, 1)
        lines = head.decode("latin-1").split("\r\n")
        assert lines[0].split()[1] == "101", lines
        want = base64.b64encode(hashlib.sha1((key + _WS_GUID).encode()).digest()).decode()
        headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
        assert headers.get("sec-websocket-accept") == want, headers

        out, message = {}, b""
        if stdin:
            _send_frame(sock, b"\x00" + stdin)
        while True:
            b0, b1 = _recv_exact(sock, 2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", _recv_exact(sock, 2))[0]
            elif n == 127:
                n = struct.unpack("!Q", _recv_exact(sock, 8))[0]
            mask = _recv_exact(sock, 4) if b1 & 0x80 else None
            payload = _recv_exact(sock, n)
            if mask:
                payload = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
            opcode = b0 & 0x0F
            if opcode == 8:  # close
                break
            if opcode in (0, 1, 2):
                message += payload
                if b0 & 0x80 and message:  # FIN: a whole message
                    out[message[0]] = out.get(message[0], b"") + message[1:]
                    message = b""
        status = json.loads(out.pop(3, b"{}") or b"{}")
        return out, status


def exit_code(status):
    """The exit status in a streaming Exec's final status (0 on Success)."""
    if status.get("status") == "Success":
        return 0
    for cause in status.get("details", {}).get("causes", []):
        if cause.get("reason") == "ExitCode":
            return int(cause["message"])
    raise AssertionError(f"no exit code in {status}")
