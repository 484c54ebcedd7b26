/* jwt.c -- verifies JSON Web Tokens (HS256, RS256, ES256) against the node's keys, with OpenSSL and jansson. */
#include "broker/jwt.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/keyfile.h"
#include "broker/xmalloc.h"

enum jwt_alg { ALG_HS256, ALG_RS256, ALG_ES256 };

typedef struct jwt_key {
    enum jwt_alg alg;             /* the one algorithm this key verifies */
    char *secret;                 /* ALG_HS256 */
    size_t secret_len;
    EVP_PKEY *pkey;               /* ALG_RS256, ALG_ES256 */
} jwt_key;

struct jwt_keys {
    jwt_key *v;
    size_t n;
};

static int failf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int failf(char *err, size_t errlen, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* ----------------------------------------------------------------- keys */

#define HMAC_MIN_SECRET 32        /* bytes: RFC 7518 asks for at least the hash's size */

static int load_public(jwt_key *k, const char *path, char *err, size_t errlen) {
    size_t len;
    char why[300];
    char *pem = keyfile_read(path, 0, &len, why, sizeof(why));
    if (!pem) return failf(err, errlen, "%s", why);
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    k->pkey = bio ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    free(pem);
    if (!k->pkey) return failf(err, errlen, "%s is not a PEM public key (-----BEGIN PUBLIC KEY-----)", path);
    int id = EVP_PKEY_get_base_id(k->pkey);
    if (id == EVP_PKEY_RSA) {
        if (EVP_PKEY_get_bits(k->pkey) < 2048)
            return failf(err, errlen, "%s: an RSA key of %d bits; RS256 needs 2048 or more", path,
                         EVP_PKEY_get_bits(k->pkey));
        k->alg = ALG_RS256;
        return 0;
    }
    char group[64] = "";
    size_t glen = 0;
    if (id == EVP_PKEY_EC && EVP_PKEY_get_group_name(k->pkey, group, sizeof(group), &glen) == 1 &&
        strcmp(group, "prime256v1") == 0) {
        k->alg = ALG_ES256;
        return 0;
    }
    return failf(err, errlen, "%s: not an RSA or EC P-256 public key (RS256, ES256)", path);
}

void jwt_keys_free(jwt_keys *k) {
    if (!k) return;
    for (size_t i = 0; i < k->n; i++) {
        if (k->v[i].secret) OPENSSL_cleanse(k->v[i].secret, k->v[i].secret_len);
        free(k->v[i].secret);
        EVP_PKEY_free(k->v[i].pkey);
    }
    free(k->v);
    free(k);
}

jwt_keys *jwt_keys_load(char *const *hmac_files, size_t hmac_cnt, char *const *pub_files, size_t pub_cnt,
                        char *err, size_t errlen) {
    jwt_keys *k = xcalloc(1, sizeof(*k));
    k->v = xcalloc(hmac_cnt + pub_cnt + 1, sizeof(*k->v));
    char why[300];
    for (size_t i = 0; i < hmac_cnt; i++, k->n++) {
        jwt_key *key = &k->v[k->n];
        key->alg = ALG_HS256;
        /* A secret is the file's bytes, trailing newline dropped. */
        key->secret = keyfile_read(hmac_files[i], 1, &key->secret_len, why, sizeof(why));
        if (!key->secret) {
            failf(err, errlen, "--auth-hmac-key-file: %s", why);
            goto fail;
        }
        if (key->secret_len < HMAC_MIN_SECRET) {
            failf(err, errlen, "--auth-hmac-key-file %s: %zu bytes; an HS256 secret needs at least %d", hmac_files[i],
                  key->secret_len, HMAC_MIN_SECRET);
            k->n++;
            goto fail;
        }
    }
    for (size_t i = 0; i < pub_cnt; i++, k->n++) {
        if (load_public(&k->v[k->n], pub_files[i], why, sizeof(why)) < 0) {
            failf(err, errlen, "--auth-public-key-file: %s", why);
            k->n++;
            goto fail;
        }
    }
    return k;
fail:
    jwt_keys_free(k);
    return NULL;
}

size_t jwt_keys_count(const jwt_keys *k) {
    return k ? k->n : 0;
}

/* --------------------------------------------------------------- parsing */

static int b64url_val(unsigned char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '-') return 62;
    if (c == '_') return 63;
    return -1;
}

