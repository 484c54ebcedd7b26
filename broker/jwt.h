/* jwt.h -- verifies JSON Web Tokens (HS256, RS256, ES256) against the node's keys, with OpenSSL and jansson. */
#ifndef SUBWAY_JWT_H
#define SUBWAY_JWT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define JWT_MAX_TOKEN 12288       /* a HELLO before WELCOME is at most 16 KiB */
#define JWT_MAX_SUB 128           /* the longest "sub" (the client's name in logs and pages) */

typedef struct jwt_keys jwt_keys;

/* Loads HMAC secrets (whole files, HS256) and PEM public keys (RSA of 2048
 * bits or more: RS256; EC P-256: ES256). Any of them may verify a token of
 * its kind, so keys rotate by listing the old and the new. Returns NULL with
 * a message naming the file in err. */
jwt_keys *jwt_keys_load(char *const *hmac_files, size_t hmac_cnt, char *const *pub_files, size_t pub_cnt,
                        char *err, size_t errlen);
void jwt_keys_free(jwt_keys *k);
size_t jwt_keys_count(const jwt_keys *k);

/* What a verified token says. claims is the payload (the caller frees it
 * with json_decref); sub is inside it. exp_ms / nbf_ms are 0 when absent. */
typedef struct jwt_token {
    json_t *claims;
    const char *sub;
    uint64_t exp_ms;
    uint64_t nbf_ms;
} jwt_token;

/* Verifies token[0..len): its form, an algorithm of HS256, RS256 or ES256
 * matched to a key of that kind (never the token's choice of key type),
 * the signature, "sub" (1..JWT_MAX_SUB printable bytes), and exp and nbf
 * against now_ms (nbf with JWT_LEEWAY_MS of clock skew). Returns 0 and
 * fills *out, or -1 with why in err (safe to show the client). */
#define JWT_LEEWAY_MS 5000
int jwt_verify(const jwt_keys *k, const char *token, size_t len, uint64_t now_ms, jwt_token *out, char *err,
               size_t errlen);

#endif
