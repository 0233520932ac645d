/* A sandbox's ports: /v1/sandboxes/{id}/ports and the proxy behind them.
 *
 * Each exposed port is a listener of hulld's on 127.0.0.1 (a port the
 * kernel picks), served by a thread of its own. A connection's first
 * request must carry the sandbox's access token (header
 * X-Hull-Access-Token, else ?token=): 401 without, 403 with another; the
 * token is taken out of the request, and the connection is then joined
 * byte for byte to a socket the sandbox's keeper made in the sandbox's
 * network namespace, connected here to 127.0.0.1:PORT (else [::1]:PORT).
 * So HTTP, keep-alive, WebSocket upgrades and any protocol that starts
 * with an HTTP request pass, a server bound to the sandbox's loopback is
 * reached, and nothing changes on the host's network: no rule, route or
 * address, only the listener, which goes with the sandbox.
 *
 * Why a listener per port and not a path under hulld's API: a web app
 * served under /v1/sandboxes/ID/ports/P/ would see a prefix it does not
 * know in every link it makes; at its own origin it works as it is, and
 * the proxy needs no HTTP of its own past the first request's head.
 *
 * Tokens are compared in constant time and never logged. The token
 * belongs to the connection, not to each request: a later request on a
 * connection that showed it passes unchanged. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ports.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/json.h"
#include "util/log.h"

#define CONNS_MAX          64 /* connections at once, per port */
#define CONNECT_TIMEOUT_MS 10000
#define PUMP_BUF           65536

struct pentry;
struct psbx {
    char id[40];
    char token[PORT_TOKEN_LEN + 1];
    struct pentry *ports;
    struct psbx *next;
};

/* One exposed port: its listener, its thread, its connections' count. */
struct pentry {
    struct psbx *sb; /* outlives every pentry of it (sbx_ports_drop) */
    unsigned port, host_port;
    int lfd, stop; /* stop: an eventfd, readable once the port goes */
    pthread_t th;
    bool started;
    unsigned conns;
    struct pentry *next;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t conn_gone = PTHREAD_COND_INITIALIZER;
static struct psbx *all;

static struct psbx *find_locked(const char *id)
{
    struct psbx *sb = all;
    while (sb && strcmp(sb->id, id) != 0)
        sb = sb->next;
    return sb;
}

/* A socket from the sandbox, connected to its port on its loopback (a
 * microVM's: on the guest's address the keeper named): the fd, or -1
 * after answering the client. */
static int dial(struct pentry *pe, int cfd)
{
    int last = 0;
    for (int fam = 4; fam <= 6; fam += 2) {
        hull_error e = NULL;
        char addr[64] = "";
        int fd =
            sandboxes_socket(pe->sb->id, fam == 4 ? AF_INET : AF_INET6, addr, sizeof(addr), &e);
        if (fd < 0 && fam == 6 && last && hull_error_code(e) == EADDRNOTAVAIL) {
            hull_error_free(&e); /* a guest without IPv6: IPv4's answer stands */
            break;
        }
        if (fd < 0) {
            port_say(cfd, 502, "Bad Gateway", "bad_gateway", "port %u of sandbox %s: %s", pe->port,
                     pe->sb->id, hull_error_msg(e));
            hull_error_free(&e);
            return -1;
        }
        struct sockaddr_in a4 = {.sin_family = AF_INET, .sin_port = htons((uint16_t)pe->port)};
        struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)pe->port)};
        a4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a6.sin6_addr = in6addr_loopback;
        if (addr[0] && inet_pton(fam == 4 ? AF_INET : AF_INET6, addr,
                                 fam == 4 ? (void *)&a4.sin_addr : (void *)&a6.sin6_addr) != 1) {
            close(fd);
            port_say(cfd, 502, "Bad Gateway", "bad_gateway", "port %u of sandbox %s: bad address",
                     pe->port, pe->sb->id);
            return -1;
        }
        int r = fam == 4 ? connect(fd, (struct sockaddr *)&a4, sizeof(a4))
                         : connect(fd, (struct sockaddr *)&a6, sizeof(a6));
        if (r < 0 && errno == EINPROGRESS) {
            int soerr = ETIMEDOUT;
            socklen_t sl = sizeof(soerr);
            if (port_wait_fd(fd, POLLOUT, pe->stop, CONNECT_TIMEOUT_MS) > 0 &&
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
                soerr = errno;
            errno = soerr;
            r = soerr == 0 ? 0 : -1;
        }
        if (r == 0)
            return fd;
        last = errno;
        close(fd);
        if (last != ECONNREFUSED && last != EADDRNOTAVAIL && last != ENETUNREACH)
            break;
    }
    port_say(cfd, 502, "Bad Gateway", "bad_gateway", "port %u of sandbox %s: %s%s", pe->port,
             pe->sb->id, strerror(last), last == ECONNREFUSED ? " (nothing listens there)" : "");
    return -1;
}

