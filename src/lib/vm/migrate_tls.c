/* The migration channel's TLS (migrate.h): TLS 1.3 with mutual
 * certificates, and the channel's socket waits. It calls nothing of
 * migrate_wire.c (which chooses TLS or, only when asked for by name, the
 * plain token channel, and runs the handshake on top).
 *
 * With TLS each side presents its certificate (--tls-cert, --tls-key) and
 * checks the other's against the CA (--tls-ca): the receiver accepts any
 * source whose certificate that CA signed, the source also checks that
 * the receiver's certificate names the host it connects to (or
 * --tls-name). Mutual TLS replaces the shared token: the framing
 * handshake of migrate_wire.c then runs inside TLS with a secret both
 * ends export from this TLS session (RFC 5705), so its tags bind the
 * frames to the session and the rest of the protocol is unchanged. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "util/clock.h"
#include "util/error.h"
#include "vm/migrate.h"

#define EXPORT_LABEL "EXPORTER-hull-migrate"

/* Wait for fd to be ready for ev within ms; 0 when it is (every wait of
 * the channel, plain or TLS). */
int mig_wait_fd(int fd, short ev, int ms, hull_error *err, const char *what)
{
    struct pollfd p = {.fd = fd, .events = ev};
    int64_t end = hull_monotonic_ms() + ms;
    for (;;) {
        int left = (int)(end - hull_monotonic_ms());
        int r = poll(&p, 1, left > 0 ? left : 0);
        if (r > 0)
            return 0;
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return hull_error_errno(err, "%s", what);
        return hull_error_set(err, ETIMEDOUT, "%s: no answer from the peer in %d s", what,
                              ms / 1000);
    }
}

int mig_chan_wait(const struct mig_chan *c, short ev, hull_error *err, const char *what)
{
    int64_t left = c->deadline_ms ? c->deadline_ms - hull_monotonic_ms() : c->timeout_ms;
    if (left >= c->timeout_ms)
        return mig_wait_fd(c->fd, ev, c->timeout_ms, err, what);
    if (left <= 0 || mig_wait_fd(c->fd, ev, (int)left, err, what) < 0) {
        /* Only the deadline's own timeout is renamed; poll's failure stands. */
        if (left > 0 && hull_error_code(*err) != ETIMEDOUT)
            return -1;
        hull_error_free(err);
        return hull_error_set(err, ETIMEDOUT, "%s: the peer did not finish its handshake in time",
                              what);
    }
    return 0;
}

/* OpenSSL's last reason, or what else is known; the queue is emptied. */
static void ssl_reason(char *out, size_t len)
{
    unsigned long e = ERR_peek_last_error();
    if (e)
        snprintf(out, len, "%s", ERR_reason_error_string(e) ? ERR_reason_error_string(e) : "?");
    else
        snprintf(out, len, "%s", errno ? strerror(errno) : "the peer hung up");
    ERR_clear_error();
}

/* The key is a secret: like the token, it must not be readable by others. */
static int key_private(const char *path, hull_error *err)
{
    struct stat st;
    if (stat(path, &st) < 0)
        return hull_error_errno(err, "--tls-key %s", path);
    if (st.st_mode & 0077)
        return hull_error_set(err, EPERM, "--tls-key %s: readable by others (chmod 600 it)", path);
    return 0;
}

static int make_ctx(const struct mig_sec_opts *o, bool server, SSL_CTX **out, hull_error *err)
{
    char why[256];
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    if (!ctx)
        return hull_error_set(err, ENOMEM, "TLS: no context");
    *out = ctx;
    /* Both ends are hull: TLS 1.3 only, no session tickets (nothing to
     * resume, and no record arrives that the protocol does not expect). */
    SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
    SSL_CTX_set_num_tickets(ctx, 0);
    /* A hang-up reads as the end of the connection: every message the
     * protocol needs is framed and tagged, so a cut is still noticed. */
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_IGNORE_UNEXPECTED_EOF);
    const char *what = "--tls-cert", *file = o->cert;
    if (SSL_CTX_use_certificate_chain_file(ctx, o->cert) != 1)
        goto bad;
    what = "--tls-key", file = o->key;
    if (SSL_CTX_use_PrivateKey_file(ctx, o->key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1)
        goto bad;
    what = "--tls-ca", file = o->ca;
    if (SSL_CTX_load_verify_locations(ctx, o->ca, NULL) != 1)
        goto bad;
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    return 0;
bad:
    ssl_reason(why, sizeof(why));
    return hull_error_set(err, EINVAL, "%s %s: %s", what, file, why);
}