/* Decodes unpadded base64url s[0..len) into a malloc'd buffer (NUL added). */
static unsigned char *b64url_decode(const char *s, size_t len, size_t *out_len) {
    if (len % 4 == 1) return NULL;
    unsigned char *out = xmalloc(len / 4 * 3 + 3 + 1);
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64url_val((unsigned char)s[i]);
        if (v < 0) {
            free(out);
            return NULL;
        }
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    if (acc & ((1u << bits) - 1)) { /* leftover bits must be zero: one encoding per value */
        free(out);
        return NULL;
    }
    out[o] = '\0';
    *out_len = o;
    return out;
}

static json_t *json_part(const char *s, size_t len, const char *what, char *err, size_t errlen) {
    size_t n;
    unsigned char *raw = b64url_decode(s, len, &n);
    if (!raw) {
        failf(err, errlen, "token %s is not base64url", what);
        return NULL;
    }
    json_error_t je;
    json_t *j = json_loadb((const char *)raw, n, JSON_REJECT_DUPLICATES, &je);
    free(raw);
    if (!j || !json_is_object(j)) {
        json_decref(j);
        failf(err, errlen, "token %s is not a JSON object", what);
        return NULL;
    }
    return j;
}

/* A NumericDate claim: 1 with *ms set when present, 0 when absent, -1
 * when not a number of seconds in 0..1e13. Present is not the same as
 * nonzero: "exp": 0 expired in 1970, it does not mean "never". */
static int numeric_date_ms(json_t *claims, const char *name, uint64_t *ms) {
    json_t *v = json_object_get(claims, name);
    *ms = 0;
    if (!v) return 0;
    if (!json_is_number(v)) return -1;
    double s = json_number_value(v);
    if (!(s >= 0 && s <= 1e13)) return -1;
    *ms = (uint64_t)(s * 1000.0);
    return 1;
}

/* ------------------------------------------------------------- verifying */

static int verify_with(const jwt_key *k, const char *signed_part, size_t signed_len, const unsigned char *sig,
                       size_t sig_len) {
    if (k->alg == ALG_HS256) {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int md_len = 0;
        if (!HMAC(EVP_sha256(), k->secret, (int)k->secret_len, (const unsigned char *)signed_part, signed_len, md,
                  &md_len))
            return 0;
        return sig_len == md_len && CRYPTO_memcmp(md, sig, md_len) == 0;
    }
    unsigned char *der = NULL;
    const unsigned char *vsig = sig;
    size_t vlen = sig_len;
    if (k->alg == ALG_ES256) {
        /* JWS carries r || s; OpenSSL verifies DER. */
        if (sig_len != 64) return 0;
        ECDSA_SIG *es = ECDSA_SIG_new();
        BIGNUM *r = BN_bin2bn(sig, 32, NULL), *s = BN_bin2bn(sig + 32, 32, NULL);
        if (!es || !r || !s || !ECDSA_SIG_set0(es, r, s)) {
            BN_free(r);
            BN_free(s);
            ECDSA_SIG_free(es);
            return 0;
        }
        int n = i2d_ECDSA_SIG(es, &der);
        ECDSA_SIG_free(es);
        if (n <= 0) return 0;
        vsig = der;
        vlen = (size_t)n;
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx && EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, k->pkey) == 1 &&
             EVP_DigestVerify(ctx, vsig, vlen, (const unsigned char *)signed_part, signed_len) == 1;
    EVP_MD_CTX_free(ctx);
    OPENSSL_free(der);
    return ok;
}

