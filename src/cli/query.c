/* hull state | list */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int cmd_state(struct cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, {0}};
    int c;
    while ((c = cli_getopt(argc, argv, "h", opts)) != -1) {
        if (c == 'h') {
            printf("usage: hull state ID\n\nPrint the OCI state of container ID as JSON.\n");
            return 0;
        }
        return cli_bad_option(cli, argc, argv, c);
    }
    if (cli_need_args(cli, argc, argv, 1, "container id") != 0)
        return 1;
    struct hull_state st;
    hull_error err = NULL;
    /* the library message already says "state ID: ..."; cli_fail also
     * puts it in the --log file, where engines look for it */
    if (hull_container_state(&cli->rt, argv[optind], &st, &err) < 0)
        return cli_fail(cli, &err, NULL);
    char *json = hull_state_to_json(&st, true);
    printf("%s\n", json);
    free(json);
    hull_state_free(&st);
    return 0;
}

static int by_id(const void *a, const void *b)
{
    return strcmp(((const struct hull_state *)a)->id, ((const struct hull_state *)b)->id);
}

/* The table: each column as wide as its widest cell, two spaces apart, so
 * long ids and bundle paths never run into the next column. */
enum { COL_ID, COL_PID, COL_STATUS, COL_BUNDLE, COL_CREATED, COL_OWNER, N_COLS };

static void row_cells(const struct hull_state *s, char pid[16], const char *cell[N_COLS])
{
    snprintf(pid, 16, "%d", (int)s->pid);
    cell[COL_ID] = s->id;
    cell[COL_PID] = pid;
    cell[COL_STATUS] = hull_status_name(s->status);
    cell[COL_BUNDLE] = s->bundle ? s->bundle : "";
    cell[COL_CREATED] = s->created ? s->created : "";
    cell[COL_OWNER] = s->owner ? s->owner : "";
}

static void print_row(const char *const cell[N_COLS], const int width[N_COLS])
{
    for (int c = 0; c < N_COLS - 1; c++)
        printf("%-*s  ", width[c], cell[c]);
    printf("%s\n", cell[N_COLS - 1]);
}

static void print_table(const struct hull_state *all, size_t n)
{
    static const char *const head[N_COLS] = {"ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"};
    int width[N_COLS];
    for (int c = 0; c < N_COLS; c++)
        width[c] = (int)strlen(head[c]);
    for (size_t i = 0; i < n; i++) {
        char pid[16];
        const char *cell[N_COLS];
        row_cells(&all[i], pid, cell);
        for (int c = 0; c < N_COLS; c++)
            if ((int)strlen(cell[c]) > width[c])
                width[c] = (int)strlen(cell[c]);
    }
    print_row(head, width);
    for (size_t i = 0; i < n; i++) {
        char pid[16];
        const char *cell[N_COLS];
        row_cells(&all[i], pid, cell);
        print_row(cell, width);
    }
}

int cmd_list(struct cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        {"format", required_argument, NULL, 'f'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    const char *format = "table";
    bool quiet = false;
    int c;
    while ((c = cli_getopt(argc, argv, "f:qh", opts)) != -1) {
        switch (c) {
        case 'f':
            format = optarg;
            break;
        case 'q':
            quiet = true;
            break;
        case 'h':
            printf("usage: hull list [--format table|json] [--quiet]\n"
                   "\n"
                   "List the containers under --root.\n"
                   "  -f, --format FMT   table (default) or json\n"
                   "  -q, --quiet        print the ids only\n");
            return 0;
        default:
            return cli_bad_option(cli, argc, argv, c);
        }
    }
    if (strcmp(format, "table") != 0 && strcmp(format, "json") != 0)
        return cli_usage_error(cli, "--format: unknown format '%s' (table or json)", format);
    if (cli_need_args(cli, argc, argv, 0, "") != 0)
        return 1;
    struct hull_state *all = NULL;
    size_t n = 0;
    hull_error err = NULL;
    if (hull_container_list(&cli->rt, &all, &n, &err) < 0)
        return cli_fail(cli, &err, NULL);
    if (n > 1) /* all is NULL when there is nothing: qsort must not see it */
        qsort(all, n, sizeof(*all), by_id);
    if (quiet) {
        for (size_t i = 0; i < n; i++)
            printf("%s\n", all[i].id);
    } else if (strcmp(format, "json") == 0) {
        printf("[");
        for (size_t i = 0; i < n; i++) {
            char *j = hull_state_to_json(&all[i], false);
            printf("%s%s", i ? "," : "", j);
            free(j);
        }
        printf("]\n");
    } else {
        print_table(all, n);
    }
    for (size_t i = 0; i < n; i++)
        hull_state_free(&all[i]);
    free(all);
    return 0;
}
