#!/bin/bash
# scripts/link-static.sh NAMES CMD...: run the link command CMD, passing its
# output through, minus glibc's note that a static program calling one of
# NAMES (comma-separated) "requires at runtime the shared libraries from the
# glibc version used for linking" and the "in function" line naming where.
# Those calls sit in static libraries hull links (libsqlite3's dlopen,
# libcrypto's getaddrinfo) on paths hull never takes; every other linker
# warning is kept. Exits with CMD's status.
set -u
names=",$1,"
shift
log=$(mktemp "${TMPDIR:-/tmp}/hull-link.XXXXXX") || exit 1
trap 'rm -f "$log"' EXIT
"$@" 2>"$log"
rc=$?
awk -v names="$names" '
function note(line,   s) {
    if (line !~ /: warning: Using \047[A-Za-z0-9_]+\047 in statically linked applications requires at runtime the shared libraries from the glibc version used for linking$/)
        return 0
    s = line
    sub(/.*: warning: Using \047/, "", s)
    sub(/\047.*/, "", s)
    return index(names, "," s ",") > 0
}
{
    if (held != "") {
        if (!note($0))
            print held
        else {
            held = ""
            next
        }
        held = ""
    }
    if ($0 ~ /: in function `[^\047]*\047:$/) {
        held = $0
        next
    }
    if (!note($0))
        print
}
END { if (held != "") print held }
' "$log" >&2
exit $rc