int jwt_verify(const jwt_keys *k, const char *token, size_t len, uint64_t now_ms, jwt_token *out, char *err,
               size_t errlen) {
    memset(out, 0, sizeof(*out));
    if (len == 0) return failf(err, errlen, "empty token");
    if (len > JWT_MAX_TOKEN) return failf(err, errlen, "token longer than %d bytes", JWT_MAX_TOKEN);
    const char *dot1 = memchr(token, '.', len);
    const char *dot2 = dot1 ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token)) : NULL;
    if (!dot2 || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token)))
        return failf(err, errlen, "not a JWT (three base64url parts joined by dots)");

    json_t *header = json_part(token, (size_t)(dot1 - token), "header", err, errlen);
    if (!header) return -1;
    const char *alg = json_string_value(json_object_get(header, "alg"));
    enum jwt_alg want;
    int known = 1;
    if (alg && strcmp(alg, "HS256") == 0)
        want = ALG_HS256;
    else if (alg && strcmp(alg, "RS256") == 0)
        want = ALG_RS256;
    else if (alg && strcmp(alg, "ES256") == 0)
        want = ALG_ES256;
    else
        known = 0, want = ALG_HS256;
    int crit = json_object_get(header, "crit") != NULL;
    json_decref(header);
    if (!known) return failf(err, errlen, "token algorithm must be HS256, RS256 or ES256");
    if (crit) return failf(err, errlen, "token header has \"crit\" extensions this node does not know");

    size_t sig_len;
    unsigned char *sig = b64url_decode(dot2 + 1, len - (size_t)(dot2 + 1 - token), &sig_len);
    if (!sig) return failf(err, errlen, "token signature is not base64url");
    int verified = 0, any = 0;
    for (size_t i = 0; k && i < k->n && !verified; i++) {
        if (k->v[i].alg != want) continue;   /* an HS256 token is never checked against a public key */
        any = 1;
        verified = verify_with(&k->v[i], token, (size_t)(dot2 - token), sig, sig_len);
    }
    free(sig);
    if (!any) return failf(err, errlen, "this node has no key for %s tokens", alg);
    if (!verified) return failf(err, errlen, "token signature does not verify with any of the node's keys");

    json_t *claims = json_part(dot1 + 1, (size_t)(dot2 - dot1 - 1), "payload", err, errlen);
    if (!claims) return -1;
    uint64_t exp, nbf;
    int has_exp = numeric_date_ms(claims, "exp", &exp), has_nbf = numeric_date_ms(claims, "nbf", &nbf);
    const char *sub = json_string_value(json_object_get(claims, "sub"));
    size_t sub_len = sub ? strlen(sub) : 0;
    int printable = sub_len > 0 && sub_len <= JWT_MAX_SUB;
    /* No C0 controls, DEL, or C1 controls (U+0080..U+009F: 0xC2 0x80..0x9F,
     * jansson having checked the UTF-8): sub goes to logs and pages. */
    for (size_t i = 0; printable && i < sub_len; i++) {
        unsigned char ch = (unsigned char)sub[i];
        printable = ch >= 0x20 && ch != 0x7f && !(ch == 0xc2 && i + 1 < sub_len && (unsigned char)sub[i + 1] <= 0x9f);
    }
    if (has_exp < 0 || has_nbf < 0) {
        failf(err, errlen, "token exp and nbf must be NumericDates (seconds since 1970)");
    } else if (!printable) {
        failf(err, errlen, "token needs a \"sub\" of 1..%d printable characters", JWT_MAX_SUB);
    } else if (has_exp && exp <= now_ms) {
        failf(err, errlen, "token expired %llu s ago", (unsigned long long)((now_ms - exp) / 1000));
    } else if (has_nbf && nbf > now_ms + JWT_LEEWAY_MS) {
        failf(err, errlen, "token not valid for %llu s more (nbf)", (unsigned long long)((nbf - now_ms) / 1000));
    } else {
        out->claims = claims;
        out->sub = sub;
        out->exp_ms = exp;        /* > 0 when present: it is in the future */
        out->nbf_ms = nbf;
        return 0;
    }
    json_decref(claims);
    return -1;
}
