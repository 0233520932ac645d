/* Releasing a struct hull_spec and its parts. */
#include <stdlib.h>
#include <string.h>

#include "spec/spec.h"
#include "util/json.h"
#include "util/strv.h"

void hull_process_free(struct hull_process *p)
{
    if (p == NULL)
        return;
    free(p->user.additional_gids);
    hull_strv_free(p->args);
    hull_strv_free(p->env);
    free(p->cwd);
    hull_strv_free(p->caps.bounding);
    hull_strv_free(p->caps.effective);
    hull_strv_free(p->caps.inheritable);
    hull_strv_free(p->caps.permitted);
    hull_strv_free(p->caps.ambient);
    for (size_t i = 0; i < p->n_rlimits; i++)
        free(p->rlimits[i].type);
    free(p->rlimits);
    free(p->apparmor_profile);
    free(p->selinux_label);
    free(p->sched_policy);
    hull_strv_free(p->sched_flags);
    memset(p, 0, sizeof(*p));
}

static void hooks_free(struct hull_hook *h, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(h[i].path);
        hull_strv_free(h[i].args);
        hull_strv_free(h[i].env);
    }
    free(h);
}

void hull_spec_free(struct hull_spec *spec)
{
    if (spec == NULL)
        return;
    json_object_put(spec->json);
    free(spec->oci_version);
    free(spec->root_path);
    free(spec->rootfs);
    for (size_t i = 0; i < spec->n_mounts; i++) {
        struct hull_mount *m = &spec->mounts[i];
        free(m->destination);
        free(m->type);
        free(m->source);
        hull_strv_free(m->options);
        free(m->data);
        free(m->uid_mappings);
        free(m->gid_mappings);
    }
    free(spec->mounts);
    if (spec->process) {
        hull_process_free(spec->process);
        free(spec->process);
    }
    free(spec->hostname);
    free(spec->domainname);
    struct hull_hooks *hk = &spec->hooks;
    hooks_free(hk->prestart, hk->n_prestart);
    hooks_free(hk->create_runtime, hk->n_create_runtime);
    hooks_free(hk->create_container, hk->n_create_container);
    hooks_free(hk->start_container, hk->n_start_container);
    hooks_free(hk->poststart, hk->n_poststart);
    hooks_free(hk->poststop, hk->n_poststop);
    hull_strv_free(spec->annotations);

    struct hull_linux *l = &spec->linux_;
    for (int i = 0; i < HULL_NS_COUNT; i++)
        free(l->ns[i].path);
    free(l->uid_mappings);
    free(l->gid_mappings);
    for (size_t i = 0; i < l->n_devices; i++)
        free(l->devices[i].path);
    free(l->devices);
    free(l->cgroups_path);
    if (l->resources) {
        hull_resources_free(l->resources);
        free(l->resources);
    }
    if (l->seccomp) {
        hull_seccomp_free(l->seccomp);
        free(l->seccomp);
    }
    hull_strv_free(l->sysctl);
    free(l->rootfs_propagation);
    hull_strv_free(l->masked_paths);
    hull_strv_free(l->readonly_paths);
    free(l->mount_label);
    free(l->personality_domain);
    hull_strv_free(l->personality_flags);
    for (size_t i = 0; i < l->n_net_devices; i++) {
        free(l->net_devices[i].name);
        free(l->net_devices[i].new_name);
    }
    free(l->net_devices);
    free(spec);
}
