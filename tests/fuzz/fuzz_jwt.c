/* fuzz_jwt.c -- libFuzzer target: jwt_verify() and the claims after it, with an HS256, an RSA and an EC test key. */
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/acl.h"
#include "broker/jwt.h"
#include "broker/keyfile.h"
#include "tests/fuzz/fuzz.h"

/*
 * Input, by its first byte:
 *   even  the rest is a token, verified as it is (the corpus holds real
 *         tokens signed with tests/fuzz/keys/, so mutations start from
 *         tokens that verify);
 *   odd   the rest is HEADER-JSON '\n' PAYLOAD-JSON: the harness encodes
 *         and signs them with the HS256 key, so the fuzzer reaches the
 *         claims (exp, nbf, sub, the subway ACL) past the signature.
 * Checked: what verifies is sound (sub 1..128 bytes of no C0/C1 control
 * characters, exp in the future, HS256 in the header when the harness
 * signed it), a signature changed in one character never verifies, and
 * nothing crashes or leaks.
 */


#ifndef FUZZ_KEYS_DIR
#define FUZZ_KEYS_DIR "tests/fuzz/keys"
#endif
#define NOW_MS 1767225600000ull   /* 2026-01-01: the seeds' tokens expire in 2100 */

static jwt_keys *keys;
static char *secret;
static size_t secret_len;

static void init(void) {
    char *hmac[] = {FUZZ_KEYS_DIR "/hmac.key"};
    char *pub[] = {FUZZ_KEYS_DIR "/rsa.pub", FUZZ_KEYS_DIR "/ec.pub"};
    char err[400];
    keys = jwt_keys_load(hmac, 1, pub, 2, err, sizeof(err));
    if (!keys) {
        fprintf(stderr, "fuzz_jwt: %s\n", err);
        abort();
    }
    secret = keyfile_read(hmac[0], 1, &secret_len, err, sizeof(err));
    CHECK(secret);
}

static size_t b64url(const unsigned char *in, size_t n, char *out) {
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0) | (i + 2 < n ? in[i + 2] : 0);
        out[o++] = abc[v >> 18 & 63];
        out[o++] = abc[v >> 12 & 63];
        if (i + 1 < n) out[o++] = abc[v >> 6 & 63];
        if (i + 2 < n) out[o++] = abc[v & 63];
    }
    return o;
}

/* Checks what a verified token promises, then runs its ACL. */
static void check_verified(jwt_token *t) {
    CHECK(t->claims && t->sub);
    size_t n = strlen(t->sub);
    CHECK(n >= 1 && n <= JWT_MAX_SUB);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)t->sub[i];
        CHECK(ch >= 0x20 && ch != 0x7f);
        CHECK(!(ch == 0xc2 && i + 1 < n && (unsigned char)t->sub[i + 1] < 0xa0));   /* no C1 control */
    }
    CHECK(t->exp_ms == 0 || t->exp_ms > NOW_MS);
    CHECK(t->nbf_ms <= NOW_MS + JWT_LEEWAY_MS);
    json_t *exp = json_object_get(t->claims, "exp");
    CHECK(!exp || t->exp_ms != 0);   /* a token that names an expiry has one */
    acl a;
    char err[300];
    if (acl_from_claims(&a, t->claims, err, sizeof(err)) == 0) {
        acl_may_subscribe(&a, "orders", 6, "cust-42", 7);
        acl_may_subscribe(&a, "orders", 6, NULL, 0);
        acl_may_publish(&a, "orders", 6, "", 0);
        acl_clear(&a);
    }
    json_decref(t->claims);
}

static void verify_raw(const char *tok, size_t len) {
    jwt_token t;
    char err[300];
    if (jwt_verify(keys, tok, len, NOW_MS, &t, err, sizeof(err)) == 0)
        check_verified(&t);
    else
        CHECK(t.claims == NULL && err[0] != '\0');
}

static void verify_signed(const char *in, size_t size) {
    const char *nl = memchr(in, '\n', size);
    if (!nl) return;
    size_t hlen = (size_t)(nl - in), plen = size - hlen - 1;
    char *tok = malloc((hlen + plen + 2) / 3 * 4 + 8 + 64);
    size_t n = b64url((const unsigned char *)in, hlen, tok);
    tok[n++] = '.';
    n += b64url((const unsigned char *)nl + 1, plen, tok + n);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    CHECK(HMAC(EVP_sha256(), secret, (int)secret_len, (const unsigned char *)tok, n, md, &md_len));
    size_t sig_at = n + 1;
    tok[n++] = '.';
    n += b64url(md, md_len, tok + n);

    jwt_token t;
    char err[300];
    if (jwt_verify(keys, tok, n, NOW_MS, &t, err, sizeof(err)) == 0) {
        /* Only an HS256 header may verify with the HMAC signature. */
        json_t *h = json_loadb(in, hlen, JSON_REJECT_DUPLICATES, NULL);
        const char *alg = h ? json_string_value(json_object_get(h, "alg")) : NULL;
        CHECK(alg && strcmp(alg, "HS256") == 0);
        CHECK(!json_object_get(h, "crit"));
        json_decref(h);
        check_verified(&t);
        /* One signature character changed: never valid. */
        size_t at = sig_at + (size_t)in[0] % (n - sig_at);
        char was = tok[at];
        tok[at] = was == 'A' ? 'B' : 'A';
        CHECK(jwt_verify(keys, tok, n, NOW_MS, &t, err, sizeof(err)) < 0);
        tok[at] = was;
    }
    free(tok);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!keys) init();
    if (size < 1) return 0;
    if (data[0] % 2 == 0)
        verify_raw((const char *)data + 1, size - 1);
    else
        verify_signed((const char *)data + 1, size - 1);
    return 0;
}
