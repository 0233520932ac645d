/* hull token create|list|revoke --state-dir DIR
 *
 * Bearer tokens for hulld, in its store (DIR/hulld.db). `create` prints the
 * token alone on its last line: it is shown this once, only its hash is
 * kept. When stdout is not a terminal (TOKEN=$(hull token create ...)), or
 * with --quiet, the token is all that goes to stdout. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "service/store.h"
#include "util/error.h"

static void help(FILE *out)
{
    fprintf(out, "usage: hull token create --state-dir DIR [--role ROLE] [--tenant NAME]\n"
                 "                         [--allow GRANT,...] [--quiet]\n"
                 "       hull token list --state-dir DIR [--json]\n"
                 "       hull token revoke --state-dir DIR ID\n"
                 "\n"
                 "Manage hulld's bearer tokens. ROLE is admin, user (default) or reader;\n"
                 "NAME is the tenant whose runs and sandboxes the token sees (default\n"
                 "\"default\"). create prints the token on its last line, once: only its\n"
                 "SHA-256 is stored. When stdout is not a terminal (TOKEN=$(hull token\n"
                 "create ...)) the token is all it prints there, its id, role, tenant and\n"
                 "grants go to stderr; -q, --quiet prints the token alone. DIR defaults to\n"
                 "/var/lib/hull.\n"
                 "\n"
                 "--allow grants requests that weaken a sandbox's isolation, which no\n"
                 "token (admin included) may make otherwise:\n"
                 "  host-network       \"network\": \"host\" (the host's network, its\n"
                 "                     loopback services included)\n"
                 "  process-isolation  \"isolation\": \"process\" (trusted code only)\n"
                 "  publish-public     \"network\": {\"publish\": [...]} on an address\n"
                 "                     other than 127.0.0.1/::1 (reachable from outside)\n"
                 "  host-egress        \"network\": {\"egress\": ...} naming one of the\n"
                 "                     host's own addresses (its services on it)\n");
}

static int list(struct cli *cli, struct hull_store *st, bool as_json)
{
    struct hull_token_info *t = NULL;
    size_t n = 0;
    hull_error err = NULL;
    if (hull_token_list(st, &t, &n, &err) < 0)
        return cli_fail(cli, &err, "token list");
    json_object *a = json_object_new_array();
    if (!as_json)
        printf("%-18s %-7s %-20s %-31s %-31s %s\n", "ID", "ROLE", "TENANT", "CREATED", "REVOKED",
               "ALLOW");
    for (size_t i = 0; i < n; i++) {
        char allow[64];
        hull_allow_format(t[i].allow, allow, sizeof(allow));
        if (as_json) {
            json_object *o = json_object_new_object();
            json_object_object_add(o, "id", json_object_new_string(t[i].id));
            json_object_object_add(o, "role", json_object_new_string(hull_role_name(t[i].role)));
            json_object_object_add(o, "tenant", json_object_new_string(t[i].tenant));
            json_object_object_add(o, "created", json_object_new_string(t[i].created));
            if (t[i].revoked[0])
                json_object_object_add(o, "revoked", json_object_new_string(t[i].revoked));
            json_object *al = json_object_new_array();
            for (unsigned bit = 1; bit & HULL_ALLOW_ALL; bit <<= 1)
                if (t[i].allow & bit)
                    json_object_array_add(al, json_object_new_string(hull_allow_name(bit)));
            json_object_object_add(o, "allow", al);
            json_object_array_add(a, o);
        } else {
            printf("%-18s %-7s %-20s %-31s %-31s %s\n", t[i].id, hull_role_name(t[i].role),
                   t[i].tenant, t[i].created, t[i].revoked[0] ? t[i].revoked : "-",
                   allow[0] ? allow : "-");
        }
    }
    if (as_json)
        printf("%s\n", json_object_to_json_string_ext(a, JSON_C_TO_STRING_PLAIN));
    json_object_put(a);
    free(t);
    return 0;
}

int cmd_token(struct cli *cli, int argc, char **argv)
{
    enum { OPT_STATE = 256, OPT_ROLE, OPT_TENANT, OPT_JSON, OPT_ALLOW };
    static const struct option opts[] = {
        {"state-dir", required_argument, NULL, OPT_STATE},
        {"role", required_argument, NULL, OPT_ROLE},
        {"tenant", required_argument, NULL, OPT_TENANT},
        {"json", no_argument, NULL, OPT_JSON},
        {"allow", required_argument, NULL, OPT_ALLOW},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    const char *state_dir = "/var/lib/hull", *role_s = "user", *tenant = "default";
    const char *allow_s = NULL;
    bool as_json = false, quiet = false;
    int c;
    /* Options may stand before or after the subcommand (getopt permutes). */
    while ((c = cli_getopt(argc, argv, "qh", opts)) != -1) {
        switch (c) {
        case OPT_STATE:
            state_dir = optarg;
            break;
        case OPT_ROLE:
            role_s = optarg;
            break;
        case OPT_TENANT:
            tenant = optarg;
            break;
        case OPT_JSON:
            as_json = true;
            break;
        case OPT_ALLOW:
            allow_s = optarg;
            break;
        case 'q':
            quiet = true;
            break;
        case 'h':
            help(stdout);
            return 0;
        default:
            return cli_bad_option(cli, argc, argv, c);
        }
    }
    if (optind >= argc)
        return cli_usage_error(cli, "missing subcommand (create, list or revoke)");
    const char *sub = argv[optind++];
    enum hull_role role;
    unsigned allow = 0;
    hull_error err = NULL;
    if (allow_s && strcmp(sub, "create") != 0)
        return cli_usage_error(cli, "--allow: only for create");
    if (strcmp(sub, "create") == 0) {
        if (hull_role_parse(role_s, &role) < 0)
            return cli_usage_error(cli, "--role: '%s' is not admin, user or reader", role_s);
        if (hull_allow_parse(allow_s, &allow, &err) < 0)
            return cli_fail(cli, &err, "token create: --allow");
        if (hull_tenant_validate(tenant, &err) < 0)
            return cli_fail(cli, &err, "token create: --tenant");
        if (optind != argc)
            return cli_usage_error(cli, "unexpected argument '%s'", argv[optind]);
    } else if (strcmp(sub, "list") == 0) {
        if (optind != argc)
            return cli_usage_error(cli, "unexpected argument '%s'", argv[optind]);
    } else if (strcmp(sub, "revoke") == 0) {
        if (optind + 1 != argc)
            return cli_usage_error(cli, "revoke takes one token ID");
    } else {
        return cli_usage_error(cli, "unknown subcommand '%s' (create, list or revoke)", sub);
    }

    /* list and revoke only read or change what is there: opening the
     * store would create DIR and its database (a mistyped --state-dir
     * left as a new empty store on the host). */
    if (strcmp(sub, "create") != 0) {
        char db[4096];
        struct stat sb;
        snprintf(db, sizeof(db), "%s/" HULL_STORE_FILE, state_dir);
        if (stat(db, &sb) < 0) {
            fprintf(stderr, "hull: token %s: %s: %s (no token store in %s)\n", sub, db,
                    strerror(errno), state_dir);
            return 1;
        }
    }
    struct hull_store *st = NULL;
    if (hull_store_open(state_dir, &st, &err) < 0)
        return cli_fail(cli, &err, "token %s", sub);
    int rc = 0;
    if (strcmp(sub, "create") == 0) {
        char *token = NULL;
        struct hull_token_info info;
        if (hull_token_create_allowed(st, role, tenant, allow, &token, &info, &err) < 0) {
            rc = cli_fail(cli, &err, "token create");
        } else {
            char granted[64];
            hull_allow_format(info.allow, granted, sizeof(granted));
            /* A script capturing stdout gets the token and nothing else. */
            FILE *details = quiet ? NULL : isatty(STDOUT_FILENO) ? stdout : stderr;
            if (details) {
                fprintf(details, "id: %s\nrole: %s\ntenant: %s\n", info.id,
                        hull_role_name(info.role), info.tenant);
                if (granted[0])
                    fprintf(details, "allow: %s\n", granted);
            }
            printf("%s\n", token);
            free(token);
        }
    } else if (strcmp(sub, "list") == 0) {
        rc = list(cli, st, as_json);
    } else if (hull_token_revoke(st, argv[optind], &err) < 0) {
        rc = cli_fail(cli, &err, "token revoke");
    } else {
        printf("revoked %s\n", argv[optind]);
    }
    hull_store_close(st);
    return rc;
}
