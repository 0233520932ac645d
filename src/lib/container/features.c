/* `hull features`: what this build and this host support, as the
 * runtime-spec features.md document that engines query. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/capability.h>
#include <unistd.h>

#include "container/process.h"
#include "hull.h"
#include "linux/cgroup.h"
#include "spec/spec.h"
#include "util/error.h"
#include "util/json.h"

static json_object *strings(const char *const *v)
{
    json_object *a = json_object_new_array();
    for (; v && *v; v++)
        json_object_array_add(a, json_object_new_string(*v));
    return a;
}

static json_object *capabilities(void)
{
    json_object *a = json_object_new_array();
    int last = CAP_LAST_CAP;
    cleanup_file FILE *f = fopen("/proc/sys/kernel/cap_last_cap", "re");
    if (f && fscanf(f, "%d", &last) != 1)
        last = CAP_LAST_CAP;
    for (int c = 0; c <= last; c++) {
        char *name = cap_to_name(c);
        if (name && strncmp(name, "cap_", 4) == 0) {
            char up[64] = "CAP_";
            size_t i = 4;
            for (; name[i] && i < sizeof(up) - 1; i++)
                up[i] = (char)(name[i] >= 'a' && name[i] <= 'z' ? name[i] - 32 : name[i]);
            up[i] = '\0';
            json_object_array_add(a, json_object_new_string(up));
        }
        cap_free(name);
    }
    return a;
}

static json_object *enabled(bool on)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "enabled", json_object_new_boolean(on));
    return o;
}

char *hull_features_json(void)
{
    json_object *f = json_object_new_object();
    json_object_object_add(f, "ociVersionMin", json_object_new_string("1.0.0"));
    json_object_object_add(f, "ociVersionMax", json_object_new_string(HULL_OCI_VERSION));
    static const char *const hooks[] = {
        "prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop",
        NULL};
    json_object_object_add(f, "hooks", strings(hooks));
    json_object *mo = json_object_new_array();
    for (size_t i = 0; i < hull_mount_option_count(); i++)
        json_object_array_add(mo, json_object_new_string(hull_mount_option_name(i)));
    json_object_object_add(f, "mountOptions", mo);

    json_object *lx = json_object_new_object();
    json_object *ns = json_object_new_array();
    for (int t = 0; t < HULL_NS_COUNT; t++) {
        char path[64];
        snprintf(path, sizeof(path), "/proc/self/ns/%s", hull_ns_proc_name(t));
        if (access(path, F_OK) == 0)
            json_object_array_add(ns, json_object_new_string(hull_ns_name(t)));
    }
    json_object_object_add(lx, "namespaces", ns);
    json_object_object_add(lx, "capabilities", capabilities());

    json_object *cg = json_object_new_object();
    json_object_object_add(cg, "v1", json_object_new_boolean(true));
    json_object_object_add(cg, "v2", json_object_new_boolean(true));
    json_object_object_add(cg, "systemd", json_object_new_boolean(false));
    json_object_object_add(cg, "systemdUser", json_object_new_boolean(false));
    json_object_object_add(cg, "rdma", json_object_new_boolean(false));
    json_object_object_add(lx, "cgroup", cg);

    json_object *sc = json_object_new_object();
    json_object_object_add(sc, "enabled", json_object_new_boolean(true));
    json_object_object_add(sc, "actions", strings(hull_seccomp_action_names()));
    json_object_object_add(sc, "operators", strings(hull_seccomp_operator_names()));
    json_object_object_add(sc, "archs", strings(hull_seccomp_arch_names()));
    json_object_object_add(sc, "knownFlags", strings(hull_seccomp_flag_names()));
    json_object_object_add(sc, "supportedFlags", strings(hull_seccomp_flag_names()));
    json_object_object_add(lx, "seccomp", sc);
    json_object_object_add(lx, "apparmor", enabled(hull_lsm_apparmor_enabled()));
    json_object_object_add(lx, "selinux", enabled(hull_lsm_selinux_enabled()));
    json_object_object_add(lx, "intelRdt", enabled(false));
    /* runtime-spec 1.2 features-linux.md: linux.netDevices is honoured. */
    json_object_object_add(lx, "netDevices", enabled(true));
    json_object *ext = json_object_new_object();
    json_object_object_add(ext, "idmap", enabled(false));
    json_object_object_add(lx, "mountExtensions", ext);
    json_object_object_add(f, "linux", lx);

    json_object *ann = json_object_new_object();
    json_object_object_add(ann, "io.github.hull.version", json_object_new_string(HULL_VERSION));
    json_object_object_add(f, "annotations", ann);

    char *out = strdup(json_object_to_json_string_ext(
        f, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(f);
    return out;
}
