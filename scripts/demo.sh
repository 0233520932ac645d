#!/bin/sh
# `make demo`: build a busybox bundle and run one command in a container,
# showing what isolation looks like from inside next to the host's view.
set -eu
cd "$(dirname "$0")/.."
hull="$PWD/build/hull"
work=$(mktemp -d /tmp/hull-demo.XXXXXX)
root="$work/state"
trap 'rm -rf "$work"' EXIT

scripts/mkbundle.sh "$work/bundle" "$hull" >/dev/null
# The command the container runs: its hostname, its pid, its root.
sed -i 's|"args": \["sh"\]|"args": ["sh", "-c", "echo \\"hostname: $(hostname)\\"; echo \\"my pid:   $$\\"; echo \\"my root:  $(ls / \| tr \\"\\\\n\\" \\" \\")\\"; echo \\"user:     $(id)\\""]|' "$work/bundle/config.json"

echo "== on the host"
echo "hostname: $(hostname)"
echo "my pid:   $$"
echo "my root:  $(ls / | tr '\n' ' ')"
echo
echo "== in a hull container (busybox, its own pid, mount, uts, ipc, net and cgroup namespaces)"
"$hull" --root "$root" run --bundle "$work/bundle" demo
echo
echo "(the container is gone: $("$hull" --root "$root" list -q | wc -l) left in $root)"
