/* --client-timeout is, for MHD, an idle timer that every byte resets: a
 * client sending its request head a byte at a time kept its connection,
 * and with enough such clients every connection slot, for as long as it
 * liked, without a token. So each request head must be whole within the
 * timeout, counted from the connection's start or from the end of its
 * previous request; a watcher thread shuts down the socket of one that is
 * not, and MHD then closes the connection as for any peer that went away.
 * A body keeps the idle timer alone: an upload may take its time. */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

#include "http_deadline.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/log.h"

struct head {
    struct head *prev, *next;
    int fd;
    uint64_t since_ns; /* when the head's time started */
    bool waiting;      /* for a request head */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static struct head *heads;
static uint64_t limit_ns;
static bool stopping;
static bool running;
static pthread_t watcher;

void http_deadline_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    (void)cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        struct head *h = ci ? calloc(1, sizeof(*h)) : NULL;
        if (h == NULL)
            return; /* no deadline for this one: the idle timer still applies */
        h->fd = ci->connect_fd;
        h->since_ns = hull_monotonic_ns();
        h->waiting = true;
        pthread_mutex_lock(&lock);
        h->next = heads;
        if (heads)
            heads->prev = h;
        heads = h;
        pthread_mutex_unlock(&lock);
        *socket_context = h;
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED && *socket_context) {
        /* MHD closes the socket after this: from now on the watcher never
         * sees its fd, which may then be another connection's. */
        struct head *h = *socket_context;
        pthread_mutex_lock(&lock);
        if (h->prev)
            h->prev->next = h->next;
        else
            heads = h->next;
        if (h->next)
            h->next->prev = h->prev;
        pthread_mutex_unlock(&lock);
        free(h);
        *socket_context = NULL;
    }
}

static struct head *head_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

/* waiting: the connection's next request head is awaited from now on. */
static void set_waiting(struct MHD_Connection *conn, bool waiting)
{
    struct head *h = head_of(conn);
    if (h == NULL)
        return;
    pthread_mutex_lock(&lock);
    h->waiting = waiting;
    if (waiting)
        h->since_ns = hull_monotonic_ns();
    pthread_mutex_unlock(&lock);
}

void http_deadline_head_done(struct MHD_Connection *conn)
{
    set_waiting(conn, false);
}

void http_deadline_next(struct MHD_Connection *conn)
{
    set_waiting(conn, true);
}

static void *watch(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&lock);
    while (!stopping) {
        uint64_t now = hull_monotonic_ns();
        for (struct head *h = heads; h; h = h->next)
            if (h->waiting && now - h->since_ns > limit_ns) {
                h->waiting = false; /* once */
                hull_debug("http: a request head took over --client-timeout: closed");
                shutdown(h->fd, SHUT_RDWR);
            }
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        t.tv_nsec += 250000000;
        if (t.tv_nsec >= 1000000000) {
            t.tv_sec++;
            t.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&wake, &lock, &t);
    }
    pthread_mutex_unlock(&lock);
    return NULL;
}

int http_deadline_start(unsigned seconds)
{
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_destroy(&wake);
    pthread_cond_init(&wake, &a);
    pthread_condattr_destroy(&a);
    limit_ns = (uint64_t)seconds * 1000000000ull;
    stopping = false;
    if (pthread_create(&watcher, NULL, watch, NULL) != 0)
        return -1;
    running = true;
    return 0;
}

void http_deadline_stop(void)
{
    if (!running)
        return;
    pthread_mutex_lock(&lock);
    stopping = true;
    pthread_cond_signal(&wake);
    pthread_mutex_unlock(&lock);
    pthread_join(watcher, NULL);
    running = false;
}
