/* The config.json parser (src/lib/spec): every validation names the JSON
 * path of what is wrong, with the exact message a user sees after
 * "hull: create ID: config.json: ". One table row per check. */
#include <fcntl.h>
#include <limits.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spec/spec.h"
#include "unit.h"

#ifndef MOUNT_ATTR_RDONLY
#define MOUNT_ATTR_RDONLY 0x00000001
#endif

/* A minimal valid document with three places to add to (or, since the last
 * duplicate key wins, override): root, process and the top level. */
#define DOC                                                                                        \
    "{\"ociVersion\":\"1.0.2\",\"root\":{\"path\":\"rootfs\"%s},\"process\":{\"args\":[\"sh\"],"   \
    "\"cwd\":\"/\"%s}"                                                                             \
    "%s}"
#define USERNS "\"namespaces\":[{\"type\":\"user\"}]"

struct bad {
    const char *root, *proc, *top;
    const char *msg;
};

static const struct bad bads[] = {
    /* document and version */
    {"", "", ",\"ociVersion\":null", "ociVersion: required"},
    {"", "", ",\"ociVersion\":2", "ociVersion: must be a string"},
    {"", "", ",\"ociVersion\":\"2.0.0\"",
     "ociVersion: unsupported version '2.0.0' (hull implements " HULL_OCI_VERSION ")"},
    {"", "", ",\"ociVersion\":\"0.6.0\"",
     "ociVersion: unsupported version '0.6.0' (hull implements " HULL_OCI_VERSION ")"},
    {"", "", ",\"ociVersion\":\"1x\"",
     "ociVersion: unsupported version '1x' (hull implements " HULL_OCI_VERSION ")"},
    {"", "", ",\"ociVersion\":\"\"",
     "ociVersion: unsupported version '' (hull implements " HULL_OCI_VERSION ")"},
    /* root */
    {"", "", ",\"root\":null", "root: required"},
    {"", "", ",\"root\":[]", "root: must be an object"},
    {"", "", ",\"root\":{}", "root.path: required"},
    {",\"path\":1", "", "", "root.path: must be a string"},
    {",\"readonly\":\"yes\"", "", "", "root.readonly: must be true or false"},
    /* process */
    {"", "", ",\"process\":[]", "process: must be an object"},
    {"", ",\"terminal\":1", "", "process.terminal: must be true or false"},
    {"", ",\"consoleSize\":[]", "", "process.consoleSize: must be an object"},
    {"", ",\"consoleSize\":{\"height\":70000}", "",
     "process.consoleSize.height: 70000 is out of range [0, 65535]"},
    {"", ",\"consoleSize\":{\"width\":-1}", "",
     "process.consoleSize.width: -1 is out of range [0, 65535]"},
    {"", ",\"user\":[]", "", "process.user: must be an object"},
    {"", ",\"user\":{\"uid\":-1}", "", "process.user.uid: -1 is out of range [0, 4294967294]"},
    {"", ",\"user\":{\"uid\":\"0\"}", "", "process.user.uid: must be an integer"},
    {"", ",\"user\":{\"gid\":4294967295}", "",
     "process.user.gid: 4294967295 is out of range [0, 4294967294]"},
    {"", ",\"user\":{\"umask\":512}", "", "process.user.umask: 512 is out of range [0, 511]"},
    {"", ",\"user\":{\"additionalGids\":1}", "", "process.user.additionalGids: must be an array"},
    {"", ",\"user\":{\"additionalGids\":[\"a\"]}", "",
     "process.user.additionalGids[0]: must be a gid"},
    {"", ",\"user\":{\"additionalGids\":[1,-2]}", "",
     "process.user.additionalGids[1]: must be a gid"},
    {"", ",\"args\":[]", "", "process.args: must be a non-empty array of strings"},
    {"", ",\"args\":null", "", "process.args: must be a non-empty array of strings"},
    {"", ",\"args\":\"sh\"", "", "process.args: must be a non-empty array of strings"},
    {"", ",\"args\":[1]", "", "process.args: must be a non-empty array of strings"},
    {"", ",\"args\":[\"sh\",2]", "", "process.args: must be a non-empty array of strings"},
    {"", ",\"args\":[\"\"]", "", "process.args: must be a non-empty array of strings"},
    {"", ",\"env\":\"A=1\"", "", "process.env: must be an array of strings"},
    {"", ",\"env\":[1]", "", "process.env[0]: must be a string"},
    {"", ",\"env\":[\"A=1\",\"B\"]", "", "process.env[1]: 'B' must be KEY=VALUE"},
    {"", ",\"env\":[\"=x\"]", "", "process.env[0]: '=x' must be KEY=VALUE"},
    {"", ",\"cwd\":null", "",
     "process.cwd: required (an absolute path in the container, such as \"/\")"},
    {"", ",\"cwd\":\"rel\"", "", "process.cwd: must be an absolute path"},
    {"", ",\"cwd\":\"\"", "", "process.cwd: must be an absolute path"},
    {"", ",\"cwd\":5", "", "process.cwd: must be a string"},
    {"", ",\"capabilities\":[]", "", "process.capabilities: must be an object"},
    {"", ",\"capabilities\":{\"bounding\":\"CAP_KILL\"}", "",
     "process.capabilities.bounding: must be an array of strings"},
    {"", ",\"capabilities\":{\"effective\":[\"CAP_KILL\",\"CAP-NOPE\"]}", "",
     "process.capabilities.effective[1]: 'CAP-NOPE' is not a capability name (CAP_...)"},
    {"", ",\"capabilities\":{\"inheritable\":[\"\"]}", "",
     "process.capabilities.inheritable[0]: '' is not a capability name (CAP_...)"},
    {"", ",\"capabilities\":{\"bounding\":[\"12\"]}", "",
     "process.capabilities.bounding[0]: '12' is not a capability name (CAP_...)"},
    {"", ",\"capabilities\":{\"bounding\":[\"CAP_\"]}", "",
     "process.capabilities.bounding[0]: 'CAP_' is not a capability name (CAP_...)"},
    {"", ",\"capabilities\":{\"permitted\":[2]}", "",
     "process.capabilities.permitted[0]: must be a string"},
    {"", ",\"capabilities\":{\"ambient\":[\"KILL\"]}", "",
     "process.capabilities.ambient[0]: 'KILL' is not a capability name (CAP_...)"},
    {"", ",\"rlimits\":{}", "", "process.rlimits: must be an array"},
    {"", ",\"rlimits\":[1]", "", "process.rlimits[0]: must be an object"},
    {"", ",\"rlimits\":[{\"soft\":1,\"hard\":1}]", "", "process.rlimits[0].type: required"},
    {"", ",\"rlimits\":[{\"type\":\"RLIMIT_FOO\",\"soft\":1,\"hard\":1}]", "",
     "process.rlimits[0].type: unknown rlimit 'RLIMIT_FOO'"},
    {"", ",\"rlimits\":[{\"type\":\"RLIMIT_NOFILE\",\"soft\":1}]", "",
     "process.rlimits[0]: soft and hard are required"},
    {"", ",\"rlimits\":[{\"type\":\"RLIMIT_NOFILE\",\"soft\":-1,\"hard\":1}]", "",
     "process.rlimits[0].soft: must not be negative"},
    {"", ",\"rlimits\":[{\"type\":\"RLIMIT_NOFILE\",\"soft\":10,\"hard\":5}]", "",
     "process.rlimits[0]: soft limit 10 is above hard limit 5"},
    {"",
     ",\"rlimits\":[{\"type\":\"RLIMIT_NOFILE\",\"soft\":1,\"hard\":1},{\"type\":\"RLIMIT_NOFILE\","
     "\"soft\":2,\"hard\":2}]",
     "", "process.rlimits[1].type: RLIMIT_NOFILE given twice"},
    {"", ",\"noNewPrivileges\":\"yes\"", "", "process.noNewPrivileges: must be true or false"},
    {"", ",\"apparmorProfile\":1", "", "process.apparmorProfile: must be a string"},
    {"", ",\"selinuxLabel\":[]", "", "process.selinuxLabel: must be a string"},
    {"", ",\"oomScoreAdj\":1001", "", "process.oomScoreAdj: 1001 is out of range [-1000, 1000]"},
    {"", ",\"oomScoreAdj\":-1001", "", "process.oomScoreAdj: -1001 is out of range [-1000, 1000]"},
    {"", ",\"ioPriority\":1", "", "process.ioPriority: must be an object"},
    {"", ",\"ioPriority\":{\"priority\":1}", "", "process.ioPriority.class: required"},
    {"", ",\"ioPriority\":{\"class\":\"IOPRIO_CLASS_X\",\"priority\":1}", "",
     "process.ioPriority.class: unknown class 'IOPRIO_CLASS_X'"},
    {"", ",\"ioPriority\":{\"class\":\"IOPRIO_CLASS_BE\",\"priority\":8}", "",
     "process.ioPriority.priority: 8 is out of range [0, 7]"},
    {"", ",\"scheduler\":{}", "", "process.scheduler.policy: required"},
    {"", ",\"scheduler\":{\"policy\":\"SCHED_OTHER\",\"nice\":20}", "",
     "process.scheduler.nice: 20 is out of range [-20, 19]"},
    {"", ",\"scheduler\":{\"policy\":\"SCHED_FIFO\",\"priority\":100}", "",
     "process.scheduler.priority: 100 is out of range [0, 99]"},
    {"", ",\"scheduler\":{\"policy\":\"SCHED_OTHER\",\"flags\":[1]}", "",
     "process.scheduler.flags[0]: must be a string"},
    /* top-level strings and maps */
    {"", "", ",\"hostname\":1", "hostname: must be a string"},
    {"", "", ",\"hostname\":\"h\"", "hostname: needs a uts namespace in linux.namespaces"},
    {"", "", ",\"domainname\":\"d\"", "domainname: needs a uts namespace in linux.namespaces"},
    {"", "", ",\"annotations\":[]", "annotations: must be an object of strings"},
    {"", "", ",\"annotations\":{\"a\":\"x\",\"b\":1}", "annotations.b: must be a string"},
    /* hooks */
    {"", "", ",\"hooks\":[]", "hooks: must be an object"},
    {"", "", ",\"hooks\":{\"prestart\":{}}", "hooks.prestart: must be an array"},
    {"", "", ",\"hooks\":{\"createRuntime\":[1]}", "hooks.createRuntime[0]: must be an object"},
    {"", "", ",\"hooks\":{\"poststop\":[{}]}", "hooks.poststop[0].path: required"},
    {"", "", ",\"hooks\":{\"poststart\":[{\"path\":\"rel\"}]}",
     "hooks.poststart[0].path: must be an absolute path"},
    {"", "", ",\"hooks\":{\"createContainer\":[{\"path\":\"/x\",\"args\":\"x\"}]}",
     "hooks.createContainer[0].args: must be an array of strings"},
    {"", "", ",\"hooks\":{\"startContainer\":[{\"path\":\"/x\",\"env\":[1]}]}",
     "hooks.startContainer[0].env[0]: must be a string"},
    {"", "", ",\"hooks\":{\"prestart\":[{\"path\":\"/x\",\"timeout\":0}]}",
     "hooks.prestart[0].timeout: 0 is out of range [1, 2147483647]"},
    /* mounts */
    {"", "", ",\"mounts\":{}", "mounts: must be an array"},
    {"", "", ",\"mounts\":[1]", "mounts[0]: must be an object"},
    {"", "", ",\"mounts\":[{\"type\":\"tmpfs\"}]", "mounts[0].destination: required"},
    {"", "", ",\"mounts\":[{\"destination\":\"\",\"type\":\"tmpfs\"}]",
     "mounts[0].destination: must not be empty"},
    {"", "", ",\"mounts\":[{\"destination\":\"/..\",\"type\":\"tmpfs\"}]",
     "mounts[0].destination: '/..' escapes the rootfs"},
    {"", "",
     ",\"mounts\":[{\"destination\":\"/a\",\"type\":\"tmpfs\"},{\"destination\":\"/a/../../"
     "b\",\"type\":\"tmpfs\"}]",
     "mounts[1].destination: '/a/../../b' escapes the rootfs"},
    {"", "", ",\"mounts\":[{\"destination\":\"/x\"}]",
     "mounts[0].type: required unless options has bind"},
    {"", "", ",\"mounts\":[{\"destination\":\"/x\",\"type\":3}]",
     "mounts[0].type: must be a string"},
    {"", "", ",\"mounts\":[{\"destination\":\"/x\",\"options\":[\"bind\"]}]",
     "mounts[0].source: required for a bind mount"},
    {"", "", ",\"mounts\":[{\"destination\":\"/x\",\"type\":\"bind\",\"source\":\"\"}]",
     "mounts[0].source: required for a bind mount"},
    {"", "", ",\"mounts\":[{\"destination\":\"/x\",\"type\":\"tmpfs\",\"options\":\"ro\"}]",
     "mounts[0].options: must be an array of strings"},
    {"", "", ",\"mounts\":[{\"destination\":\"/x\",\"type\":\"tmpfs\",\"options\":[\"ro\",\"\"]}]",
     "mounts[0].options: empty option"},
    {"", "",
     ",\"mounts\":[{\"destination\":\"/"
     "x\",\"type\":\"tmpfs\",\"uidMappings\":[{\"containerID\":0,\"hostID\":1}]}]",
     "mounts[0].uidMappings[0]: containerID, hostID and size are required"},
    {"", "",
     ",\"mounts\":[{\"destination\":\"/"
     "x\",\"type\":\"tmpfs\",\"uidMappings\":[{\"containerID\":0,\"hostID\":1,\"size\":1}]}]",
     "mounts[0].uidMappings: id-mapped mounts are not supported"},
    /* linux */
    {"", "", ",\"linux\":[]", "linux: must be an object"},
    {"", "", ",\"linux\":{\"namespaces\":{}}", "linux.namespaces: must be an array"},
    {"", "", ",\"linux\":{\"namespaces\":[1]}", "linux.namespaces[0]: must be an object"},
    {"", "", ",\"linux\":{\"namespaces\":[{}]}", "linux.namespaces[0].type: required"},
    {"", "", ",\"linux\":{\"namespaces\":[{\"type\":\"net\"}]}",
     "linux.namespaces[0].type: unknown namespace 'net'"},
    {"", "", ",\"linux\":{\"namespaces\":[{\"type\":\"pid\"},{\"type\":\"pid\"}]}",
     "linux.namespaces[1].type: namespace 'pid' listed twice"},
    {"", "", ",\"linux\":{\"namespaces\":[{\"type\":\"network\",\"path\":\"proc/1/ns/net\"}]}",
     "linux.namespaces[0].path: must be an absolute path"},
    {"", "", ",\"linux\":{\"namespaces\":[{\"type\":\"ipc\",\"path\":1}]}",
     "linux.namespaces[0].path: must be a string"},
    {"", "", ",\"linux\":{\"uidMappings\":[{\"containerID\":0,\"hostID\":1,\"size\":1}]}",
     "linux.uidMappings: given without a user namespace in linux.namespaces"},
    {"", "", ",\"linux\":{\"gidMappings\":[{\"containerID\":0,\"hostID\":1,\"size\":1}]}",
     "linux.uidMappings: given without a user namespace in linux.namespaces"},
    {"", "", ",\"linux\":{" USERNS "}",
     "linux.uidMappings: a new user namespace needs uidMappings and gidMappings"},
    {"", "",
     ",\"linux\":{" USERNS ",\"uidMappings\":[{\"containerID\":0,\"hostID\":1,\"size\":1}]}",
     "linux.uidMappings: a new user namespace needs uidMappings and gidMappings"},
    {"", "", ",\"linux\":{" USERNS ",\"uidMappings\":{}}", "linux.uidMappings: must be an array"},
    {"", "", ",\"linux\":{" USERNS ",\"uidMappings\":[[]]}",
     "linux.uidMappings[0]: must be an object"},
    {"", "", ",\"linux\":{" USERNS ",\"uidMappings\":[{\"containerID\":0,\"size\":1}]}",
     "linux.uidMappings[0]: containerID, hostID and size are required"},
    {"", "",
     ",\"linux\":{" USERNS ",\"uidMappings\":[{\"containerID\":0,\"hostID\":1,\"size\":0}]}",
     "linux.uidMappings[0].size: 0 is out of range [1, 4294967295]"},
    {"", "",
     ",\"linux\":{" USERNS ",\"gidMappings\":[{\"containerID\":-1,\"hostID\":1,\"size\":1}]}",
     "linux.gidMappings[0].containerID: -1 is out of range [0, 4294967295]"},
    {"", "",
     ",\"linux\":{" USERNS
     ",\"gidMappings\":[{\"containerID\":0,\"hostID\":4294967296,\"size\":1}]}",
     "linux.gidMappings[0].hostID: 4294967296 is out of range [0, 4294967295]"},
    {"", "", ",\"linux\":{\"devices\":{}}", "linux.devices: must be an array"},
    {"", "", ",\"linux\":{\"devices\":[{\"path\":\"/dev/x\"}]}", "linux.devices[0].type: required"},
    {"", "", ",\"linux\":{\"devices\":[{\"type\":\"x\",\"path\":\"/dev/x\"}]}",
     "linux.devices[0].type: must be one of c, b, u, p"},
    {"", "", ",\"linux\":{\"devices\":[{\"type\":\"cc\",\"path\":\"/dev/x\"}]}",
     "linux.devices[0].type: must be one of c, b, u, p"},
    {"", "", ",\"linux\":{\"devices\":[{\"type\":\"c\",\"major\":1,\"minor\":3}]}",
     "linux.devices[0].path: required"},
    {"", "",
     ",\"linux\":{\"devices\":[{\"type\":\"c\",\"path\":\"dev/x\",\"major\":1,\"minor\":3}]}",
     "linux.devices[0].path: must be an absolute path"},
    {"", "",
     ",\"linux\":{\"devices\":[{\"type\":\"c\",\"path\":\"/dev/../../"
     "x\",\"major\":1,\"minor\":3}]}",
     "linux.devices[0].path: '/dev/../../x' escapes the rootfs"},
    {"", "", ",\"linux\":{\"devices\":[{\"type\":\"c\",\"path\":\"/dev/x\",\"major\":1}]}",
     "linux.devices[0]: major and minor are required"},
    {"", "",
     ",\"linux\":{\"devices\":[{\"type\":\"b\",\"path\":\"/dev/x\",\"major\":-1,\"minor\":0}]}",
     "linux.devices[0].major: -1 is out of range [0, 4294967295]"},
    {"", "",
     ",\"linux\":{\"devices\":[{\"type\":\"c\",\"path\":\"/dev/"
     "x\",\"major\":1,\"minor\":3,\"fileMode\":4096}]}",
     "linux.devices[0].fileMode: 4096 is out of range [0, 4095]"},
    {"", "", ",\"linux\":{\"devices\":[{\"type\":\"p\",\"path\":\"/dev/x\",\"uid\":-1}]}",
     "linux.devices[0].uid: -1 is out of range [0, 4294967294]"},
    {"", "", ",\"linux\":{\"cgroupsPath\":1}", "linux.cgroupsPath: must be a string"},
    {"", "", ",\"linux\":{\"sysctl\":[]}", "linux.sysctl: must be an object of strings"},
    {"", "", ",\"linux\":{\"sysctl\":{\"kernel.hostname\":\"h\"}}",
     "linux.sysctl: kernel.hostname conflicts with the hostname field; set that instead"},
    {"", "", ",\"linux\":{\"sysctl\":{\"kernel.domainname\":\"d\"}}",
     "linux.sysctl: kernel.domainname conflicts with the domainname field; set that instead"},
    {"", "", ",\"ociVersion\":\"1.2.0\",\"linux\":{\"netDevices\":{\"eth0\":{}}}",
     "linux.netDevices: needs a network namespace in linux.namespaces (the container shares the "
     "host's)"},
    {"", "", ",\"linux\":{\"netDevices\":{\"eth/0\":{}}}",
     "linux.netDevices: 'eth/0' is not an interface name (1-15 characters, no '/', ':', '%' or "
     "spaces)"},
    {"", "", ",\"linux\":{\"netDevices\":{\"eth0\":{\"name\":\"a%d%d\"}}}",
     "linux.netDevices.eth0.name: 'a%d%d' is not an interface name (1-15 characters, no '/', ':' "
     "or spaces, at most one \"%d\")"},
    {"", "", ",\"linux\":{\"netDevices\":[\"eth0\"]}", "linux.netDevices: must be an object"},
    {"", "", ",\"linux\":{\"sysctl\":{\"net.ipv4.ip_forward\":1}}",
     "linux.sysctl.net.ipv4.ip_forward: must be a string"},
    {"", "", ",\"linux\":{\"rootfsPropagation\":\"sideways\"}",
     "linux.rootfsPropagation: unknown propagation 'sideways' (private, shared, slave or "
     "unbindable)"},
    {"", "", ",\"linux\":{\"maskedPaths\":\"/proc\"}",
     "linux.maskedPaths: must be an array of strings"},
    {"", "", ",\"linux\":{\"maskedPaths\":[\"/proc/kcore\",\"proc/x\"]}",
     "linux.maskedPaths[1]: must be an absolute path"},
    {"", "", ",\"linux\":{\"maskedPaths\":[\"/proc/../..\"]}",
     "linux.maskedPaths[0]: '/proc/../..' escapes the rootfs"},
    {"", "", ",\"linux\":{\"readonlyPaths\":[\"\"]}",
     "linux.readonlyPaths[0]: must be an absolute path"},
    {"", "", ",\"linux\":{\"readonlyPaths\":[\"/../etc\"]}",
     "linux.readonlyPaths[0]: '/../etc' escapes the rootfs"},
    {"", "", ",\"linux\":{\"mountLabel\":1}", "linux.mountLabel: must be a string"},
    {"", "", ",\"linux\":{\"personality\":[]}", "linux.personality: must be an object"},
    {"", "", ",\"linux\":{\"personality\":{}}", "linux.personality.domain: required"},
    {"", "", ",\"linux\":{\"personality\":{\"domain\":\"BSD\"}}",
     "linux.personality.domain: unknown domain 'BSD' (LINUX or LINUX32)"},
    {"", "", ",\"linux\":{\"timeOffsets\":{\"monotonic\":{\"secs\":1}}}",
     "linux.timeOffsets: needs a new time namespace in linux.namespaces"},
    {"", "",
     ",\"linux\":{\"namespaces\":[{\"type\":\"time\",\"path\":\"/proc/1/ns/"
     "time\"}],\"timeOffsets\":{\"boottime\":{\"secs\":1}}}",
     "linux.timeOffsets: needs a new time namespace in linux.namespaces"},
    {"", "",
     ",\"linux\":{\"namespaces\":[{\"type\":\"time\"}],\"timeOffsets\":{\"monotonic\":{\"secs\":1,"
     "\"nanosecs\":1000000000}}}",
     "linux.timeOffsets.monotonic.nanosecs: 1000000000 is out of range [0, 999999999]"},
    {"", "", ",\"linux\":{\"timeOffsets\":[]}", "linux.timeOffsets: must be an object"},
    /* linux.resources */
    {"", "", ",\"linux\":{\"resources\":[]}", "linux.resources: must be an object"},
    {"", "", ",\"linux\":{\"resources\":{\"devices\":{}}}",
     "linux.resources.devices: must be an array"},
    {"", "", ",\"linux\":{\"resources\":{\"devices\":[{\"access\":\"rwm\"}]}}",
     "linux.resources.devices[0].allow: required"},
    {"", "", ",\"linux\":{\"resources\":{\"devices\":[{\"allow\":1}]}}",
     "linux.resources.devices[0].allow: must be true or false"},
    {"", "", ",\"linux\":{\"resources\":{\"devices\":[{\"allow\":true,\"type\":\"x\"}]}}",
     "linux.resources.devices[0].type: must be a, b or c"},
    {"", "", ",\"linux\":{\"resources\":{\"devices\":[{\"allow\":true,\"major\":-2}]}}",
     "linux.resources.devices[0].major: -2 is out of range [-1, 4294967295]"},
    {"", "", ",\"linux\":{\"resources\":{\"devices\":[{\"allow\":true,\"access\":\"rwx\"}]}}",
     "linux.resources.devices[0].access: 'rwx' must be made of r, w and m"},
    {"", "", ",\"linux\":{\"resources\":{\"devices\":[{\"allow\":true,\"access\":\"\"}]}}",
     "linux.resources.devices[0].access: '' must be made of r, w and m"},
    {"", "", ",\"linux\":{\"resources\":{\"memory\":[]}}",
     "linux.resources.memory: must be an object"},
    {"", "", ",\"linux\":{\"resources\":{\"memory\":{\"limit\":-2}}}",
     "linux.resources.memory.limit: -2 is out of range [-1, 9223372036854775807]"},
    {"", "", ",\"linux\":{\"resources\":{\"memory\":{\"swap\":\"1G\"}}}",
     "linux.resources.memory.swap: must be an integer"},
    {"", "", ",\"linux\":{\"resources\":{\"memory\":{\"swappiness\":101}}}",
     "linux.resources.memory.swappiness: 101 is out of range [0, 100]"},
    {"", "", ",\"linux\":{\"resources\":{\"memory\":{\"disableOOMKiller\":1}}}",
     "linux.resources.memory.disableOOMKiller: must be true or false"},
    {"", "", ",\"linux\":{\"resources\":{\"cpu\":{\"shares\":-1}}}",
     "linux.resources.cpu.shares: must not be negative"},
    {"", "", ",\"linux\":{\"resources\":{\"cpu\":{\"quota\":-2}}}",
     "linux.resources.cpu.quota: -2 is out of range [-1, 9223372036854775807]"},
    {"", "", ",\"linux\":{\"resources\":{\"cpu\":{\"cpus\":0}}}",
     "linux.resources.cpu.cpus: must be a string"},
    {"", "", ",\"linux\":{\"resources\":{\"pids\":{\"limit\":\"10\"}}}",
     "linux.resources.pids.limit: must be an integer"},
    {"", "", ",\"linux\":{\"resources\":{\"blockIO\":{\"weight\":70000}}}",
     "linux.resources.blockIO.weight: 70000 is out of range [0, 65535]"},
    {"", "",
     ",\"linux\":{\"resources\":{\"blockIO\":{\"weightDevice\":[{\"major\":8,\"weight\":10}]}}}",
     "linux.resources.blockIO.weightDevice[0]: major and minor are required"},
    {"", "",
     ",\"linux\":{\"resources\":{\"blockIO\":{\"throttleReadBpsDevice\":[{\"major\":8,\"minor\":0}]"
     "}}}",
     "linux.resources.blockIO.throttleReadBpsDevice[0]: major, minor and rate are required"},
    {"", "", ",\"linux\":{\"resources\":{\"hugepageLimits\":[{\"pageSize\":\"2MB\"}]}}",
     "linux.resources.hugepageLimits[0].limit: required"},
    {"", "", ",\"linux\":{\"resources\":{\"hugepageLimits\":[{\"limit\":1}]}}",
     "linux.resources.hugepageLimits[0].pageSize: required"},
    {"", "", ",\"linux\":{\"resources\":{\"network\":{\"classID\":-1}}}",
     "linux.resources.network.classID: -1 is out of range [0, 4294967295]"},
    {"", "", ",\"linux\":{\"resources\":{\"network\":{\"priorities\":[{\"priority\":1}]}}}",
     "linux.resources.network.priorities[0].name: required"},
    {"", "", ",\"linux\":{\"resources\":{\"rdma\":[]}}", "linux.resources.rdma: must be an object"},
    {"", "", ",\"linux\":{\"resources\":{\"unified\":{\"memory.max\":1}}}",
     "linux.resources.unified.memory.max: must be a string"},
    /* linux.seccomp */
    {"", "", ",\"linux\":{\"seccomp\":[]}", "linux.seccomp: must be an object"},
    {"", "", ",\"linux\":{\"seccomp\":{}}", "linux.seccomp.defaultAction: required"},
    {"", "", ",\"linux\":{\"seccomp\":{\"defaultAction\":\"SCMP_ACT_NOPE\"}}",
     "linux.seccomp.defaultAction: unknown action 'SCMP_ACT_NOPE'"},
    {"", "",
     ",\"linux\":{\"seccomp\":{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"defaultErrnoRet\":-1}}",
     "linux.seccomp.defaultErrnoRet: -1 is out of range [0, 4095]"},
    {"", "",
     ",\"linux\":{\"seccomp\":{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"architectures\":[\"SCMP_ARCH_"
     "X86_64\",\"SCMP_ARCH_Z80\"]}}",
     "linux.seccomp.architectures[1]: unknown architecture 'SCMP_ARCH_Z80'"},
    {"", "",
     ",\"linux\":{\"seccomp\":{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"flags\":[\"SECCOMP_FILTER_"
     "FLAG_X\"]}}",
     "linux.seccomp.flags[0]: unknown flag 'SECCOMP_FILTER_FLAG_X'"},
    {"", "", ",\"linux\":{\"seccomp\":{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":{}}}",
     "linux.seccomp.syscalls: must be an array"},
    {"", "",
     ",\"linux\":{\"seccomp\":{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[],"
     "\"action\":\"SCMP_ACT_ALLOW\"}]}}",
     "linux.seccomp.syscalls[0].names: must be a non-empty array of strings"},
    {"", "",
     ",\"linux\":{\"seccomp\":{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":["
     "\"read\",\"\"],\"action\":\"SCMP_ACT_ALLOW\"}]}}",
     "linux.seccomp.syscalls[0].names[1]: empty syscall name"},
    {"", "",
     ",\"linux\":{\"seccomp\":{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":["
     "\"read\"]}]}}",
     "linux.seccomp.syscalls[0].action: required"},
    {"", "",
     ",\"linux\":{\"seccomp\":{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":["
     "\"read\"],\"action\":\"ALLOW\"}]}}",
     "linux.seccomp.syscalls[0].action: unknown action 'ALLOW'"},
    {"", "",
     ",\"linux\":{\"seccomp\":{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":["
     "\"read\"],\"action\":\"SCMP_ACT_ERRNO\",\"errnoRet\":5000}]}}",
     "linux.seccomp.syscalls[0].errnoRet: 5000 is out of range [0, 4095]"},
    {"", "",
     ",\"linux\":{\"seccomp\":{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":["
     "\"read\"],\"action\":\"SCMP_ACT_ALLOW\",\"args\":{}}]}}",
     "linux.seccomp.syscalls[0].args: must be an array"},
    {"", "",
     ",\"linux\":{\"seccomp\":{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":["
     "\"read\"],\"action\":\"SCMP_ACT_ALLOW\",\"args\":[{\"value\":1,\"op\":\"SCMP_CMP_EQ\"}]}]}}",
     "linux.seccomp.syscalls[0].args[0].index: required"},
    {"", "",
     ",\"linux\":{\"seccomp\":{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":["
     "\"read\"],\"action\":\"SCMP_ACT_ALLOW\",\"args\":[{\"index\":6,\"value\":1,\"op\":\"SCMP_CMP_"
     "EQ\"}]}]}}",
     "linux.seccomp.syscalls[0].args[0].index: 6 is out of range [0, 5]"},
    {"", "",
     ",\"linux\":{\"seccomp\":{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":["
     "\"read\"],\"action\":\"SCMP_ACT_ALLOW\",\"args\":[{\"index\":0,\"op\":\"SCMP_CMP_EQ\"}]}]}}",
     "linux.seccomp.syscalls[0].args[0].value: required"},
    {"", "",
     ",\"linux\":{\"seccomp\":{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":["
     "\"read\"],\"action\":\"SCMP_ACT_ALLOW\",\"args\":[{\"index\":0,\"value\":1}]}]}}",
     "linux.seccomp.syscalls[0].args[0].op: required"},
    {"", "",
     ",\"linux\":{\"seccomp\":{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":["
     "\"read\"],\"action\":\"SCMP_ACT_ALLOW\",\"args\":[{\"index\":0,\"value\":1,\"op\":\"EQ\"}]}]}"
     "}",
     "linux.seccomp.syscalls[0].args[0].op: unknown operator 'EQ'"},
};

static char *doc(const char *root, const char *proc, const char *top)
{
    char *d = NULL;
    assert_true(asprintf(&d, DOC, root, proc, top) > 0);
    return d;
}

static void every_bad_input_names_its_path(void **state)
{
    (void)state;
    int failures = 0;
    for (size_t i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
        char *d = doc(bads[i].root, bads[i].proc, bads[i].top);
        struct hull_spec *spec = NULL;
        hull_error e = NULL;
        int r = hull_spec_parse(d, strlen(d), "/bundle", &spec, &e);
        if (r != -1 || spec != NULL) {
            print_error("row %zu: accepted %s\n", i, d);
            failures++;
            hull_spec_free(spec);
        } else if (strcmp(hull_error_msg(e), bads[i].msg) != 0) {
            print_error("row %zu: %s\n  want: %s\n  got:  %s\n", i, d, bads[i].msg,
                        hull_error_msg(e));
            failures++;
        } else if (hull_error_code(e) == 0) {
            print_error("row %zu: no error code for %s\n", i, bads[i].msg);
            failures++;
        }
        hull_error_free(&e);
        free(d);
    }
    assert_int_equal(failures, 0);
}

static struct hull_spec *parse_ok(const char *text)
{
    struct hull_spec *spec = NULL;
    hull_error e = NULL;
    if (hull_spec_parse(text, strlen(text), "/b", &spec, &e) < 0)
        fail_msg("parse: %s", hull_error_msg(e));
    return spec;
}

static void minimal(void **state)
{
    (void)state;
    char *d = doc("", "", "");
    struct hull_spec *s = parse_ok(d);
    free(d);
    assert_string_equal(s->oci_version, "1.0.2");
    assert_string_equal(s->rootfs, "/b/rootfs");
    assert_false(s->root_readonly);
    assert_non_null(s->process);
    assert_string_equal(s->process->cwd, "/");
    assert_string_equal(s->process->args[0], "sh");
    assert_null(s->process->env);
    /* no capabilities: every set empty, never the runtime's own */
    assert_true(s->process->has_caps);
    assert_null(s->process->caps.bounding);
    assert_null(s->process->caps.effective);
    assert_int_equal(s->n_mounts, 0);
    for (int t = 0; t < HULL_NS_COUNT; t++)
        assert_false(s->linux_.ns[t].enabled);
    hull_spec_free(s);
}

static const char full[] =
    "{\"ociVersion\":\"1.2.0\","
    "\"root\":{\"path\":\"/abs/root\",\"readonly\":true},"
    "\"hostname\":\"h\",\"domainname\":\"d\","
    "\"annotations\":{\"k\":\"v\"},"
    "\"process\":{\"terminal\":true,\"consoleSize\":{\"height\":24,\"width\":80},"
    " \"user\":{\"uid\":1000,\"gid\":100,\"umask\":18,\"additionalGids\":[5,6]},"
    " \"args\":[\"sh\",\"-c\",\"x\"],\"env\":[\"A=1\",\"B=\"],\"cwd\":\"/w\","
    " \"capabilities\":{\"bounding\":[\"CAP_KILL\"],\"ambient\":[\"CAP_CHOWN\"]},"
    " \"rlimits\":[{\"type\":\"RLIMIT_NOFILE\",\"soft\":10,\"hard\":20},"
    "              {\"type\":\"RLIMIT_CORE\",\"soft\":0,\"hard\":18446744073709551615}],"
    " \"noNewPrivileges\":true,\"oomScoreAdj\":-5},"
    "\"mounts\":["
    " {\"destination\":\"/proc\",\"type\":\"proc\",\"source\":\"proc\"},"
    " {\"destination\":\"/"
    "t\",\"type\":\"tmpfs\",\"options\":[\"nosuid\",\"mode=755\",\"ro\",\"rw\",\"size=1k\","
    "\"rprivate\"]},"
    " {\"destination\":\"/b\",\"source\":\"/"
    "src\",\"options\":[\"rbind\",\"rro\",\"nodev\",\"shared\"]},"
    " {\"destination\":\"/c\",\"type\":\"bind\",\"source\":\"/"
    "src\",\"options\":[\"noexec\",\"tmpcopyup\"]},"
    " {\"destination\":\"/d\",\"source\":\"vol/x\",\"options\":[\"bind\"]},"
    " {\"destination\":\"/e\",\"type\":\"tmpfs\",\"source\":\"tmpfs\"}],"
    "\"hooks\":{\"prestart\":[{\"path\":\"/"
    "h\",\"args\":[\"h\",\"1\"],\"env\":[\"E=1\"],\"timeout\":3}],"
    "         \"poststop\":[{\"path\":\"/p\"}]},"
    "\"linux\":{\"namespaces\":[{\"type\":\"pid\"},{\"type\":\"network\",\"path\":\"/run/netns/"
    "x\"},"
    "  "
    "{\"type\":\"mount\"},{\"type\":\"uts\"},{\"type\":\"user\"},{\"type\":\"ipc\",\"path\":\"\"}],"
    " \"uidMappings\":[{\"containerID\":0,\"hostID\":1000,\"size\":1}],"
    " \"gidMappings\":[{\"containerID\":0,\"hostID\":100,\"size\":10}],"
    " \"devices\":[{\"type\":\"c\",\"path\":\"/dev/"
    "x\",\"major\":1,\"minor\":3,\"fileMode\":384,\"uid\":7}],"
    " \"rootfsPropagation\":\"rslave\","
    " \"maskedPaths\":[\"/proc/kcore\"],\"readonlyPaths\":[\"/proc/sys\"],"
    " \"sysctl\":{\"net.ipv4.ip_forward\":\"1\"}}}";

static void full_document(void **state)
{
    (void)state;
    struct hull_spec *s = parse_ok(full);
    assert_string_equal(s->rootfs, "/abs/root");
    assert_true(s->root_readonly);
    assert_string_equal(s->hostname, "h");
    assert_string_equal(s->domainname, "d");
    assert_string_equal(s->annotations[0], "k");
    assert_string_equal(s->annotations[1], "v");

    const struct hull_process *p = s->process;
    assert_true(p->terminal);
    assert_int_equal(p->console_height, 24);
    assert_int_equal(p->console_width, 80);
    assert_int_equal(p->user.uid, 1000);
    assert_int_equal(p->user.gid, 100);
    assert_true(p->user.has_umask);
    assert_int_equal(p->user.umask, 022);
    assert_int_equal(p->user.n_additional_gids, 2);
    assert_int_equal(p->user.additional_gids[1], 6);
    assert_string_equal(p->args[2], "x");
    assert_string_equal(p->env[1], "B=");
    assert_string_equal(p->cwd, "/w");
    assert_true(p->has_caps);
    assert_string_equal(p->caps.bounding[0], "CAP_KILL");
    assert_null(p->caps.effective);
    assert_string_equal(p->caps.ambient[0], "CAP_CHOWN");
    assert_int_equal(p->n_rlimits, 2);
    assert_int_equal(p->rlimits[0].resource, RLIMIT_NOFILE);
    assert_true(p->rlimits[1].resource == RLIMIT_CORE && p->rlimits[1].hard == UINT64_MAX);
    assert_true(p->no_new_privileges);
    assert_true(p->has_oom_score_adj);
    assert_int_equal(p->oom_score_adj, -5);

    assert_int_equal(s->n_mounts, 6);
    /* A relative bind source is relative to the bundle; other sources are
     * names, left alone. */
    assert_string_equal(s->mounts[4].source, "/b/vol/x");
    assert_string_equal(s->mounts[5].source, "tmpfs");
    const struct hull_mount *t = &s->mounts[1], *b = &s->mounts[2], *c = &s->mounts[3];
    assert_false(t->bind);
    /* "ro" then "rw": the last one wins, and rw is an explicit clear. */
    assert_true(t->flags == MS_NOSUID);
    assert_true(t->clear & MS_RDONLY);
    assert_string_equal(t->data, "mode=755,size=1k");
    assert_true(t->propagation == (MS_PRIVATE | MS_REC));
    assert_true(b->bind && b->rbind);
    assert_null(b->type);
    assert_true(b->flags == MS_NODEV);
    assert_true(b->attr_set == MOUNT_ATTR_RDONLY);
    assert_true(b->propagation == MS_SHARED);
    assert_true(c->bind && !c->rbind && c->tmpcopyup);
    assert_true(c->flags == MS_NOEXEC);
    assert_null(c->data);

    assert_int_equal(s->hooks.n_prestart, 1);
    assert_string_equal(s->hooks.prestart[0].args[1], "1");
    assert_true(s->hooks.prestart[0].has_timeout && s->hooks.prestart[0].timeout == 3);
    assert_int_equal(s->hooks.n_poststop, 1);
    assert_false(s->hooks.poststop[0].has_timeout);

    const struct hull_linux *l = &s->linux_;
    assert_true(l->ns[HULL_NS_PID].enabled && l->ns[HULL_NS_PID].path == NULL);
    assert_string_equal(l->ns[HULL_NS_NET].path, "/run/netns/x");
    /* An empty path means "new", as in runc. */
    assert_true(l->ns[HULL_NS_IPC].enabled && l->ns[HULL_NS_IPC].path == NULL);
    assert_false(l->ns[HULL_NS_CGROUP].enabled);
    assert_int_equal(l->n_uid_mappings, 1);
    assert_int_equal(l->uid_mappings[0].host_id, 1000);
    assert_int_equal(l->gid_mappings[0].size, 10);
    assert_int_equal(l->n_devices, 1);
    assert_int_equal(l->devices[0].type, 'c');
    assert_true(l->devices[0].has_file_mode && l->devices[0].file_mode == 0600);
    assert_true(l->devices[0].has_uid && !l->devices[0].has_gid);
    assert_true(l->rootfs_propagation_flags == (MS_SLAVE | MS_REC));
    assert_string_equal(l->masked_paths[0], "/proc/kcore");
    assert_string_equal(l->readonly_paths[0], "/proc/sys");
    assert_string_equal(l->sysctl[0], "net.ipv4.ip_forward");
    hull_spec_free(s);
}

static void names(void **state)
{
    (void)state;
    assert_string_equal(hull_ns_name(HULL_NS_NET), "network");
    assert_string_equal(hull_ns_proc_name(HULL_NS_NET), "net");
    assert_string_equal(hull_ns_proc_name(HULL_NS_MNT), "mnt");
    assert_int_equal(hull_rlimit_from_name("RLIMIT_NOFILE"), RLIMIT_NOFILE);
    assert_int_equal(hull_rlimit_from_name("RLIMIT_RTTIME"), RLIMIT_RTTIME);
    assert_int_equal(hull_rlimit_from_name("NOFILE"), -1);
    assert_int_equal(hull_rlimit_from_name("rlimit_nofile"), -1);
    /* capability names: the shape is checked, not whether this system knows it */
    assert_true(hull_cap_name_ok("CAP_KILL"));
    assert_true(hull_cap_name_ok("CAP_FROM_THE_FUTURE"));
    assert_true(hull_cap_name_ok("cap_chown"));
    assert_false(hull_cap_name_ok("KILL"));
    assert_false(hull_cap_name_ok("CAP_"));
    assert_false(hull_cap_name_ok("CAP_A B"));
    assert_false(hull_cap_name_ok("5"));
    char *d =
        doc("", ",\"capabilities\":{\"bounding\":[\"CAP_KILL\",\"CAP_FROM_THE_FUTURE\"]}", "");
    struct hull_spec *s = parse_ok(d);
    free(d);
    assert_string_equal(s->process->caps.bounding[1], "CAP_FROM_THE_FUTURE");
    hull_spec_free(s);
}

static void default_specs_parse(void **state)
{
    (void)state;
    for (int rootless = 0; rootless < 2; rootless++) {
        char *text = hull_spec_default_json(rootless);
        assert_non_null(text);
        struct hull_spec *s = parse_ok(text);
        assert_true(s->process->terminal);
        assert_string_equal(s->process->args[0], "sh");
        assert_true(s->root_readonly);
        assert_string_equal(s->rootfs, "/b/rootfs");
        assert_true(s->linux_.ns[HULL_NS_MNT].enabled);
        assert_int_equal(s->linux_.ns[HULL_NS_USER].enabled, rootless);
        assert_true(s->n_mounts >= 6);
        hull_spec_free(s);
        free(text);
    }
}

/* ---- hull_spec_load: what needs the filesystem ------------------------------ */

static void write_file(const char *dir, const char *name, const char *text)
{
    char p[PATH_MAX];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void load_fails(const char *bundle, const char *msg)
{
    struct hull_spec *s = NULL;
    hull_error e = NULL;
    assert_int_equal(hull_spec_load(bundle, NULL, &s, &e), -1);
    assert_null(s);
    assert_error_msg(e, msg);
}

static void load(void **state)
{
    (void)state;
    char *dir = unit_mkdtemp();
    char msg[PATH_MAX * 2];
    snprintf(msg, sizeof(msg), "config.json: open %s/config.json: No such file or directory", dir);
    load_fails(dir, msg);

    write_file(dir, "config.json", "{");
    load_fails(dir, "config.json: invalid JSON: unexpected end of input");

    char *d = doc("", ",\"args\":[]", "");
    write_file(dir, "config.json", d);
    free(d);
    load_fails(dir, "config.json: process.args: must be a non-empty array of strings");

    d = doc("", "", "");
    write_file(dir, "config.json", d);
    snprintf(msg, sizeof(msg), "config.json: root.path: %s/rootfs: No such file or directory", dir);
    load_fails(dir, msg);

    write_file(dir, "rootfs", "not a dir");
    snprintf(msg, sizeof(msg), "config.json: root.path: %s/rootfs: not a directory", dir);
    load_fails(dir, msg);

    /* A rootfs reached through a symlink is held canonical. */
    char p[PATH_MAX], real[PATH_MAX];
    snprintf(p, sizeof(p), "%s/rootfs", dir);
    unlink(p);
    snprintf(real, sizeof(real), "%s/real", dir);
    assert_int_equal(mkdir(real, 0755), 0);
    assert_int_equal(symlink("real", p), 0);
    struct hull_spec *s = NULL;
    hull_error e = NULL;
    if (hull_spec_load(dir, NULL, &s, &e) < 0)
        fail_msg("%s", hull_error_msg(e));
    char *canon = realpath(real, NULL);
    assert_string_equal(s->rootfs, canon);
    free(canon);
    hull_spec_free(s);

    /* An explicit config path instead of <bundle>/config.json. */
    write_file(dir, "other.json", d);
    snprintf(p, sizeof(p), "%s/other.json", dir);
    s = NULL;
    assert_int_equal(hull_spec_load(dir, p, &s, &e), 0);
    hull_spec_free(s);
    free(d);
    unit_rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_bad_input_names_its_path),
        cmocka_unit_test(minimal),
        cmocka_unit_test(full_document),
        cmocka_unit_test(names),
        cmocka_unit_test(default_specs_parse),
        cmocka_unit_test(load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
