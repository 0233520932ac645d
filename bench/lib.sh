# Shared set-up for the bench/ scripts (sourced, bash).
#
# Provides: $REPO, $HULL, $CRUN, $RUNC; bench_start "$@" (dependencies, the
# cgroup view, $WORK: a temp dir removed on exit, $STATE: where the
# runtimes keep state, $RUNS, $WARMUP);
# make_bundle, runtime_works, note, die.

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HULL=${HULL:-$REPO/build/hull}
CRUN=${CRUN:-$(command -v crun || true)}
RUNC=${RUNC:-$(command -v runc || true)}
BUSYBOX_PY="$REPO/tests/integration/engines/busybox.py"

note() { printf '%s\n' "$*" >&2; }
die() { note "bench: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (the runtimes create namespaces and cgroups)"

bench_deps() {
    sh "$REPO/scripts/deps.sh" bench || die "cannot install the bench dependencies"
    CRUN=${CRUN:-$(command -v crun || true)}
    RUNC=${RUNC:-$(command -v runc || true)}
}

# The cgroup view the runtimes see. crun 1.8 refuses hybrid hosts (v1
# controllers plus a cgroup2 mount at /sys/fs/cgroup/unified) outright, even
# with --cgroup-manager=disabled. To compare with it at all, the script
# re-executes itself in a private mount namespace where the cgroup2 mount is
# hidden: every runtime then sees a pure cgroup v1 host. hull and runc are
# measured in that same view so the comparison stays fair; the output says so.
#   CGROUP_VIEW=host   never hide it (crun is then skipped on a hybrid host)
#   CGROUP_VIEW=v1     always hide it
#   CGROUP_VIEW=auto   hide it only when crun refuses this host (default)
cgroup_view() {
    local want=${CGROUP_VIEW:-auto}
    if [ -n "${BENCH_V1_VIEW:-}" ]; then
        note "cgroup view: pure v1 (/sys/fs/cgroup/unified hidden in a private mount namespace"
        note "             because crun refuses hybrid hosts); hull and runc run in the same view."
        return 0
    fi
    if ! mountpoint -q /sys/fs/cgroup/unified 2>/dev/null; then
        note "cgroup view: host ($(stat -f -c %T /sys/fs/cgroup))"
        return 0
    fi
    if [ "$want" = auto ]; then
        want=host
        if [ -n "$CRUN" ] && ! crun_accepts_host; then want=v1; fi
    fi
    if [ "$want" = v1 ]; then
        # Private propagation: the umount stays inside this namespace and
        # disappears with it; the host keeps its cgroup2 mount.
        exec env BENCH_V1_VIEW=1 unshare -m --propagation private \
            sh -c 'umount /sys/fs/cgroup/unified && exec "$@"' sh "$0" "$@"
    fi
    note "cgroup view: host (hybrid)"
}

crun_accepts_host() {
    local d
    d=$(mktemp -d /tmp/hull-bench-probe.XXXXXX)
    python3 "$BUSYBOX_PY" bundle "$d/b" /bin/true >/dev/null
    "$CRUN" --root "$d/root" run --bundle "$d/b" "probe-$$" </dev/null >/dev/null 2>"$d/err"
    local rc=$?
    [ $rc = 0 ] || note "crun on this host: $(head -1 "$d/err")"
    rm -rf "$d"
    return $rc
}

# bench_init: the scratch directory, removed on exit. Call after cgroup_view
# (which may re-execute the script).
#
# $STATE holds the runtimes' state roots (--root). On a usual host their
# default roots live in /run, a tmpfs; on this project's machines /run is on
# disk, where every fsync of a state file costs milliseconds. STATE_FS=tmpfs
# (default) puts the roots on /dev/shm like a usual /run; STATE_FS=disk puts
# them in the scratch directory, like /run here.
bench_init() {
    WORK=$(mktemp -d /tmp/hull-bench.XXXXXX)
    case ${STATE_FS:-tmpfs} in
    tmpfs) STATE=$(mktemp -d /dev/shm/hull-bench-state.XXXXXX) ;;
    disk) STATE=$WORK/state && mkdir "$STATE" ;;
    *) die "STATE_FS must be tmpfs or disk" ;;
    esac
    note "runtime state roots on $(stat -f -c %T "$STATE") ($STATE)"
    hidden_unified_list >"$WORK/unified.before"
    trap 'bench_cleanup; drop_hidden_unified; rm -rf "$WORK" "$STATE"' EXIT
}

# In the v1 view /sys/fs/cgroup/unified is the plain directory of the
# host's /sys/fs/cgroup tmpfs under the hidden cgroup2 mount. crun takes it
# for the cgroup2 half of a hybrid host and leaves a directory with a
# cgroup.procs file in it per container: they would stay in the host's
# tmpfs (hidden, and never freed) after the run. What appeared there during
# the run is removed on exit; while the containers live it counts in
# crun's memory figures.
hidden_unified_list() {
    [ -n "${BENCH_V1_VIEW:-}" ] && ! mountpoint -q /sys/fs/cgroup/unified && ls -A /sys/fs/cgroup/unified
    return 0
}
drop_hidden_unified() {
    [ -n "${BENCH_V1_VIEW:-}" ] && [ -f "$WORK/unified.before" ] || return 0
    local e
    hidden_unified_list | while IFS= read -r e; do
        grep -qxF -- "$e" "$WORK/unified.before" ||
            rm -rf --one-file-system -- "/sys/fs/cgroup/unified/$e"
    done
}
# Scripts override this to remove what they started.
bench_cleanup() { :; }

# bench_start "$@": dependencies, cgroup view, scratch directory; and the
# hyperfine settings the scripts share.
bench_start() {
    bench_deps
    cgroup_view "$@"
    bench_init
    RUNS=${RUNS:-100}
    WARMUP=${WARMUP:-10}
}

# make_bundle DIR [busybox.py bundle options] -- ARGS...
make_bundle() {
    local dir=$1; shift
    python3 "$BUSYBOX_PY" bundle "$dir" "$@" >/dev/null || die "cannot make bundle $dir"
}

# runtime_works NAME PATH BUNDLE: one foreground run with its own --root;
# prints why not and fails when the runtime cannot run the bundle here.
runtime_works() {
    local name=$1 rt=$2 bundle=$3 err
    if [ -z "$rt" ] || [ ! -x "$rt" ]; then
        note "$name: not installed ($rt), skipped"
        return 1
    fi
    if ! err=$("$rt" --root "$STATE/probe-root-$name" run --bundle "$bundle" "probe-$name-$$" </dev/null 2>&1 >/dev/null); then
        note "$name: cannot run the bundle here, skipped: $(printf '%s' "$err" | head -2 | tr '\n' ' ')"
        "$rt" --root "$STATE/probe-root-$name" delete --force "probe-$name-$$" >/dev/null 2>&1
        return 1
    fi
    return 0
}
