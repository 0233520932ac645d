/* The `hull` command: shared state of one invocation and helpers for verbs.
 * Each verb lives in its own file and is a thin front end over libhull. */
#ifndef HULL_CLI_H
#define HULL_CLI_H

#include <getopt.h>
#include <stdbool.h>

#include <json-c/json.h>

#include "hull.h"

struct cli {
    struct hull_runtime rt;
    const char *log_path;
    const char *log_format;
    bool debug;
    const char *verb; /* for messages */
};

typedef int (*cli_verb_fn)(struct cli *cli, int argc, char **argv);

struct cli_verb {
    const char *name;
    cli_verb_fn fn;
    const char *summary;
};

/* Print "hull: [<context>: ]<error>" (and to the JSON log when asked), free
 * the error, return the exit code for a failure (1). Library errors already
 * start with "<verb> <id>", so verbs pass a NULL context. */
int cli_fail(struct cli *cli, hull_error *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A usage error: "hull: <verb>: <message>" plus a hint at --help. Exit code
 * 1, as runc uses for every failure (engines only test zero/non-zero). */
int cli_usage_error(struct cli *cli, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Parse verb options with getopt_long, accepting runc's single-dash long
 * flags (-bundle) too. Returns the getopt result. Resets getopt state on the
 * first call for a verb (argv[0] is the verb). */
int cli_getopt(int argc, char **argv, const char *shortopts, const struct option *longopts);
/* What was wrong with the option getopt just refused (c is its '?' or ':'),
 * said once, without getopt's own message (cli_getopt silences it; other
 * loops set opterr = 0 and start their optstring with ':'): "unknown option
 * '--x'", "option '--bundle' needs a value", "option '--debug' takes no
 * value". Written into buf, which is returned. */
const char *cli_option_problem(int argc, char **argv, int c, char *buf, size_t len);
/* That problem as a usage error (exit code 1). */
int cli_bad_option(struct cli *cli, int argc, char **argv, int c);

/* s starts as a plain decimal number does: a digit, or '-' and a digit
 * when negative values are meant. strtol and strtod alone also take " 5",
 * "+5" and (strtoul) "-1" wrapped to a huge value. */
static inline bool cli_plain_number(const char *s, bool negative)
{
    if (negative && s[0] == '-')
        s++;
    return s[0] >= '0' && s[0] <= '9';
}

/* Exactly n positional arguments remain (after options), else usage error. */
int cli_need_args(struct cli *cli, int argc, char **argv, int n, const char *names);

/* "hull VERB [--help] ID": 0 with *id set, -1 after printing usage for
 * --help (exit 0), 1 after a usage error. */
int cli_one_id(struct cli *cli, int argc, char **argv, const char *usage, const char **id);

/* Verbs: one file each under src/cli. */
int cmd_spec(struct cli *cli, int argc, char **argv);
int cmd_create(struct cli *cli, int argc, char **argv);
int cmd_start(struct cli *cli, int argc, char **argv);
int cmd_run(struct cli *cli, int argc, char **argv);
int cmd_state(struct cli *cli, int argc, char **argv);
int cmd_kill(struct cli *cli, int argc, char **argv);
int cmd_delete(struct cli *cli, int argc, char **argv);
int cmd_list(struct cli *cli, int argc, char **argv);
int cmd_exec(struct cli *cli, int argc, char **argv);
int cmd_ps(struct cli *cli, int argc, char **argv);
int cmd_pause(struct cli *cli, int argc, char **argv);
int cmd_resume(struct cli *cli, int argc, char **argv);
int cmd_update(struct cli *cli, int argc, char **argv);
int cmd_events(struct cli *cli, int argc, char **argv);
int cmd_features(struct cli *cli, int argc, char **argv);
int cmd_sandbox(struct cli *cli, int argc, char **argv);
int cmd_checkpoint(struct cli *cli, int argc, char **argv); /* and restore: refused */
int cmd_token(struct cli *cli, int argc, char **argv);
int cmd_cluster(struct cli *cli, int argc, char **argv);
/* cluster_drain.c: `hull vm migrate ID --to NODE --cluster URL` (a fleet's
 * sandbox, moved by the node that runs it). */
int cluster_migrate(struct cli *cli, const char *url, const char *id, const char *to, bool cold,
                    unsigned timeout_s, unsigned down_s);
/* cluster_drain.c: `hull cluster drain NODE`. */
int cluster_drain(struct cli *cli, const char *url, const char *node, bool as_json, bool wait,
                  unsigned down_s);
int cmd_vm(struct cli *cli, int argc, char **argv);
int cmd_vm_migrate(struct cli *cli, int argc, char **argv); /* and receive */
int cmd_vm_cache(struct cli *cli, int argc, char **argv);   /* vm cache prune */

#endif
