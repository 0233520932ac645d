#!/bin/sh
# Make an OCI bundle whose rootfs is Debian's busybox-static:
#   scripts/mkbundle.sh DIR [HULL]
# DIR/rootfs gets /bin/busybox and its applet links, a minimal /etc;
# DIR/config.json is `hull spec` with terminal off and args ["sh"].
set -eu
dir="$1"
hull="${2:-$(dirname "$0")/../build/hull}"
busybox=/bin/busybox
[ -x "$busybox" ] || { echo "mkbundle: $busybox missing (apt-get install busybox-static)" >&2; exit 1; }
# A dynamically linked busybox would need its libraries in the rootfs.
if ldd "$busybox" >/dev/null 2>&1; then
    echo "mkbundle: $busybox is not static (install busybox-static)" >&2; exit 1
fi
mkdir -p "$dir/rootfs"
root="$dir/rootfs"
mkdir -p "$root/bin" "$root/sbin" "$root/usr/bin" "$root/usr/sbin" "$root/etc" \
    "$root/proc" "$root/sys" "$root/dev" "$root/tmp" "$root/root" "$root/var" "$root/run"
chmod 1777 "$root/tmp"
cp "$busybox" "$root/bin/busybox"
for applet in $("$busybox" --list); do
    [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
rm -f "$dir/config.json"
"$hull" spec --bundle "$dir"
sed -i 's/"terminal": true/"terminal": false/' "$dir/config.json"
