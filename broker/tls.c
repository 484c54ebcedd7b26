/* tls.c -- TLS on the client port: the node's OpenSSL context, and each connection's handshake, reads and encrypted writes. */
#include "broker/tls.h"

#include <errno.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/log.h"
#include "proto/tlserr.h"

/* The plaintext one SSL_write turns into a record: after WANT_WRITE, at
 * most this much of the slice is inside OpenSSL and must be offered again. */
#define TLS_RECORD_MAX SSL3_RT_MAX_PLAIN_LENGTH

/* ---------------------------------------------------------------- context */

static int verify_mode(const char *v) {
    if (strcmp(v, "optional") == 0) return SSL_VERIFY_PEER;
    if (strcmp(v, "required") == 0) return SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    return SSL_VERIFY_NONE;
}

int tls_start(broker *b, char *errstr, size_t errlen) {
    const config *cfg = b->cfg;
    if (!cfg->tls_listen) return 0;
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        snprintf(errstr, errlen, "TLS: cannot create a context: %s", proto_tls_reason("out of memory"));
        return -1;
    }
    b->tls_ctx = ctx;
    /* TLS 1.2 and 1.3 with OpenSSL's default ciphers (forward-secret AEAD
     * first). No renegotiation: a client could make the node do a
     * handshake's work again and again on one connection. A client that
     * drops the connection without close_notify is an ordinary EOF: frames
     * carry their own lengths, so a truncation cannot go unnoticed. */
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_CIPHER_SERVER_PREFERENCE);
    if (cfg->tls_ktls) SSL_CTX_set_options(ctx, SSL_OP_ENABLE_KTLS);
    /* Writes go slice by slice from the shared blocks: SSL_write may take
     * part of a slice, and the output queue may move (grow) between a
     * WANT_WRITE and the retry of the same bytes. */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (SSL_CTX_use_certificate_chain_file(ctx, cfg->tls_cert_file) != 1) {
        snprintf(errstr, errlen, "--tls-cert-file %s: %s", cfg->tls_cert_file, proto_tls_reason("cannot read"));
        return -1;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, cfg->tls_key_file, SSL_FILETYPE_PEM) != 1) {
        snprintf(errstr, errlen, "--tls-key-file %s: %s", cfg->tls_key_file, proto_tls_reason("cannot read"));
        return -1;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(errstr, errlen, "--tls-key-file %s does not match --tls-cert-file %s: %s", cfg->tls_key_file,
                 cfg->tls_cert_file, proto_tls_reason("mismatch"));
        return -1;
    }
    if (cfg->tls_ca_file) {
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(cfg->tls_ca_file);
        if (SSL_CTX_load_verify_locations(ctx, cfg->tls_ca_file, NULL) != 1 || !names) {
            sk_X509_NAME_pop_free(names, X509_NAME_free);
            snprintf(errstr, errlen, "--tls-ca-file %s: %s", cfg->tls_ca_file, proto_tls_reason("no certificates in it"));
            return -1;
        }
        SSL_CTX_set_client_CA_list(ctx, names); /* tells clients which of their certificates to pick */
    }
    SSL_CTX_set_verify(ctx, verify_mode(cfg->tls_verify_client), NULL);
    /* Resumed sessions must come back to a context that verified them. */
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"subway", 6);
    log_info("TLS: client certificates %s%s", cfg->tls_verify_client,
             cfg->tls_ktls ? "; kernel TLS asked for (the first TLS connection logs whether it took)" : "");
    return 0;
}

void tls_stop(broker *b) {
    SSL_CTX_free(b->tls_ctx);
    b->tls_ctx = NULL;
}

/* --------------------------------------------------------------- sessions */

struct ssl_st *tls_session_new(broker *b, int fd) {
    SSL *s = SSL_new(b->tls_ctx);
    if (!s || SSL_set_fd(s, fd) != 1) {
        log_error("out of memory starting a TLS session");
        abort();
    }
    SSL_set_accept_state(s);
    return s;
}

void tls_session_free(struct ssl_st *s) {
    SSL_free(s);
}

