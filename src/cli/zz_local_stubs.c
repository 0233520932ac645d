/* LOCAL ONLY (not committed): the container verbs live on another branch. */
#include "cli/cli.h"
#define STUB(n) int n(struct cli *cli, int argc, char **argv) { (void)cli; (void)argc; (void)argv; return 1; }
STUB(cmd_spec) STUB(cmd_create) STUB(cmd_start) STUB(cmd_run) STUB(cmd_state) STUB(cmd_kill) STUB(cmd_delete) STUB(cmd_list)
