/* client_tls.c -- libsubway's TLS: the client context from subway_set_tls, each connection's session, handshake and encrypted reads and writes. */
#include "client_int.h"
#include "tlserr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Builds the context subway_set_tls describes. Returns it, or NULL with
 * why in errbuf. */
static SSL_CTX *tls_context(const subway_tls *t, char *errbuf, size_t errsize) {
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL) {
        snprintf(errbuf, errsize, "TLS: %s", proto_tls_reason("out of memory"));
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* A node that hangs up without close_notify is an EOF like any other:
     * frames carry their lengths. Writes may take part of the buffer, and
     * the buffer may move (grow) before a retry. */
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    int ok = t->ca_file ? SSL_CTX_load_verify_locations(ctx, t->ca_file, NULL)
                        : SSL_CTX_set_default_verify_paths(ctx);
    if (ok != 1) {
        snprintf(errbuf, errsize, "TLS CA file %s: %s", t->ca_file ? t->ca_file : "(system default)",
                 proto_tls_reason("cannot read"));
        goto err;
    }
    if (t->cert_file) {
        const char *key = t->key_file ? t->key_file : t->cert_file;
        if (SSL_CTX_use_certificate_chain_file(ctx, t->cert_file) != 1) {
            snprintf(errbuf, errsize, "TLS certificate file %s: %s", t->cert_file, proto_tls_reason("cannot read"));
            goto err;
        }
        if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
            snprintf(errbuf, errsize, "TLS key file %s: %s", key, proto_tls_reason("does not match the certificate"));
            goto err;
        }
    } else if (t->key_file) {
        snprintf(errbuf, errsize, "TLS: a key file (%s) without a certificate file", t->key_file);
        goto err;
    }
    return ctx;
err:
    SSL_CTX_free(ctx);
    return NULL;
}

int subway_set_tls(subway_client *c, const subway_tls *tls) {
    if (c->state != STATE_NEW) return -1; /* not sticky: the connection is unaffected */
    char errbuf[512];
    SSL_CTX *ctx = NULL;
    char *name = NULL;
    if (tls) {
        if (!(ctx = tls_context(tls, errbuf, sizeof(errbuf)))) {
            client_fail(c, SUBWAY_E_ARG, "%s", errbuf);
            return -1;
        }
        if (tls->server_name && !(name = client_strdup(tls->server_name))) {
            SSL_CTX_free(ctx);
            client_fail(c, SUBWAY_E_NOMEM, "out of memory");
            return -1;
        }
    }
    client_tls_free(c);
    c->tls_ctx = ctx;
    c->tls_server_name = name;
    return 0;
}

void client_tls_free(subway_client *c) {
    client_tls_drop(c);
    SSL_CTX_free(c->tls_ctx);
    c->tls_ctx = NULL;
    free(c->tls_server_name);
    c->tls_server_name = NULL;
}

/* ---------------------------------------------------------------- session */

int client_tls_start(subway_client *c, const char *host, char *errbuf, size_t errsize) {
    const char *name = c->tls_server_name ? c->tls_server_name : host;
    SSL *s = SSL_new(c->tls_ctx);
    if (s == NULL || SSL_set_fd(s, c->fd) != 1) {
        SSL_free(s);
        snprintf(errbuf, errsize, "TLS: %s", proto_tls_reason("out of memory"));
        return SUBWAY_E_NOMEM;
    }
    /* The node's certificate must name what the client asked for: an IP
     * address in its IP SANs, a host name in its DNS SANs (sent as SNI). */
    unsigned char ip[16];
    int is_ip = inet_pton(AF_INET, name, ip) == 1 || inet_pton(AF_INET6, name, ip) == 1;
    int ok = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(s), name)
                   : SSL_set1_host(s, name) == 1 && SSL_set_tlsext_host_name(s, name) == 1;
    if (!ok) {
        SSL_free(s);
        snprintf(errbuf, errsize, "TLS: cannot check the node's name '%s': %s", name, proto_tls_reason("bad name"));
        return SUBWAY_E_ARG;
    }
    SSL_set_connect_state(s);
    c->ssl = s;
    c->flags |= F_TLS_HANDSHAKE | F_TLS_WANT_WRITE; /* the ClientHello goes first */
    return 0;
}

void client_tls_drop(subway_client *c) {
    SSL_free(c->ssl);
    c->ssl = NULL;
    c->flags &= ~(F_TLS_HANDSHAKE | F_TLS_WANT_WRITE);
}

/* Notes what the last call on the session waits for. Returns 1 when it
 * waits for the socket (F_TLS_WANT_WRITE says which way), 0 when it failed. */
static int tls_wait(subway_client *c, int err) {
    c->flags &= ~F_TLS_WANT_WRITE;
    if (err == SSL_ERROR_WANT_WRITE) c->flags |= F_TLS_WANT_WRITE;
    return err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE;
}

int client_tls_handshake(subway_client *c) {
    ERR_clear_error();
    int r = SSL_do_handshake(c->ssl);
    if (r == 1) {
        c->flags &= ~(F_TLS_HANDSHAKE | F_TLS_WANT_WRITE);
        return 1;
    }
    int err = SSL_get_error(c->ssl, r);
    if (tls_wait(c, err)) return 0;
    long v = SSL_get_verify_result(c->ssl);
    if (v != X509_V_OK)
        client_fail(c, SUBWAY_E_IO, "TLS handshake with %s: the node's certificate: %s", c->addr,
                    X509_verify_cert_error_string(v));
    else if (err == SSL_ERROR_SYSCALL || err == SSL_ERROR_ZERO_RETURN)
        client_fail(c, SUBWAY_E_IO, "TLS handshake with %s: %s", c->addr,
                    ERR_peek_last_error() ? proto_tls_reason("failed") : errno ? strerror(errno) : "closed by node");
    else
        client_fail(c, SUBWAY_E_IO, "TLS handshake with %s: %s", c->addr, proto_tls_reason("failed"));
    ERR_clear_error();
    return -1;
}

ssize_t client_tls_io(subway_client *c, bool out, char *buf, size_t len, char *why, size_t whylen) {
    size_t n = 0;
    ERR_clear_error();
    int r = out ? SSL_write_ex(c->ssl, buf, len, &n) : SSL_read_ex(c->ssl, buf, len, &n);
    if (r == 1) {
        c->flags &= ~F_TLS_WANT_WRITE;
        return (ssize_t)n;
    }
    int err = SSL_get_error(c->ssl, r);
    if (tls_wait(c, err)) return 0;
    if (err == SSL_ERROR_ZERO_RETURN) return CLIENT_TLS_EOF;
    if (err == SSL_ERROR_SYSCALL && ERR_peek_last_error() == 0) {
        if (errno == 0) return CLIENT_TLS_EOF;
        int e = errno;
        snprintf(why, whylen, "%s", strerror(e));
        errno = e;                /* the caller tells a hang-up from a failure by it */
        return CLIENT_TLS_SYSCALL;
    }
    snprintf(why, whylen, "TLS: %s", proto_tls_reason("failed"));
    return CLIENT_TLS_ERROR;
}
