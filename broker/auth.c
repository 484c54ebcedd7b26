/* auth.c -- the node's access policy: --auth modes, tokens at HELLO and AUTH, and what each connection may do. */
#include "broker/auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "broker/acl.h"
#include "broker/conn.h"
#include "broker/jwt.h"
#include "broker/log.h"
#include "broker/sub.h"
#include "broker/xmalloc.h"

/* What a connection that showed a token may do. */
struct conn_auth {
    char *who;                    /* the token's sub */
    uint64_t exp_ms;
    acl acl;
};

uint64_t auth_wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int auth_start(broker *b, char *err, size_t errlen) {
    const config *cfg = b->cfg;
    b->auth_mode = strcmp(cfg->auth, "required") == 0   ? AUTH_REQUIRED
                   : strcmp(cfg->auth, "optional") == 0 ? AUTH_OPTIONAL
                                                        : AUTH_OFF;
    size_t nkeys = cfg->auth_hmac_key_cnt + cfg->auth_public_key_cnt;
    if (b->auth_mode == AUTH_OFF) {
        if (nkeys || cfg->anonymous_acl_cnt) {
            snprintf(err, errlen, "--auth off ignores keys and --anonymous-acl: give --auth optional or required");
            return -1;
        }
        return 0;
    }
    if (nkeys == 0) {
        snprintf(err, errlen, "--auth %s needs a key: --auth-hmac-key-file FILE or --auth-public-key-file FILE",
                 cfg->auth);
        return -1;
    }
    if (!(b->keys = jwt_keys_load(cfg->auth_hmac_keys, cfg->auth_hmac_key_cnt, cfg->auth_public_keys,
                                  cfg->auth_public_key_cnt, err, errlen)))
        return -1;
    b->anon_acl = xcalloc(1, sizeof(*b->anon_acl));
    for (size_t i = 0; i < cfg->anonymous_acl_cnt; i++) {
        char why[200];
        if (acl_add_spec(b->anon_acl, cfg->anonymous_acl[i], why, sizeof(why)) < 0) {
            snprintf(err, errlen, "--anonymous-acl: %s", why);
            return -1;
        }
    }
    if (b->auth_mode == AUTH_REQUIRED && cfg->anonymous_acl_cnt)
        log_warn("--anonymous-acl has no effect with --auth required: every client needs a token");
    log_info("auth %s: %zu key%s, anonymous clients may subscribe to %zu and publish to %zu pattern%s", cfg->auth,
             nkeys, nkeys == 1 ? "" : "s", b->auth_mode == AUTH_OPTIONAL ? b->anon_acl->subscribe_cnt : 0,
             b->auth_mode == AUTH_OPTIONAL ? b->anon_acl->publish_cnt : 0,
             b->anon_acl->publish_cnt == 1 ? "" : "s");
    return 0;
}

void auth_stop(broker *b) {
    jwt_keys_free(b->keys);
    b->keys = NULL;
    if (b->anon_acl) acl_clear(b->anon_acl);
    free(b->anon_acl);
    b->anon_acl = NULL;
}

void auth_conn_free(conn *c) {
    if (!c->auth) return;
    acl_clear(&c->auth->acl);
    free(c->auth->who);
    free(c->auth);
    c->auth = NULL;
}

/* Verifies token and builds what it allows. Returns NULL with why in err. */
static conn_auth *verify(broker *b, proto_bytes token, char *err, size_t errlen) {
    jwt_token t;
    if (jwt_verify(b->keys, token.ptr, token.len, auth_wall_ms(), &t, err, errlen) < 0) return NULL;
    conn_auth *a = xcalloc(1, sizeof(*a));
    if (acl_from_claims(&a->acl, t.claims, err, errlen) < 0) {
        json_decref(t.claims);
        free(a);
        return NULL;
    }
    a->who = xstrdup(t.sub);
    a->exp_ms = t.exp_ms;
    json_decref(t.claims);
    return a;
}

int auth_hello(conn *c, proto_bytes token, char *err, size_t errlen) {
    broker *b = c->b;
    if (b->auth_mode == AUTH_OFF) return 0;  /* a token is not looked at: everyone may do everything */
    if (!token.ptr) {
        if (b->auth_mode == AUTH_OPTIONAL) return 0;
        snprintf(err, errlen, "this node needs a token: HELLO version 3 with a token (--auth required)");
        return -1;
    }
    conn_auth *a = verify(b, token, err, errlen);
    if (!a) return -1;
    c->auth = a;
    return 0;
}

int auth_refresh(conn *c, proto_bytes token, proto_err *code, char *err, size_t errlen) {
    broker *b = c->b;
    *code = PROTO_E_UNAUTHORIZED;
    if (b->auth_mode == AUTH_OFF) {
        *code = PROTO_E_INVALID_ARG;
        snprintf(err, errlen, "this node does not check tokens (--auth off)");
        return -1;
    }
    conn_auth *a = verify(b, token, err, errlen);
    if (!a) return -1;
    *code = PROTO_E_FORBIDDEN;
    if (c->auth && strcmp(c->auth->who, a->who) != 0) {
        snprintf(err, errlen, "the new token names %.64s, not %.64s: a connection keeps its client", a->who,
                 c->auth->who);
        goto refuse;
    }
    for (size_t i = 0; i < c->nsubs; i++) {
        const char *tn, *key;
        size_t key_len;
        sub_feed_name(c->subs[i], &tn, &key, &key_len);
        if (!acl_may_subscribe(&a->acl, tn, strlen(tn), key, key_len)) {
            snprintf(err, errlen, "the new token does not allow the subscription to %s/%.*s this connection holds", tn,
                     key ? (int)(key_len > 64 ? 64 : key_len) : 1, key ? key : "*");
            goto refuse;
        }
    }
    auth_conn_free(c);
    c->auth = a;
    return 0;
refuse:
    acl_clear(&a->acl);
    free(a->who);
    free(a);
    return -1;
}

/* NULL: everything is allowed (--auth off). */
static const acl *conn_acl(const conn *c) {
    if (c->b->auth_mode == AUTH_OFF) return NULL;
    return c->auth ? &c->auth->acl : c->b->anon_acl;
}

int auth_may_subscribe(const conn *c, const char *topic_name, size_t topic_len, const char *key, size_t key_len) {
    const acl *a = conn_acl(c);
    return !a || acl_may_subscribe(a, topic_name, topic_len, key, key_len);
}

int auth_may_publish(const conn *c, const char *topic_name, size_t topic_len, const char *key, size_t key_len) {
    const acl *a = conn_acl(c);
    return !a || acl_may_publish(a, topic_name, topic_len, key, key_len);
}

const char *auth_who(const conn *c) {
    return c->auth ? c->auth->who : "anonymous";
}

uint64_t auth_expires_ms(const conn *c) {
    return c->auth ? c->auth->exp_ms : 0;
}
