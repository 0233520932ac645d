/* The migration channel: TCP, the token handshake, framed and tagged
 * messages (migrate.h has the format). */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/crypto.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/clock.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/sha256.h"
#include "vm/migrate.h"

#define MAGIC "HULLMIG1"

int mig_token_read(const char *path, unsigned char *out, size_t cap, size_t *len, hull_error *err)
{
    if (!path || !*path)
        return hull_error_set(err, EINVAL, "a token file is required (--token-file)");
    struct stat st;
    if (stat(path, &st) < 0)
        return hull_error_errno(err, "token file %s", path);
    if (st.st_mode & 0077)
        return hull_error_set(err, EPERM, "token file %s: readable by others (chmod 600 it)", path);
    cleanup_free char *s = NULL;
    size_t n;
    if (hull_read_file(path, &s, &n, err) < 0)
        return hull_error_prefix(err, "token file");
    while (n && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    if (n < MIG_TOKEN_MIN || n > cap)
        return hull_error_set(err, EINVAL, "token file %s: the token must have %d to %zu bytes",
                              path, MIG_TOKEN_MIN, cap);
    memcpy(out, s, n);
    OPENSSL_cleanse(s, n);
    *len = n;
    return 0;
}

/* "host:port" or "[v6]:port" into its parts. */
static int split_hostport(const char *hp, char *host, size_t hl, char *port, size_t pl,
                          hull_error *err)
{
    const char *colon = strrchr(hp ? hp : "", ':');
    if (!hp || !colon || !colon[1] || colon == hp)
        return hull_error_set(err, EINVAL, "'%s': not HOST:PORT", hp ? hp : "");
    const char *h = hp;
    size_t n = (size_t)(colon - hp);
    if (h[0] == '[' && n >= 2 && h[n - 1] == ']') {
        h++;
        n -= 2;
    }
    if (n >= hl || strlen(colon + 1) >= pl)
        return hull_error_set(err, EINVAL, "'%s': too long", hp);
    memcpy(host, h, n);
    host[n] = 0;
    snprintf(port, pl, "%s", colon + 1);
    char *end;
    long v = strtol(port, &end, 10);
    if (*end || v < 0 || v > 65535)
        return hull_error_set(err, EINVAL, "'%s': bad port", hp);
    return 0;
}

static void free_ai(struct addrinfo **ai)
{
    if (*ai)
        freeaddrinfo(*ai);
}

static int resolve(const char *hp, bool passive, struct addrinfo **out, hull_error *err)
{
    char host[256], port[16];
    if (split_hostport(hp, host, sizeof(host), port, sizeof(port), err) < 0)
        return -1;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = passive ? AI_PASSIVE : 0};
    int r = getaddrinfo(host, port, &hints, out);
    if (r != 0)
        return hull_error_set(err, EINVAL, "%s: %s", hp, gai_strerror(r));
    return 0;
}

int mig_host_of(const char *hostport, char *host, size_t len, hull_error *err)
{
    char port[16];
    return split_hostport(hostport, host, len, port, sizeof(port), err);
}

int mig_connect(const char *hostport, int timeout_ms, int *out, hull_error *err)
{
    __attribute__((cleanup(free_ai))) struct addrinfo *ai = NULL;
    if (resolve(hostport, false, &ai, err) < 0)
        return -1;
    int e = ECONNREFUSED;
    for (struct addrinfo *a = ai; a; a = a->ai_next) {
        cleanup_close int fd =
            socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
        if (fd < 0)
            continue;
        if (connect(fd, a->ai_addr, a->ai_addrlen) < 0 && errno != EINPROGRESS) {
            e = errno;
            continue;
        }
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        hull_error we = NULL;
        if (mig_wait_fd(fd, POLLOUT, timeout_ms, &we, "connect") < 0) {
            e = ETIMEDOUT;
            hull_error_free(&we);
            continue;
        }
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0 || soerr) {
            e = soerr ? soerr : errno;
            continue;
        }
        int one = 1;
        /* Small control frames go out at once; the stream is large writes. */
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        *out = fd;
        fd = -1;
        return 0;
    }
    errno = e;
    return hull_error_errno(err, "connect to %s", hostport);
}

