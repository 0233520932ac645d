/* The puller: `hulld --helper puller`, one image pull in a process of its
 * own, then exit.
 *
 * Why a process and not a thread of hulld: a pull runs for minutes through
 * libcurl and libarchive over bytes a registry chose. In a helper, a crash
 * or a leak in that code ends one pull and is answered as an error, never
 * hulld; a pull hulld stops (shutdown, --pull-timeout) is a SIGKILL, which
 * the store is built to survive (blobs are renamed into place when whole,
 * index.json names nothing missing, a .part is resumed by the next pull).
 * It is the keeper's and worker's pattern: this binary exec'd again, so
 * nothing of hulld's threads or locks is inherited.
 *
 * Protocol (frame.c): hulld sends one header {"ref", "platform"?,
 * "tls_verify", "image_root", "authfile"?, "cert_dir"?}; the puller answers
 * {"ok": true, "digest": "sha256:..."} or {"error": {"errno", "message"}}. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "daemon.h"
#include "image/image.h"
#include "image/registry.h"
#include "util/error.h"
#include "util/json.h"
#include "util/log.h"

static const char *hdr_opt(json_object *hdr, const char *key)
{
    json_object *v = hj_get(hdr, key);
    return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

static int pull(json_object *hdr, char **digest, hull_error *err)
{
    const char *ref = hdr_opt(hdr, "ref"), *root = hdr_opt(hdr, "image_root");
    if (ref == NULL || root == NULL)
        return hull_error_set(err, ECHILD, "puller: the request has no ref or image_root");
    json_object *tls = hj_get(hdr, "tls_verify");
    struct image_registry_opts o = {
        .platform = hdr_opt(hdr, "platform"),
        .tls_insecure = tls && !json_object_get_boolean(tls),
        .cert_dir = hdr_opt(hdr, "cert_dir"),
        .auth_file = hdr_opt(hdr, "authfile"),
    };
    cleanup_image_store struct image_store s = {.rootfd = -1, .lockfd = -1};
    if (image_store_open(root, true, &s, err) < 0)
        return -1;
    return image_pull(&s, ref, &o, digest, err);
}

int puller_main(int sock)
{
    /* Dies with the hulld thread that waits for it: a pull nobody will
     * answer is not left running (what it fetched stays for the next). */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
        hull_warn("puller: PR_SET_PDEATHSIG: %s", strerror(errno));
    struct frame f;
    if (frame_recv(sock, &f) < 0)
        return 1; /* hulld went away before asking */
    /* hulld sends nothing more: anything readable now is its end of the
     * socket closing, i.e. it died before the death signal was armed. */
    struct pollfd p = {.fd = sock, .events = POLLIN};
    if (poll(&p, 1, 0) != 0) {
        frame_free(&f);
        return 1;
    }
    hull_error e = NULL;
    cleanup_free char *digest = NULL;
    json_object *reply = json_object_new_object();
    if (pull(f.hdr, &digest, &e) < 0) {
        json_object *er = json_object_new_object();
        json_object_object_add(er, "errno", json_object_new_int(hull_error_code(e)));
        json_object_object_add(er, "message", json_object_new_string(hull_error_msg(e)));
        json_object_object_add(reply, "error", er);
        hull_error_free(&e);
    } else {
        json_object_object_add(reply, "ok", json_object_new_boolean(1));
        json_object_object_add(reply, "digest", json_object_new_string(digest ? digest : ""));
    }
    frame_free(&f);
    int rc = frame_send(sock, reply, NULL, 0, -1);
    json_object_put(reply);
    return rc < 0 ? 1 : 0;
}
