/* A policy's network (docs/sandbox.md, docs/network.md): the checks every
 * caller gets from hull_policy_validate(), and the request JSON's
 *
 *     "network": "none" | "host" | NAME
 *              | {"name": NAME, "egress": "..." | ["...", ...],
 *                 "publish": ["8080:80", "127.0.0.1:5353:53/udp", ...]}
 *
 * with errors naming the JSON path. The texts are parsed by net/parse.c,
 * the same code behind --egress and --publish, so the CLI and a request
 * accept exactly the same things. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/net.h"
#include "sandbox/sandbox.h"
#include "util/error.h"
#include "util/json.h"

int hull_policy_net_validate(const struct hull_policy *p, hull_error *err)
{
    if (p->network && p->network_host)
        return hull_error_set(err, EINVAL,
                              "network: a hull network and the host's network exclude each other");
    if (p->network && !hull_net_name_valid(p->network))
        return hull_error_set(err, EINVAL,
                              "network: '%s' is not a network name (none, host, or "
                              "[a-z0-9][a-z0-9_.-]*, at most %d characters)",
                              p->network, HULL_NET_NAME_MAX);
    const char *why = p->network_host ? "not with the host's network, which hull does not filter"
                                      : "only with a hull network (--network NAME)";
    if (p->egress && !p->network)
        return hull_error_set(err, EINVAL, "egress: %s", why);
    if (p->n_publish && !p->network)
        return hull_error_set(err, EINVAL, "publish: %s", why);
    if (p->egress) {
        struct hull_egress e;
        if (hull_egress_parse(p->egress, &e, err) < 0)
            return -1;
    }
    if (p->n_publish > HULL_NET_MAX_PUBLISH)
        return hull_error_set(err, E2BIG, "publish: at most %d ports", HULL_NET_MAX_PUBLISH);
    for (size_t i = 0; i < p->n_publish; i++) {
        const struct hull_publish *a = &p->publish[i];
        if (a->host_port == 0 || a->port == 0)
            return hull_error_set(err, EINVAL, "publish[%zu]: ports are 1-65535", i);
        /* One host port of one protocol can be published once (an address
         * of its own counts as another place, "" as every address). */
        for (size_t k = 0; k < i; k++) {
            const struct hull_publish *b = &p->publish[k];
            bool overlap = !a->host_ip[0] || !b->host_ip[0] || strcmp(a->host_ip, b->host_ip) == 0;
            if (overlap && a->host_port == b->host_port && a->udp == b->udp)
                return hull_error_set(err, EINVAL,
                                      "publish[%zu]: host port %u/%s is already published by "
                                      "publish[%zu]",
                                      i, a->host_port, a->udp ? "udp" : "tcp", k);
        }
    }
    return 0;
}

/* "egress": a string, or an array of rules (each checked on its own so the
 * error names its index), kept as the --egress text. */