/* Bytes both ways until both sides closed, an error, or the port's end. */
static void pump(struct pentry *pe, int cfd, int ufd)
{
    struct dir {
        char *buf;
        size_t off, len;
        bool eof;
    } d[2] = {{malloc(PUMP_BUF), 0, 0, false}, {malloc(PUMP_BUF), 0, 0, false}};
    int fds[2] = {cfd, ufd}; /* d[i] moves fds[i] -> fds[1 - i] */
    uint64_t touched = 0;
    while (d[0].buf && d[1].buf && !(d[0].eof && !d[0].len && d[1].eof && !d[1].len)) {
        short ev[2] = {0, 0};
        for (int i = 0; i < 2; i++) {
            if (!d[i].eof && d[i].len == 0)
                ev[i] |= POLLIN;
            if (d[i].len)
                ev[1 - i] |= POLLOUT;
        }
        struct pollfd p[3] = {{.fd = ev[0] ? cfd : -1, .events = ev[0]},
                              {.fd = ev[1] ? ufd : -1, .events = ev[1]},
                              {.fd = pe->stop, .events = POLLIN}};
        if (poll(p, 3, -1) < 0 && errno != EINTR)
            break;
        if (p[2].revents)
            break;
        bool fail = false;
        for (int i = 0; i < 2 && !fail; i++) {
            if (!(ev[i] & POLLIN) || !(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            ssize_t n = recv(fds[i], d[i].buf, PUMP_BUF, 0);
            if (n > 0) {
                d[i].off = 0;
                d[i].len = (size_t)n;
            } else if (n == 0) {
                d[i].eof = true;
                shutdown(fds[1 - i], SHUT_WR); /* a half-close is passed on */
            } else if (errno != EAGAIN && errno != EINTR) {
                fail = true;
            }
        }
        for (int i = 0; i < 2 && !fail; i++) {
            if (!d[i].len || !(p[1 - i].revents & (POLLOUT | POLLHUP | POLLERR)))
                continue;
            ssize_t n = send(fds[1 - i], d[i].buf + d[i].off, d[i].len, MSG_NOSIGNAL);
            if (n > 0) {
                d[i].off += (size_t)n;
                d[i].len -= (size_t)n;
            } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
                fail = true;
            }
        }
        if (fail)
            break;
        /* Traffic is use: the sandbox does not expire idle under it. */
        uint64_t now = hull_monotonic_ns();
        if (now - touched > 1000000000ull) {
            sandboxes_touch(pe->sb->id, NULL);
            touched = now;
        }
    }
    free(d[0].buf);
    free(d[1].buf);
}

struct conn {
    struct pentry *pe;
    int fd;
};

/* After an answer of the proxy's own: the client may still be sending
 * (a body, the rest of a long head); closing with that unread would reset
 * the connection before it reads the answer. So: our side closed, what
 * comes read and dropped, up to 1 MiB or 2 s of silence. */
static void drain(int cfd, int stop)
{
    char buf[4096];
    size_t total = 0;
    shutdown(cfd, SHUT_WR);
    while (total < (1u << 20) && port_wait_fd(cfd, POLLIN, stop, 2000) > 0) {
        ssize_t n = recv(cfd, buf, sizeof(buf), 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
            break;
        total += n > 0 ? (size_t)n : 0;
    }
}

/* One connection: the token checked, then joined to the sandbox's port.
 * True when the proxy answered it itself (an error). */
static bool serve(struct pentry *pe, int cfd)
{
    char *head = malloc(PORT_HEAD_MAX + 1);
    size_t have = 0;
    /* A client slow with its head is dropped like one of the API's. */
    int timeout_ms = (int)(hulld.o->client_timeout ? hulld.o->client_timeout : 30) * 1000;
    size_t hl = head ? port_read_head(cfd, pe->stop, timeout_ms, head, &have) : 0;
    if (hl == (size_t)-1)
        port_say(cfd, 431, "Request Header Fields Too Large", "headers_too_large",
                 "the first request's head is over %d bytes", PORT_HEAD_MAX);
    if (hl == 0 || hl == (size_t)-1) {
        if (head)
            explicit_bzero(head, PORT_HEAD_MAX); /* a token's bytes may be there */
        free(head);
        return hl != 0;
    }
    bool said = true;
    const char *tok;
    size_t tok_len, out_len = 0;
    char *out = NULL;
    int taken = port_take_token(head, hl, &tok, &tok_len, &out, &out_len);
    if (taken == -2) {
        port_say(cfd, 400, "Bad Request", "invalid_request",
                 "the request's head has a bare CR or LF, a NUL, a folded header line or "
                 "blanks before a header's colon");
    } else if (taken < 0) {
        port_say(cfd, 500, "Internal Server Error", "internal", "out of memory");
    } else if (tok == NULL) {
        port_say(cfd, 401, "Unauthorized", "unauthorized",
                 "this port needs the sandbox's access token (header " PORT_TOKEN_HEADER
                 " or ?token=)");
    } else if (!port_token_ok(pe->sb->token, tok, tok_len)) {
        port_say(cfd, 403, "Forbidden", "forbidden", "the access token is not this sandbox's");
    } else {
        int ufd = dial(pe, cfd);
        said = ufd < 0;
        if (ufd >= 0) {
            /* What followed the head (a body's start) goes after it. */
            char *fwd = realloc(out, out_len + (have - hl));
            if (fwd) {
                memcpy(fwd + out_len, head + hl, have - hl);
                out = fwd;
                out_len += have - hl;
                size_t off = 0;
                while (off < out_len && port_wait_fd(ufd, POLLOUT, pe->stop, -1) > 0) {
                    ssize_t n = send(ufd, out + off, out_len - off, MSG_NOSIGNAL);
                    if (n < 0 && errno != EAGAIN && errno != EINTR)
                        break;
                    off += n > 0 ? (size_t)n : 0;
                }
                if (off == out_len)
                    pump(pe, cfd, ufd);
            }
            close(ufd);
        }
    }
    /* The token's bytes do not stay in freed memory longer than needed. */
    explicit_bzero(head, PORT_HEAD_MAX);
    free(head);
    free(out);
    return said;
}

static void *conn_main(void *arg)
{
    struct conn *c = arg;
    struct pentry *pe = c->pe;
    if (serve(pe, c->fd))
        drain(c->fd, pe->stop);
    close(c->fd);
    free(c);
    pthread_mutex_lock(&mu);
    pe->conns--;
    pthread_cond_broadcast(&conn_gone);
    pthread_mutex_unlock(&mu);
    return NULL;
}

static void *listen_main(void *arg)
{
    struct pentry *pe = arg;
    for (;;) {
        struct pollfd p[2] = {{.fd = pe->lfd, .events = POLLIN},
                              {.fd = pe->stop, .events = POLLIN}};
        if (poll(p, 2, -1) < 0 && errno != EINTR)
            return NULL;
        if (p[1].revents)
            return NULL;
        int fd = accept4(pe->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOMEM || errno == ENOBUFS) {
                hull_warn("port %u of sandbox %s: accept: %s", pe->port, pe->sb->id,
                          strerror(errno));
                port_wait_fd(pe->stop, POLLIN, pe->stop, 100); /* not a busy loop */
            }
            continue;
        }
        pthread_mutex_lock(&mu);
        bool full = pe->conns >= CONNS_MAX;
        if (!full)
            pe->conns++;
        pthread_mutex_unlock(&mu);
        struct conn *c = full ? NULL : malloc(sizeof(*c));
        bool ok = false;
        if (c) {
            *c = (struct conn){pe, fd};
            ok = daemon_thread(conn_main, c) == 0;
        }
        if (!ok) {
            port_say(fd, 503, "Service Unavailable", "busy", "port %u has %d connections, its most",
                     pe->port, CONNS_MAX);
            close(fd);
            free(c);
            if (!full) {
                pthread_mutex_lock(&mu);
                pe->conns--;
                pthread_mutex_unlock(&mu);
            }
        }
    }
}

/* A listener for port, not yet serving: NULL with err. */
static struct pentry *pentry_new(struct psbx *sb, unsigned port, hull_error *err)
{
    struct pentry *pe = calloc(1, sizeof(*pe));
    if (pe == NULL) {
        hull_error_set(err, ENOMEM, "out of memory");
        return NULL;
    }
    pe->sb = sb;
    pe->port = port;
    pe->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    pe->stop = eventfd(0, EFD_CLOEXEC);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof(a);
    if (pe->lfd < 0 || pe->stop < 0 || bind(pe->lfd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
        listen(pe->lfd, 64) < 0 || getsockname(pe->lfd, (struct sockaddr *)&a, &al) < 0) {
        hull_error_errno(err, "port %u: a listener on 127.0.0.1", port);
        if (pe->lfd >= 0)
            close(pe->lfd);
        if (pe->stop >= 0)
            close(pe->stop);
        free(pe);
        return NULL;
    }
    pe->host_port = ntohs(a.sin_port);
    return pe;
}

/* Its thread stopped, every connection ended, everything closed. */
static void pentry_free(struct pentry *pe)
{
    uint64_t one = 1;
    if (write(pe->stop, &one, sizeof(one)) != sizeof(one))
        hull_warn("port %u: stop: %s", pe->port,
                  strerror(errno)); /* cannot fail: a fresh eventfd */
    if (pe->started)
        pthread_join(pe->th, NULL);
    close(pe->lfd);
    pthread_mutex_lock(&mu);
    while (pe->conns)
        pthread_cond_wait(&conn_gone, &mu);
    pthread_mutex_unlock(&mu);
    close(pe->stop);
    free(pe);
}

static json_object *port_json(const struct pentry *pe)
{
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/", pe->host_port);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "port", json_object_new_int((int)pe->port));
    json_object_object_add(o, "url", json_object_new_string(url));
    return o;
}

/* Under mu: pe joins sb (still listed as id) and starts serving. 1 added,
 * 0 the port was there already (*have: that one's JSON), -1 with r filled. */
static int link_locked(const char *id, struct psbx *sb, struct pentry *pe, json_object **have,
                       struct resp *r)
{
    if (find_locked(id) != sb) {
        resp_error(r, 404, "not_found", NULL, "sandbox '%s' not found", id);
        return -1;
    }
    size_t n = 0;
    for (struct pentry *q = sb->ports; q; q = q->next, n++)
        if (q->port == pe->port) {
            *have = port_json(q);
            return 0;
        }
    if (n >= SBX_PORTS_MAX) {
        resp_error(r, 409, "conflict", "port", "sandbox '%s' has %d ports, its most", id,
                   SBX_PORTS_MAX);
        return -1;
    }
    if (pthread_create(&pe->th, NULL, listen_main, pe) != 0) {
        resp_error(r, 500, "internal", NULL, "port %u: cannot start its thread", pe->port);
        return -1;
    }
    pe->started = true;
    pe->next = sb->ports;
    sb->ports = pe;
    return 1;
}

/* The sandbox can have ports (its own network namespace): 0, or -1 with
 * r filled (409 for one on the host's network). */
static int probe(const char *id, struct resp *r)
{
    hull_error e = NULL;
    int fd = sandboxes_socket(id, AF_INET, NULL, 0, &e);
    if (fd >= 0) {
        close(fd);
        return 0;
    }
    if (hull_error_code(e) == EPERM) {
        resp_error(r, 409, "conflict", "ports", "%s", hull_error_msg(e));
        hull_error_free(&e);
    } else if (hull_error_code(e) == EPROTO || hull_error_code(e) == ENOTSUP) {
        /* A keeper without the "socket" op (a microVM sandbox's). */
        resp_error(r, 501, "not_implemented", "ports", "ports: not available for sandbox %s (%s)",
                   id, hull_error_msg(e));
        hull_error_free(&e);
    } else {
        resp_from_error(r, &e);
    }
    return -1;
}

/* Port p of sandbox id, opened: its JSON (status 201 new, 200 already
 * there), or NULL with r filled. */
static json_object *expose(const char *id, struct psbx *sb, unsigned port, int *status,
                           struct resp *r)
{
    hull_error e = NULL;
    if (probe(id, r) < 0)
        return NULL;
    struct pentry *pe = pentry_new(sb, port, &e);
    if (pe == NULL) {
        resp_from_error(r, &e);
        return NULL;
    }
    json_object *have = NULL;
    pthread_mutex_lock(&mu);
    int k = link_locked(id, sb, pe, &have, r);
    pthread_mutex_unlock(&mu);
    if (k <= 0) {
        pentry_free(pe);
        *status = 200;
        return have;
    }
    *status = 201;
    return port_json(pe);
}

int sbx_ports_take(json_object *doc, unsigned *ports, size_t *n, struct resp *r)
{
    json_object *v = hj_get(doc, "ports");
    *n = 0;
    if (v == NULL)
        return 0;
    if (!json_object_is_type(v, json_type_array)) {
        resp_error(r, 400, "invalid_request", "ports",
                   "ports: must be an array of port numbers ([8080])");
        return -1;
    }
    size_t len = json_object_array_length(v);
    if (len > SBX_PORTS_MAX) {
        resp_error(r, 400, "invalid_request", "ports", "ports: at most %d", SBX_PORTS_MAX);
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        json_object *p = json_object_array_get_idx(v, i);
        int64_t x = json_object_is_type(p, json_type_int) ? json_object_get_int64(p) : 0;
        char field[32];
        snprintf(field, sizeof(field), "ports[%zu]", i);
        if (x < 1 || x > 65535) {
            resp_error(r, 400, "invalid_request", field, "%s: must be a port number (1 to 65535)",
                       field);
            return -1;
        }
        for (size_t j = 0; j < i; j++)
            if (ports[j] == (unsigned)x) {
                resp_error(r, 400, "invalid_request", field, "%s: port %u is listed twice", field,
                           (unsigned)x);
                return -1;
            }
        ports[(*n)++] = (unsigned)x;
    }
    json_object_object_del(doc, "ports");
    return 0;
}

static bool token_valid(const char *t)
{
    return strlen(t) == PORT_TOKEN_LEN && strspn(t, "0123456789abcdef") == PORT_TOKEN_LEN;
}

int sbx_ports_open(const char *id, const unsigned *ports, size_t n, const char *token,
                   json_object *o, struct resp *r)
{
    struct psbx *sb = calloc(1, sizeof(*sb));
    unsigned char b[PORT_TOKEN_LEN / 2];
    if (token && !token_valid(token)) {
        resp_error(r, 400, "invalid_request", "access_token", "access_token: not a port token");
        free(sb);
        return -1;
    }
    if (sb == NULL || (!token && getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b))) {
        resp_error(r, 500, "internal", NULL, "access token: %s",
                   sb ? strerror(errno) : "out of memory");
        free(sb);
        return -1;
    }
    snprintf(sb->id, sizeof(sb->id), "%s", id);
    if (token)
        snprintf(sb->token, sizeof(sb->token), "%s", token);
    for (size_t i = 0; !token && i < sizeof(b); i++)
        snprintf(sb->token + 2 * i, 3, "%02x", b[i]);
    explicit_bzero(b, sizeof(b));
    pthread_mutex_lock(&mu);
    sb->next = all;
    all = sb;
    pthread_mutex_unlock(&mu);
    for (size_t i = 0; i < n; i++) {
        int status;
        json_object *p = expose(id, sb, ports[i], &status, r);
        if (p == NULL) {
            sbx_ports_drop(id);
            return -1;
        }
        json_object_put(p);
    }
    json_object_object_add(o, "access_token", json_object_new_string(sb->token));
    sbx_ports_show(id, o);
    return 0;
}

void sbx_ports_export(const char *id, json_object *o)
{
    pthread_mutex_lock(&mu);
    struct psbx *sb = find_locked(id);
    if (sb) {
        json_object *a = json_object_new_array();
        for (struct pentry *pe = sb->ports; pe; pe = pe->next)
            json_object_array_add(a, json_object_new_int((int)pe->port));
        json_object_object_add(o, "ports", a);
        json_object_object_add(o, "access_token", json_object_new_string(sb->token));
    }
    pthread_mutex_unlock(&mu);
}

void sbx_ports_show(const char *id, json_object *o)
{
    pthread_mutex_lock(&mu);
    struct psbx *sb = find_locked(id);
    if (sb) {
        json_object *a = json_object_new_array();
        for (struct pentry *pe = sb->ports; pe; pe = pe->next)
            json_object_array_add(a, port_json(pe));
        /* Oldest first, as they were opened. */
        size_t len = json_object_array_length(a);
        json_object *rev = json_object_new_array();
        for (size_t i = len; i-- > 0;)
            json_object_array_add(rev, json_object_get(json_object_array_get_idx(a, i)));
        json_object_put(a);
        json_object_object_add(o, "ports", rev);
    }
    pthread_mutex_unlock(&mu);
}

void sbx_ports_drop(const char *id)
{
    pthread_mutex_lock(&mu);
    struct psbx *sb = NULL;
    for (struct psbx **p = &all; *p; p = &(*p)->next)
        if (strcmp((*p)->id, id) == 0) {
            sb = *p;
            *p = sb->next;
            break;
        }
    pthread_mutex_unlock(&mu);
    if (sb == NULL)
        return;
    /* Unlisted: nothing new joins it; what is there ends now. */
    while (sb->ports) {
        struct pentry *pe = sb->ports;
        sb->ports = pe->next;
        pentry_free(pe);
    }
    explicit_bzero(sb->token, sizeof(sb->token));
    free(sb);
}

/* DELETE …/ports/{port}: that listener and its connections end. */
static void unexpose(const char *id, unsigned port, struct resp *r)
{
    pthread_mutex_lock(&mu);
    struct psbx *sb = find_locked(id);
    struct pentry *pe = NULL;
    for (struct pentry **p = sb ? &sb->ports : NULL; p && *p; p = &(*p)->next)
        if ((*p)->port == port) {
            pe = *p;
            *p = pe->next;
            break;
        }
    pthread_mutex_unlock(&mu);
    if (pe == NULL) {
        resp_error(r, 404, "not_found", NULL, "port %u of sandbox '%s' is not exposed", port, id);
        return;
    }
    pentry_free(pe);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "port", json_object_new_int((int)port));
    json_object_object_add(o, "removed", json_object_new_boolean(1));
    resp_json(r, 200, o);
}