int mig_tls_ctx(const struct mig_sec_opts *o, bool server, SSL_CTX **ctx, hull_error *err)
{
    if (!o->cert || !o->key || !o->ca)
        return hull_error_set(err, EINVAL, "TLS needs all of --tls-cert, --tls-key and --tls-ca");
    if (!server && o->name && !*o->name)
        return hull_error_set(err, EINVAL, "--tls-name: empty");
    if (key_private(o->key, err) < 0)
        return -1;
    return make_ctx(o, server, ctx, err);
}

/* The source checks the receiver's certificate against this name: an IP
 * address (its SAN) or a DNS name (SAN or CN, also sent as SNI). */
static int want_name(SSL *ssl, const char *name, hull_error *err)
{
    unsigned char a[16];
    if (inet_pton(AF_INET, name, a) == 1 || inet_pton(AF_INET6, name, a) == 1) {
        if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name) != 1)
            return hull_error_set(err, EINVAL, "TLS: the address %s", name);
        return 0;
    }
    if (SSL_set1_host(ssl, name) != 1 || SSL_set_tlsext_host_name(ssl, name) != 1)
        return hull_error_set(err, EINVAL, "TLS: the name %s", name);
    return 0;
}

/* One TLS step failed: what the peer or the check said. */
static int tls_fail(struct mig_chan *c, int rc, const char *what, hull_error *err)
{
    char why[256];
    int e = SSL_get_error(c->ssl, rc);
    long v = SSL_get_verify_result(c->ssl);
    if (v != X509_V_OK) {
        ERR_clear_error();
        return hull_error_set(err, EACCES, "%s: the peer's certificate: %s", what,
                              X509_verify_cert_error_string(v));
    }
    if (e == SSL_ERROR_ZERO_RETURN)
        return hull_error_set(err, ECONNRESET, "%s: the peer closed the connection", what);
    ssl_reason(why, sizeof(why));
    /* An alert from the peer (its check of our certificate failed, say). */
    return hull_error_set(err, strstr(why, "alert") ? EACCES : EPROTO, "%s: TLS: %s%s", what, why,
                          strstr(why, "alert") ? " (the peer refused us)" : "");
}

static int wait_for(struct mig_chan *c, int rc, const char *what, hull_error *err)
{
    int e = SSL_get_error(c->ssl, rc);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return mig_chan_wait(c, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, err, what);
    return tls_fail(c, rc, what, err);
}

int mig_tls_io(struct mig_chan *c, void *buf, size_t n, bool out, hull_error *err)
{
    char *p = buf;
    const char *what = out ? "send to the peer" : "read from the peer";
    while (n) {
        size_t done = 0;
        ERR_clear_error();
        int rc = out ? SSL_write_ex(c->ssl, p, n, &done) : SSL_read_ex(c->ssl, p, n, &done);
        if (rc == 1) {
            p += done;
            n -= done;
            continue;
        }
        if (wait_for(c, rc, what, err) < 0)
            return -1;
    }
    return 0;
}

bool mig_pending(const struct mig_chan *c)
{
    return c->ssl && SSL_pending(c->ssl) > 0;
}

int mig_tls_start(struct mig_chan *c, SSL_CTX *ctx, const char *name, unsigned char key[32],
                  hull_error *err)
{
    int fl = fcntl(c->fd, F_GETFL);
    /* SSL_read/SSL_write wait in poll (timeouts), never in the socket. */
    if (fl < 0 || fcntl(c->fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return hull_error_errno(err, "TLS: the socket");
    ERR_clear_error();
    c->ssl = SSL_new(ctx);
    if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1)
        return hull_error_set(err, ENOMEM, "TLS: no session");
    if (!c->server && want_name(c->ssl, name, err) < 0)
        return -1;
    const char *what = c->server ? "TLS handshake with the source"
                                 : "TLS handshake with the "
                                   "receiver";
    for (;;) {
        ERR_clear_error();
        int rc = c->server ? SSL_accept(c->ssl) : SSL_connect(c->ssl);
        if (rc == 1)
            break;
        if (wait_for(c, rc, what, err) < 0)
            return -1;
    }
    if (SSL_export_keying_material(c->ssl, key, 32, EXPORT_LABEL, strlen(EXPORT_LABEL), NULL, 0,
                                   0) != 1)
        return hull_error_set(err, EPROTO, "TLS: no keying material");
    return 0;
}

/* A handshake refused: what the peer sent and we did not read yet is
 * read, so our close is a FIN after the alert, not a reset that could
 * overtake it (the peer then says why, not "connection reset"). */
static void drain(int fd)
{
    char buf[4096];
    for (int i = 0; i < 16 && recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0; i++)
        ;
}

void mig_chan_close(struct mig_chan *c)
{
    if (c->ssl) {
        /* Best effort: a close_notify if the socket takes it now. */
        ERR_clear_error();
        if (SSL_is_init_finished(c->ssl))
            SSL_shutdown(c->ssl);
        else
            drain(c->fd);
        ERR_clear_error();
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}