int mig_listen(const char *hostport, int *out, char *bound, size_t len, hull_error *err)
{
    __attribute__((cleanup(free_ai))) struct addrinfo *ai = NULL;
    if (resolve(hostport, true, &ai, err) < 0)
        return -1;
    cleanup_close int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 4) < 0)
        return hull_error_errno(err, "listen on %s", hostport);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char h[128] = "", p[16] = "";
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0 ||
        getnameinfo((struct sockaddr *)&ss, sl, h, sizeof(h), p, sizeof(p),
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0)
        return hull_error_errno(err, "listen on %s: its address", hostport);
    snprintf(bound, len, ss.ss_family == AF_INET6 ? "[%s]:%s" : "%s:%s", h, p);
    *out = fd;
    fd = -1;
    return 0;
}

int mig_accept(int lfd, int timeout_ms, int *out, char *peer, size_t len, hull_error *err)
{
    if (mig_wait_fd(lfd, POLLIN, timeout_ms, err, "wait for the source") < 0)
        return -1;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    int fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC);
    if (fd < 0)
        return hull_error_errno(err, "accept");
    char h[128] = "?", p[16] = "?";
    /* Only for messages: an address that does not print stays "?". */
    getnameinfo((struct sockaddr *)&ss, sl, h, sizeof(h), p, sizeof(p),
                NI_NUMERICHOST | NI_NUMERICSERV);
    snprintf(peer, len, "%s:%s", h, p);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    *out = fd;
    return 0;
}

