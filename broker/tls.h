/* tls.h -- TLS on the client port: the node's OpenSSL context, and each connection's handshake, reads and encrypted writes. */
#ifndef SUBWAY_TLS_H
#define SUBWAY_TLS_H

#include <stddef.h>
#include <sys/types.h>

#include "broker/broker.h"
#include "broker/outq.h"

struct ssl_st;

/* What a TLS step needs before it can go on. */
typedef enum tls_status {
    TLS_DONE,                     /* the step completed (bytes moved, handshake finished) */
    TLS_WANT_READ,                /* call again when the socket is readable */
    TLS_WANT_WRITE,               /* call again when the socket is writable */
    TLS_EOF,                      /* the peer closed (close_notify or a bare FIN) */
    TLS_FAILED,                   /* a TLS or socket error: close the connection */
} tls_status;

/* Builds the server context from --tls-cert-file, --tls-key-file,
 * --tls-ca-file, --tls-verify-client and --tls-ktls into b->tls_ctx (nothing
 * when --tls-listen is not set). Returns 0, or -1 with errstr naming the
 * file or setting at fault. */
int tls_start(broker *b, char *errstr, size_t errlen);

/* Frees b->tls_ctx (connections hold their own references to it). */
void tls_stop(broker *b);

/* Returns a new server-side session on the accepted socket fd (not owned),
 * waiting for the client's hello. Aborts on out of memory, as the node does. */
struct ssl_st *tls_session_new(broker *b, int fd);

/* Frees a session; accepts NULL. Sends nothing: see tls_close_notify. */
void tls_session_free(struct ssl_st *s);

/* Takes one handshake step. TLS_DONE when it is complete; TLS_FAILED with
 * why (the peer's address is the caller's to add) when it failed. */
tls_status tls_handshake(struct ssl_st *s, char *why, size_t whylen);

/* Reads up to len decrypted bytes into buf. Returns the count (> 0) with
 * *st TLS_DONE, or 0 with *st saying what it waits for or that it ended. */
size_t tls_read(struct ssl_st *s, void *buf, size_t len, tls_status *st);

/* 1 when OpenSSL holds input already taken from the socket: the socket
 * will not become readable for it, so the reader must come back by itself. */
int tls_has_pending(struct ssl_st *s);

/* Encrypts and writes q straight from its shared blocks, slice by slice,
 * until the queue is empty or the socket is full (a record the socket did
 * not take stays pinned in q, to be retried first). With kernel TLS the
 * plaintext goes out with writev. Returns the plaintext bytes written, with
 * *st TLS_DONE (empty), TLS_WANT_WRITE (full), TLS_WANT_READ (a
 * renegotiation, not expected) or TLS_FAILED. */
size_t tls_write(struct ssl_st *s, outq *q, int fd, tls_status *st);

/* Best effort: sends close_notify if the socket takes it now; never waits. */
void tls_close_notify(struct ssl_st *s);

/* 1 when the kernel encrypts what this session sends (--tls-ktls took). */
int tls_ktls_send(struct ssl_st *s);

#endif
