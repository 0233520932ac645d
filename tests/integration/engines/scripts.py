"""Shell snippets the engine tests run inside busybox containers."""

# Appends a line to /out/ticks every 50 ms: the file's size stops growing
# exactly when the container's processes stop running (paused, killed).
TICKER = "while :; do echo x >> /out/ticks; sleep 0.05; done"

NAMESPACES = ("pid", "mnt", "net", "uts", "ipc")

# Prints the namespace link of each of NAMESPACES, one a line, from inside.
NS_SCRIPT = "for n in " + " ".join(NAMESPACES) + "; do readlink /proc/self/ns/$n; done"


def trap(signal, reply):
    """A PID 1 that answers `signal` by appending got-SIGNAL to /out/<reply>
    (and exits 0 on TERM), touching /out/ready once the trap is set."""
    action = f"echo got-{signal} >> /out/{reply}" + ("; exit 0" if signal == "TERM" else "")
    return f'trap "{action}" {signal}; touch /out/ready; while :; do sleep 0.1; done'