static void post_port(const char *id, const struct request *rq, struct resp *r)
{
    cleanup_json json_object *doc = NULL;
    if (request_doc(rq, false, &doc, r) < 0)
        return;
    json_object_object_foreach(doc, key, val)
    {
        (void)val;
        if (strcmp(key, "port") != 0) {
            resp_error(r, 400, "invalid_request", key, "%s: unknown field (accepted: port)", key);
            return;
        }
    }
    json_object *v = hj_get(doc, "port");
    int64_t port = v && json_object_is_type(v, json_type_int) ? json_object_get_int64(v) : 0;
    if (port < 1 || port > 65535) {
        resp_error(r, 400, "invalid_request", "port", "port: required, a port number (1 to 65535)");
        return;
    }
    pthread_mutex_lock(&mu);
    struct psbx *sb = find_locked(id);
    pthread_mutex_unlock(&mu);
    if (sb == NULL) { /* made before ports existed, or being destroyed */
        resp_error(r, 404, "not_found", NULL, "sandbox '%s' not found", id);
        return;
    }
    int status = 0;
    json_object *o = expose(id, sb, (unsigned)port, &status, r);
    if (o)
        resp_json(r, status, o);
}

void sbx_ports_api(struct sbx *s, const struct request *rq, const char *rest, struct resp *r)
{
    const char *id = sbx_id(s);
    if (rest == NULL || rest[0] == '\0' || strcmp(rest, "/") == 0) {
        if (strcmp(rq->method, "POST") == 0) {
            post_port(id, rq, r);
        } else if (strcmp(rq->method, "GET") == 0) {
            json_object *o = json_object_new_object();
            sbx_ports_show(id, o);
            if (hj_get(o, "ports") == NULL)
                json_object_object_add(o, "ports", json_object_new_array());
            resp_json(r, 200, o);
        } else {
            resp_error(r, 405, "method_not_allowed", NULL, "use GET or POST on …/ports");
            r->allow = "GET, POST";
        }
        return;
    }
    char *end = NULL;
    unsigned long port = strtoul(rest + 1, &end, 10);
    if (rest[0] != '/' || end == rest + 1 || *end != '\0' || port < 1 || port > 65535) {
        resp_error(r, 404, "not_found", NULL, "no such port route");
        return;
    }
    if (strcmp(rq->method, "DELETE") == 0) {
        unexpose(id, (unsigned)port, r);
        return;
    }
    if (strcmp(rq->method, "GET") == 0) {
        json_object *o = json_object_new_object(), *found = NULL;
        sbx_ports_show(id, o);
        json_object *a = hj_get(o, "ports");
        for (size_t i = 0; a && i < json_object_array_length(a) && !found; i++) {
            json_object *p = json_object_array_get_idx(a, i);
            if (json_object_get_int(hj_get(p, "port")) == (int)port)
                found = json_object_get(p);
        }
        json_object_put(o);
        if (found)
            resp_json(r, 200, found);
        else
            resp_error(r, 404, "not_found", NULL, "port %lu of sandbox '%s' is not exposed", port,
                       id);
        return;
    }
    resp_error(r, 405, "method_not_allowed", NULL, "use GET or DELETE on …/ports/{port}");
    r->allow = "GET, DELETE";
}