static int json_egress(json_object *v, struct hull_policy *p, hull_error *err)
{
    struct hull_egress e;
    if (json_object_is_type(v, json_type_string)) {
        if (hull_egress_parse(json_object_get_string(v), &e, err) < 0)
            return hull_error_prefix(err, "network.egress");
        p->egress = strdup(json_object_get_string(v));
        return p->egress ? 0 : hull_error_set(err, ENOMEM, "out of memory");
    }
    if (!json_object_is_type(v, json_type_array))
        return hull_error_set(err, EINVAL,
                              "network.egress: must be a string (\"none\", \"all\" or "
                              "\"CIDR[:PORT[/PROTO]],...\") or an array of such rules");
    size_t n = json_object_array_length(v), len = 0;
    for (size_t i = 0; i < n; i++) {
        json_object *r = json_object_array_get_idx(v, i);
        if (!json_object_is_type(r, json_type_string))
            return hull_error_set(err, EINVAL, "network.egress[%zu]: must be a string", i);
        const char *s = json_object_get_string(r);
        if (strchr(s, ',') != NULL)
            return hull_error_set(err, EINVAL, "network.egress[%zu]: one rule per element", i);
        if (*s == '\0')
            return hull_error_set(err, EINVAL, "network.egress[%zu]: empty rule", i);
        if (hull_egress_parse(s, &e, err) < 0)
            return hull_error_prefix(err, "network.egress[%zu]", i);
        len += strlen(s) + 1;
    }
    /* No rule at all allows nothing. */
    cleanup_free char *text = malloc(n ? len : sizeof("none"));
    if (text == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    strcpy(text, n ? "" : "none");
    for (size_t i = 0; i < n; i++) {
        if (i)
            strcat(text, ",");
        strcat(text, json_object_get_string(json_object_array_get_idx(v, i)));
    }
    /* "none" beside other rules, or too many of them. */
    if (hull_egress_parse(text, &e, err) < 0)
        return hull_error_prefix(err, "network.egress");
    p->egress = steal_ptr(&text);
    return 0;
}

static int json_publish(json_object *v, struct hull_policy *p, hull_error *err)
{
    if (!json_object_is_type(v, json_type_array))
        return hull_error_set(err, EINVAL,
                              "network.publish: must be an array of \"[HOSTIP:]HOSTPORT:PORT"
                              "[/tcp|udp]\" strings");
    size_t n = json_object_array_length(v);
    if (n > HULL_NET_MAX_PUBLISH)
        return hull_error_set(err, E2BIG, "network.publish: at most %d ports",
                              HULL_NET_MAX_PUBLISH);
    struct hull_publish *list = calloc(n ? n : 1, sizeof(*list));
    if (list == NULL)
        return hull_error_set(err, ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        json_object *e = json_object_array_get_idx(v, i);
        hull_error pe = NULL;
        if (!json_object_is_type(e, json_type_string)) {
            free(list);
            return hull_error_set(err, EINVAL, "network.publish[%zu]: must be a string", i);
        }
        if (hull_publish_parse(json_object_get_string(e), &list[i], &pe) < 0) {
            free(list);
            /* The parser speaks of --publish; here it is the element. */
            const char *m = hull_error_msg(pe);
            if (strncmp(m, "--publish", 9) == 0)
                m += m[9] == ':' ? 11 : 10;
            hull_error_set(err, hull_error_code(pe), "network.publish[%zu]: %s", i, m);
            hull_error_free(&pe);
            return -1;
        }
    }
    free(p->publish);
    p->publish = list;
    p->n_publish = n;
    return 0;
}

int hull_policy_net_from_json(json_object *net, struct hull_policy *p, hull_error *err)
{
    const char *name = NULL;
    if (json_object_is_type(net, json_type_string)) {
        name = json_object_get_string(net);
    } else if (json_object_is_type(net, json_type_object)) {
        json_object_object_foreach(net, key, val)
        {
            (void)val;
            if (strcmp(key, "name") != 0 && strcmp(key, "egress") != 0 &&
                strcmp(key, "publish") != 0)
                return hull_error_set(err, EINVAL,
                                      "network.%s: unknown field (name, egress, publish)", key);
        }
        json_object *n = hj_get(net, "name");
        if (n == NULL || !json_object_is_type(n, json_type_string))
            return hull_error_set(err, EINVAL, "network.name: a network name is required");
        name = json_object_get_string(n);
        if (strcmp(name, "none") == 0 || strcmp(name, "host") == 0)
            return hull_error_set(err, EINVAL,
                                  "network.name: '%s' is not a network name (write \"network\": "
                                  "\"%s\")",
                                  name, name);
        json_object *eg = hj_get(net, "egress"), *pub = hj_get(net, "publish");
        if ((eg && json_egress(eg, p, err) < 0) || (pub && json_publish(pub, p, err) < 0))
            return -1;
    } else {
        return hull_error_set(err, EINVAL,
                              "network: must be \"none\", \"host\", a network name, or "
                              "{\"name\": ..., \"egress\": ..., \"publish\": [...]}");
    }
    free(p->network);
    p->network = NULL;
    p->network_host = strcmp(name, "host") == 0;
    if (strcmp(name, "none") == 0 || p->network_host)
        return 0;
    if (!hull_net_name_valid(name))
        return hull_error_set(err, EINVAL,
                              "network%s: '%s' is not a network name (none, host, or "
                              "[a-z0-9][a-z0-9_.-]*, at most %d characters)",
                              json_object_is_type(net, json_type_object) ? ".name" : "", name,
                              HULL_NET_NAME_MAX);
    p->network = strdup(name);
    return p->network ? 0 : hull_error_set(err, ENOMEM, "out of memory");
}
