/* Live migration of a microVM between two hull processes (migrate_*.c).
 *
 * QEMU's own migration stream, read from (source) and written to
 * (receiver) a pipe by hull, travels over one TCP connection between
 * `hull vm migrate` and `hull vm receive`; QEMU never touches the network
 * (it has none: it runs confined in namespaces of its own).
 *
 * The channel (migrate_wire.c), all integers big-endian:
 *
 *   R -> S   "HULLMIG1", nonce_r (32 random bytes)
 *   S -> R   "HULLMIG1", nonce_s (32), HMAC(token, "hull-migrate client" nonce_r nonce_s)
 *   R -> S   HMAC(token, "hull-migrate server" nonce_r nonce_s)
 *
 * Each side proves it knows the shared token without sending it; the
 * session key is K = HMAC(token, "hull-migrate session" nonce_r nonce_s).
 * Then frames: type (1 byte), length (4), payload. Control frames (JSON)
 * carry a tag HMAC(K, direction, sequence number, type, length, payload)
 * after the payload; data frames ('D', QEMU's stream) carry none, and the
 * end frame ('E') gives their count and sha256, so the receiver resumes
 * its guest only after checking every byte it loaded. The stream is not
 * encrypted by itself: see TLS below (docs/vm.md).
 *
 *   S -> R  'M' manifest (the VM's size, artifacts and their digests)
 *   R -> S  'A' accepted: artifacts checked, a paused QEMU waits for the stream
 *   S -> R  'D'... the stream, then 'E' {"bytes", "sha256"}
 *   R -> S  'L' loaded: QEMU read it all, digests match (guest still paused)
 *   S -> R  'C' commit: the source will not resume
 *   R -> S  'R' running: the guest runs on the receiver
 *   either  'X' {"error"}: the sender gave up; the source resumes its VM
 *
 * By default all of it runs inside TLS 1.3 with mutual certificates
 * (migrate_tls.c): the token is then not used, the handshake above is
 * keyed with a secret exported from the TLS session instead. The plain
 * channel (the token, no encryption) only with --insecure-plain.
 */
#ifndef HULL_VM_MIGRATE_H
#define HULL_VM_MIGRATE_H

#include <json-c/json.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hull.h"

#define MIG_DATA_MAX    (1u << 20) /* one 'D' frame */
#define MIG_CONTROL_MAX (1u << 16) /* one JSON frame */
#define MIG_TOKEN_MIN   16

struct mig_chan {
    int fd;
    SSL *ssl;    /* NULL on the plain channel */
    bool server; /* the receiving side */
    unsigned char key[32];
    uint64_t seq_out, seq_in;
    int timeout_ms; /* the longest wait for the peer */
    /* The receiver's: the monotonic ms by which the peer must have proved
     * itself and sent its manifest (0: none); else a peer that trickles a
     * byte per wait would hold it for hours. */
    int64_t deadline_ms;
};

/* The token: the file's bytes without trailing white space, at least
 * MIG_TOKEN_MIN of them; the file must not be readable by others. */
int mig_token_read(const char *path, unsigned char *out, size_t cap, size_t *len, hull_error *err);
/* HOST:PORT ([v6]:PORT too) into a connected / listening TCP socket. */
int mig_connect(const char *hostport, int timeout_ms, int *out, hull_error *err);
int mig_listen(const char *hostport, int *out, char *bound, size_t len, hull_error *err);
/* Wait up to timeout_ms for one connection on lfd. */
int mig_accept(int lfd, int timeout_ms, int *out, char *peer, size_t len, hull_error *err);
/* The handshake above on a connected socket; c->fd and c->timeout_ms set. */
int mig_auth(struct mig_chan *c, const unsigned char *token, size_t tlen, hull_error *err);

/* How the channel is secured: TLS (cert, key, ca; name: what the
 * receiver's certificate must name, default the host connected to) or,
 * with insecure_plain, the token. */
struct mig_sec_opts {
    const char *cert, *key, *ca, *name;
    const char *token_file;
    bool insecure_plain;
};
struct mig_sec {
    SSL_CTX *ctx; /* NULL: the plain channel with the token */
    unsigned char token[256];
    size_t tlen;
};
/* Check o (exactly one of TLS or plain, complete) and load its files. */
int mig_sec_open(const struct mig_sec_opts *o, bool server, struct mig_sec *s, hull_error *err);
void mig_sec_close(struct mig_sec *s);
/* TLS (if s->ctx; the source checks the receiver is name) and then the
 * handshake above, on the connected c->fd. */
int mig_secure(struct mig_chan *c, struct mig_sec *s, const char *name, hull_error *err);
/* migrate_tls.c, below migrate_wire.c: o's TLS files into a context
 * (server: the receiver's), and TLS on the connected c->fd (the source
 * checks the receiver's certificate names name), key: 32 bytes exported
 * from the session for the handshake above. */
int mig_tls_ctx(const struct mig_sec_opts *o, bool server, SSL_CTX **ctx, hull_error *err);
int mig_tls_start(struct mig_chan *c, SSL_CTX *ctx, const char *name, unsigned char key[32],
                  hull_error *err);
/* SSL_read/SSL_write of exactly n bytes (migrate_wire.c's io on TLS). */
int mig_tls_io(struct mig_chan *c, void *buf, size_t n, bool out, hull_error *err);
/* Bytes of the peer's already read by TLS (poll on the fd misses them). */
bool mig_pending(const struct mig_chan *c);
/* TLS and the socket closed. */
void mig_chan_close(struct mig_chan *c);
/* Wait for fd to be ready for ev within ms (an error naming what). */
int mig_wait_fd(int fd, short ev, int ms, hull_error *err, const char *what);
/* The same on c's socket, within c->timeout_ms and c->deadline_ms. */
int mig_chan_wait(const struct mig_chan *c, short ev, hull_error *err, const char *what);
/* The host part of "host:port" / "[v6]:port". */
int mig_host_of(const char *hostport, char *host, size_t len, hull_error *err);

/* A control frame of type with o's JSON (consumed). */
int mig_send(struct mig_chan *c, char type, json_object *o, hull_error *err);
/* The next frame's header; for a control frame also its payload, tag
 * checked, parsed into *o (an 'X' frame becomes the error, EREMOTEIO).
 * A 'D' frame's length is in *dlen, its bytes are read with mig_read_data. */
int mig_recv(struct mig_chan *c, char *type, json_object **o, uint32_t *dlen, hull_error *err);
/* Exactly one frame of type want (else an error naming what came). */
int mig_expect(struct mig_chan *c, char want, json_object **o, hull_error *err);
int mig_send_data(struct mig_chan *c, const void *p, uint32_t n, hull_error *err);
int mig_read_data(struct mig_chan *c, void *p, uint32_t n, hull_error *err);
/* Best effort: tell the peer why we stop. */
void mig_send_error(struct mig_chan *c, hull_error e);

/* migrate_paths.c: the manifest's kernel, vmlinux, initrd and rootfs must
 * be regular files, the last three hull's own artifacts (this host's VM
 * cache, or an image store's disk); their real paths replace the peer's. */
int mig_manifest_confine(json_object *m, hull_error *err);

/* sha256 helpers for the data frames. */
EVP_MD_CTX *mig_sha_new(void);
void mig_sha_hex(EVP_MD_CTX *c, char out[65]);
void mig_sha_freep(EVP_MD_CTX **c);

#endif