/* What SSL_get_error says about the call that returned r. */
static tls_status tls_status_of(SSL *s, int r) {
    switch (SSL_get_error(s, r)) {
    case SSL_ERROR_WANT_READ:
        return TLS_WANT_READ;
    case SSL_ERROR_WANT_WRITE:
        return TLS_WANT_WRITE;
    case SSL_ERROR_ZERO_RETURN:
        return TLS_EOF;
    default:
        return TLS_FAILED;
    }
}

tls_status tls_handshake(struct ssl_st *s, char *why, size_t whylen) {
    ERR_clear_error();
    int r = SSL_do_handshake(s);
    if (r == 1) {
        X509 *peer = SSL_get_peer_certificate(s);
        char subject[256] = "";
        if (peer) X509_NAME_oneline(X509_get_subject_name(peer), subject, sizeof(subject));
        X509_free(peer);
        snprintf(why, whylen, "%s %s%s%s%s", SSL_get_version(s), SSL_get_cipher_name(s), peer ? ", client " : "",
                 subject, tls_ktls_send(s) ? ", kernel TLS" : "");
        return TLS_DONE;
    }
    tls_status st = tls_status_of(s, r);
    if (st == TLS_WANT_READ || st == TLS_WANT_WRITE) return st;
    if (st == TLS_EOF || (ERR_peek_last_error() == 0 && (errno == 0 || errno == ECONNRESET || errno == EPIPE)))
        snprintf(why, whylen, "closed during the handshake");
    else if (ERR_peek_last_error() == 0)
        snprintf(why, whylen, "handshake: %s", strerror(errno));
    else
        snprintf(why, whylen, "handshake: %s", proto_tls_reason("failed"));
    if (SSL_get_verify_result(s) != X509_V_OK)
        snprintf(why + strlen(why), whylen - strlen(why), " (%s)",
                 X509_verify_cert_error_string(SSL_get_verify_result(s)));
    ERR_clear_error();
    return TLS_FAILED;
}

size_t tls_read(struct ssl_st *s, void *buf, size_t len, tls_status *st) {
    size_t n = 0;
    ERR_clear_error();
    int r = SSL_read_ex(s, buf, len, &n);
    if (r == 1) {
        *st = TLS_DONE;
        return n;
    }
    *st = tls_status_of(s, r);
    ERR_clear_error();
    return 0;
}

int tls_has_pending(struct ssl_st *s) {
    return SSL_has_pending(s);
}

int tls_ktls_send(struct ssl_st *s) {
    return BIO_get_ktls_send(SSL_get_wbio(s)) ? 1 : 0;
}

size_t tls_write(struct ssl_st *s, outq *q, int fd, tls_status *st) {
    if (tls_ktls_send(s)) {
        /* The kernel encrypts: the shared blocks go out as they are. */
        ssize_t n = outq_write(q, fd);
        *st = n < 0 ? TLS_FAILED : q->bytes > 0 ? TLS_WANT_WRITE : TLS_DONE;
        return n < 0 ? 0 : (size_t)n;
    }
    size_t total = 0;
    const char *data;
    size_t len;
    while ((len = outq_peek(q, &data)) > 0) {
        size_t n = 0;
        ERR_clear_error();
        if (SSL_write_ex(s, data, len, &n) == 1) {
            outq_consume(q, n);
            total += n;
            continue;
        }
        *st = tls_status_of(s, 0);
        ERR_clear_error();
        if (*st == TLS_WANT_WRITE || *st == TLS_WANT_READ) {
            /* A record is encrypted and partly sent: the retry must offer
             * the same bytes again, so the queue must keep them. */
            outq_pin(q, len < TLS_RECORD_MAX ? len : TLS_RECORD_MAX);
        } else {
            *st = TLS_FAILED;
        }
        return total;
    }
    *st = TLS_DONE;
    return total;
}

void tls_close_notify(struct ssl_st *s) {
    if (!SSL_is_init_finished(s)) return;
    ERR_clear_error();
    SSL_shutdown(s);              /* one try: a peer that reads nothing gets the FIN anyway */
    ERR_clear_error();
}
