/* hull-worker: the process in which hulld's runs (and the queue worker's)
 * call hull_sandbox_run, one at a time (src/daemon/runner_worker.c).
 *
 *     hull-worker --helper worker|runner --state-dir DIR [--image-root DIR] [--debug]
 *
 * Started by hulld only (helper.c), with its socket on fd 3. It is static
 * and links no more than libhull: the sandbox's first clone copies every
 * mapping of the process it is made from, so a worker that is hulld itself
 * (49 shared libraries) paid ~0.5-1 ms more per run than this. */
#include <stdio.h>
#include <string.h>

#include "daemon.h"
#include "util/error.h"
#include "util/log.h"

int main(int argc, char **argv)
{
    const char *mode = NULL, *state_dir = NULL, *image_root = NULL;
    bool debug = false;
    for (int i = 1; i < argc; i++) {
        bool more = i + 1 < argc;
        if (strcmp(argv[i], "--helper") == 0 && more)
            mode = argv[++i];
        else if (strcmp(argv[i], "--state-dir") == 0 && more)
            state_dir = argv[++i];
        else if (strcmp(argv[i], "--image-root") == 0 && more)
            image_root = argv[++i];
        else if (strcmp(argv[i], "--debug") == 0)
            debug = true;
        else
            mode = NULL, i = argc;
    }
    if (mode == NULL || state_dir == NULL ||
        (strcmp(mode, "worker") != 0 && strcmp(mode, "runner") != 0)) {
        fprintf(stderr, "hull-worker: internal to hulld (hull-worker --helper worker|runner "
                        "--state-dir DIR [--image-root DIR] [--debug])\n");
        return 2;
    }
    hull_error err = NULL;
    if (hull_log_init(NULL, "text", debug, &err) < 0) {
        fprintf(stderr, "hull-worker: %s\n", hull_error_msg(err));
        hull_error_free(&err);
        return 1;
    }
    return worker_main(mode, state_dir, image_root);
}