static int io_all(struct mig_chan *c, void *buf, size_t n, bool out, hull_error *err)
{
    if (c->ssl)
        return mig_tls_io(c, buf, n, out, err);
    char *p = buf;
    while (n) {
        if (mig_chan_wait(c, out ? POLLOUT : POLLIN, err,
                          out ? "send to the peer" : "read from the peer") < 0)
            return -1;
        ssize_t r =
            out ? send(c->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT) : recv(c->fd, p, n, MSG_DONTWAIT);
        if (r < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (r < 0)
            return hull_error_errno(err, out ? "send to the peer" : "read from the peer");
        if (r == 0)
            return hull_error_set(err, ECONNRESET, "the peer closed the connection");
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

static void hmac3(const unsigned char *key, size_t klen, const char *label, const unsigned char *a,
                  const unsigned char *b, unsigned char out[32])
{
    unsigned char msg[64 + 32 + 32];
    size_t l = strlen(label);
    memcpy(msg, label, l);
    memcpy(msg + l, a, 32);
    memcpy(msg + l + 32, b, 32);
    unsigned int olen = 32;
    HMAC(EVP_sha256(), key, (int)klen, msg, l + 64, out, &olen);
}

int mig_auth(struct mig_chan *c, const unsigned char *token, size_t tlen, hull_error *err)
{
    unsigned char nr[32], ns[32], mac[32], want[32];
    char magic[8];
    if (c->server) {
        if (RAND_bytes(nr, 32) != 1)
            return hull_error_set(err, EIO, "no random bytes for the nonce");
        if (io_all(c, MAGIC, 8, true, err) < 0 || io_all(c, nr, 32, true, err) < 0 ||
            io_all(c, magic, 8, false, err) < 0 || io_all(c, ns, 32, false, err) < 0 ||
            io_all(c, mac, 32, false, err) < 0)
            return hull_error_prefix(err, "handshake");
        hmac3(token, tlen, "hull-migrate client", nr, ns, want);
        if (memcmp(magic, MAGIC, 8) != 0 || CRYPTO_memcmp(mac, want, 32) != 0)
            return hull_error_set(err, EACCES, "handshake: the source does not know the %s",
                                  c->ssl ? "TLS session's key" : "token");
        hmac3(token, tlen, "hull-migrate server", nr, ns, mac);
        if (io_all(c, mac, 32, true, err) < 0)
            return hull_error_prefix(err, "handshake");
    } else {
        if (io_all(c, magic, 8, false, err) < 0 || io_all(c, nr, 32, false, err) < 0)
            return hull_error_prefix(err, "handshake");
        if (memcmp(magic, MAGIC, 8) != 0)
            return hull_error_set(err, EPROTO, "handshake: the peer is not `hull vm receive`");
        if (RAND_bytes(ns, 32) != 1)
            return hull_error_set(err, EIO, "no random bytes for the nonce");
        hmac3(token, tlen, "hull-migrate client", nr, ns, mac);
        if (io_all(c, MAGIC, 8, true, err) < 0 || io_all(c, ns, 32, true, err) < 0 ||
            io_all(c, mac, 32, true, err) < 0)
            return hull_error_prefix(err, "handshake");
        hull_error e = NULL;
        if (io_all(c, mac, 32, false, &e) < 0) {
            /* The receiver hangs up on a wrong token: say so. */
            hull_error_free(&e);
            return hull_error_set(err, EACCES, "handshake: refused by the receiver (wrong token?)");
        }
        hmac3(token, tlen, "hull-migrate server", nr, ns, want);
        if (CRYPTO_memcmp(mac, want, 32) != 0)
            return hull_error_set(err, EACCES, "handshake: the receiver does not know the %s",
                                  c->ssl ? "TLS session's key" : "token");
    }
    hmac3(token, tlen, "hull-migrate session", nr, ns, c->key);
    return 0;
}

static void put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The tag of a control frame: direction (who sent it), its sequence
 * number, header and payload. */
static void tag(const struct mig_chan *c, bool from_server, uint64_t seq, const unsigned char *hdr,
                const char *payload, uint32_t n, unsigned char out[32])
{
    size_t total = 1 + 8 + 5 + n;
    unsigned char *msg = malloc(total);
    if (!msg) {
        memset(out, 0, 32); /* matches no real tag: the frame is refused */
        return;
    }
    msg[0] = from_server ? 'r' : 's';
    for (int i = 0; i < 8; i++)
        msg[1 + i] = (unsigned char)(seq >> (56 - 8 * i));
    memcpy(msg + 9, hdr, 5);
    memcpy(msg + 14, payload, n);
    unsigned int olen = 32;
    HMAC(EVP_sha256(), c->key, 32, msg, total, out, &olen);
    free(msg);
}

int mig_send(struct mig_chan *c, char type, json_object *o, hull_error *err)
{
    cleanup_json json_object *own = o ? o : json_object_new_object();
    size_t n;
    const char *s = json_object_to_json_string_length(own, JSON_C_TO_STRING_PLAIN, &n);
    if (n > MIG_CONTROL_MAX)
        return hull_error_set(err, E2BIG, "message '%c' too large", type);
    unsigned char hdr[5], t[32];
    hdr[0] = (unsigned char)type;
    put32(hdr + 1, (uint32_t)n);
    tag(c, c->server, c->seq_out++, hdr, s, (uint32_t)n, t);
    if (io_all(c, hdr, 5, true, err) < 0 || io_all(c, (void *)s, n, true, err) < 0 ||
        io_all(c, t, 32, true, err) < 0)
        return -1;
    return 0;
}

int mig_send_data(struct mig_chan *c, const void *p, uint32_t n, hull_error *err)
{
    unsigned char hdr[5];
    hdr[0] = 'D';
    put32(hdr + 1, n);
    if (io_all(c, hdr, 5, true, err) < 0 || io_all(c, (void *)p, n, true, err) < 0)
        return -1;
    return 0;
}

int mig_read_data(struct mig_chan *c, void *p, uint32_t n, hull_error *err)
{
    return io_all(c, p, n, false, err);
}

int mig_recv(struct mig_chan *c, char *type, json_object **o, uint32_t *dlen, hull_error *err)
{
    unsigned char hdr[5], t[32], want[32];
    if (io_all(c, hdr, 5, false, err) < 0)
        return -1;
    *type = (char)hdr[0];
    uint32_t n = get32(hdr + 1);
    if (*type == 'D') {
        if (n == 0 || n > MIG_DATA_MAX)
            return hull_error_set(err, EPROTO, "data frame of %u bytes", n);
        *dlen = n;
        return 0;
    }
    if (n > MIG_CONTROL_MAX)
        return hull_error_set(err, EPROTO, "message '%c' of %u bytes", *type, n);
    cleanup_free char *s = malloc(n + 1);
    if (!s)
        return hull_error_set(err, ENOMEM, "no memory for a message");
    if (io_all(c, s, n, false, err) < 0 || io_all(c, t, 32, false, err) < 0)
        return -1;
    s[n] = 0;
    tag(c, !c->server, c->seq_in++, hdr, s, n, want);
    if (CRYPTO_memcmp(t, want, 32) != 0)
        return hull_error_set(err, EPERM, "message '%c': its tag does not match (tampered with)",
                              *type);
    json_object *j = NULL;
    if (hj_parse(s, n, "message", &j, err) < 0)
        return -1;
    if (*type == 'X') {
        json_object *e = hj_get(j, "error");
        hull_error_set(err, EREMOTEIO, "the peer gave up: %s",
                       e ? json_object_get_string(e) : "no reason given");
        json_object_put(j);
        return -1;
    }
    if (o)
        *o = j;
    else
        json_object_put(j);
    return 0;
}

int mig_expect(struct mig_chan *c, char want, json_object **o, hull_error *err)
{
    char type;
    uint32_t dl = 0;
    json_object *j = NULL;
    if (mig_recv(c, &type, &j, &dl, err) < 0)
        return -1;
    if (type != want) {
        json_object_put(j);
        return hull_error_set(err, EPROTO, "expected message '%c', got '%c'", want, type);
    }
    if (o)
        *o = j;
    else
        json_object_put(j);
    return 0;
}

int mig_sec_open(const struct mig_sec_opts *o, bool server, struct mig_sec *s, hull_error *err)
{
    memset(s, 0, sizeof(*s));
    bool tls = o->cert || o->key || o->ca;
    if (tls && o->insecure_plain)
        return hull_error_set(err, EINVAL, "--insecure-plain and --tls-*: give one of them");
    if (tls && o->token_file)
        return hull_error_set(err, EINVAL,
                              "--token-file: only with --insecure-plain (with TLS the "
                              "certificates authenticate both ends)");
    if (!tls && !o->insecure_plain)
        return hull_error_set(err, EINVAL,
                              "the channel is TLS: give --tls-cert, --tls-key and --tls-ca (or "
                              "--insecure-plain --token-file F for a channel that is not "
                              "encrypted)");
    if (!tls && o->name)
        return hull_error_set(err, EINVAL, "--tls-name: only with TLS");
    if (!tls)
        return mig_token_read(o->token_file, s->token, sizeof(s->token), &s->tlen, err);
    return mig_tls_ctx(o, server, &s->ctx, err);
}

void mig_sec_close(struct mig_sec *s)
{
    OPENSSL_cleanse(s->token, sizeof(s->token));
    SSL_CTX_free(s->ctx);
    s->ctx = NULL;
}

int mig_secure(struct mig_chan *c, struct mig_sec *s, const char *name, hull_error *err)
{
    if (!s->ctx)
        return mig_auth(c, s->token, s->tlen, err);
    /* Inside TLS the handshake is keyed with the session's export. */
    unsigned char k[32];
    int rc = mig_tls_start(c, s->ctx, name, k, err) < 0 ? -1 : mig_auth(c, k, sizeof(k), err);
    OPENSSL_cleanse(k, sizeof(k));
    return rc;
}

void mig_send_error(struct mig_chan *c, hull_error e)
{
    /* No TLS session to say it in (its handshake failed or never ended). */
    if (c->ssl && !SSL_is_init_finished(c->ssl))
        return;
    json_object *o = json_object_new_object();
    json_object_object_add(o, "error", json_object_new_string(e ? hull_error_msg(e) : "failed"));
    hull_error ignore = NULL;
    /* The peer may be gone already: nothing more to do about it. */
    if (c->fd >= 0 && mig_send(c, 'X', o, &ignore) < 0)
        hull_error_free(&ignore);
}

EVP_MD_CTX *mig_sha_new(void)
{
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    if (c && EVP_DigestInit_ex(c, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(c);
        return NULL;
    }
    return c;
}

void mig_sha_hex(EVP_MD_CTX *c, char out[65])
{
    unsigned char md[32];
    EVP_DigestFinal_ex(c, md, NULL);
    hull_sha256_to_hex(md, out);
}

void mig_sha_freep(EVP_MD_CTX **c)
{
    EVP_MD_CTX_free(*c);
}
