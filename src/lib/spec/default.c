/* The config.json that `hull spec` writes: runc's defaults, so a bundle made
 * for runc or crun works unchanged and vice versa. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "hull.h"

static const char default_spec[] =
    "{\n"
    "\t\"ociVersion\": \"" HULL_OCI_VERSION "\",\n"
    "\t\"process\": {\n"
    "\t\t\"terminal\": true,\n"
    "\t\t\"user\": {\"uid\": 0, \"gid\": 0},\n"
    "\t\t\"args\": [\"sh\"],\n"
    "\t\t\"env\": [\n"
    "\t\t\t\"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\",\n"
    "\t\t\t\"TERM=xterm\"\n"
    "\t\t],\n"
    "\t\t\"cwd\": \"/\",\n"
    "\t\t\"capabilities\": {\n"
    "\t\t\t\"bounding\": [\"CAP_AUDIT_WRITE\", \"CAP_KILL\", \"CAP_NET_BIND_SERVICE\"],\n"
    "\t\t\t\"effective\": [\"CAP_AUDIT_WRITE\", \"CAP_KILL\", \"CAP_NET_BIND_SERVICE\"],\n"
    "\t\t\t\"permitted\": [\"CAP_AUDIT_WRITE\", \"CAP_KILL\", \"CAP_NET_BIND_SERVICE\"]\n"
    "\t\t},\n"
    "\t\t\"rlimits\": [{\"type\": \"RLIMIT_NOFILE\", \"hard\": 1024, \"soft\": 1024}],\n"
    "\t\t\"noNewPrivileges\": true\n"
    "\t},\n"
    "\t\"root\": {\"path\": \"rootfs\", \"readonly\": true},\n"
    "\t\"hostname\": \"hull\",\n"
    "\t\"mounts\": [\n"
    "\t\t{\"destination\": \"/proc\", \"type\": \"proc\", \"source\": \"proc\"},\n"
    "\t\t{\"destination\": \"/dev\", \"type\": \"tmpfs\", \"source\": \"tmpfs\",\n"
    "\t\t \"options\": [\"nosuid\", \"strictatime\", \"mode=755\", \"size=65536k\"]},\n"
    "\t\t{\"destination\": \"/dev/pts\", \"type\": \"devpts\", \"source\": \"devpts\",\n"
    "\t\t \"options\": [\"nosuid\", \"noexec\", \"newinstance\", \"ptmxmode=0666\", "
    "\"mode=0620\"%s]},\n"
    "\t\t{\"destination\": \"/dev/shm\", \"type\": \"tmpfs\", \"source\": \"shm\",\n"
    "\t\t \"options\": [\"nosuid\", \"noexec\", \"nodev\", \"mode=1777\", \"size=65536k\"]},\n"
    "\t\t{\"destination\": \"/dev/mqueue\", \"type\": \"mqueue\", \"source\": \"mqueue\",\n"
    "\t\t \"options\": [\"nosuid\", \"noexec\", \"nodev\"]},\n"
    "%s"
    "\t],\n"
    "\t\"linux\": {\n"
    "%s"
    "\t\t\"namespaces\": [\n"
    "\t\t\t{\"type\": \"pid\"},\n"
    "\t\t\t{\"type\": \"network\"},\n"
    "\t\t\t{\"type\": \"ipc\"},\n"
    "\t\t\t{\"type\": \"uts\"},\n"
    "\t\t\t{\"type\": \"mount\"},\n"
    "\t\t\t{\"type\": \"cgroup\"}%s\n"
    "\t\t],\n"
    "\t\t\"maskedPaths\": [\n"
    "\t\t\t\"/proc/acpi\", \"/proc/asound\", \"/proc/kcore\", \"/proc/keys\",\n"
    "\t\t\t\"/proc/latency_stats\", \"/proc/timer_list\", \"/proc/timer_stats\",\n"
    "\t\t\t\"/proc/sched_debug\", \"/sys/firmware\", \"/proc/scsi\"\n"
    "\t\t],\n"
    "\t\t\"readonlyPaths\": [\n"
    "\t\t\t\"/proc/bus\", \"/proc/fs\", \"/proc/irq\", \"/proc/sys\", "
    "\"/proc/sysrq-trigger\"\n"
    "\t\t]\n"
    "\t}\n"
    "}\n";

static const char sys_mounts[] =
    "\t\t{\"destination\": \"/sys\", \"type\": \"sysfs\", \"source\": \"sysfs\",\n"
    "\t\t \"options\": [\"nosuid\", \"noexec\", \"nodev\", \"ro\"]},\n"
    "\t\t{\"destination\": \"/sys/fs/cgroup\", \"type\": \"cgroup\", \"source\": \"cgroup\",\n"
    "\t\t \"options\": [\"nosuid\", \"noexec\", \"nodev\", \"relatime\", \"ro\"]}\n";

/* Without privileges over the host's sysfs, a read-only bind is all there is. */
static const char sys_mounts_rootless[] =
    "\t\t{\"destination\": \"/sys\", \"type\": \"none\", \"source\": \"/sys\",\n"
    "\t\t \"options\": [\"rbind\", \"nosuid\", \"noexec\", \"nodev\", \"ro\"]}\n";

char *hull_spec_default_json(bool rootless)
{
    char *out = NULL;
    char *ids = NULL;
    if (rootless) {
        if (asprintf(&ids,
                     "\t\t\"uidMappings\": [{\"containerID\": 0, \"hostID\": %u, \"size\": 1}],\n"
                     "\t\t\"gidMappings\": [{\"containerID\": 0, \"hostID\": %u, \"size\": 1}],\n",
                     (unsigned)geteuid(), (unsigned)getegid()) < 0)
            return NULL;
    } else {
        if (asprintf(&ids, "\t\t\"resources\": {\"devices\": [{\"allow\": false, \"access\": "
                           "\"rwm\"}]},\n") < 0)
            return NULL;
    }
    if (asprintf(&out, default_spec, rootless ? "" : ", \"gid=5\"",
                 rootless ? sys_mounts_rootless : sys_mounts, ids,
                 rootless ? ",\n\t\t\t{\"type\": \"user\"}" : "") < 0)
        out = NULL;
    free(ids);
    return out;
}
