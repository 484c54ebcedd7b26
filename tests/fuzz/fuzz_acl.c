/* fuzz_acl.c -- libFuzzer target: acl_may_subscribe/publish agree with a plain reference matcher (PROTOCOL.md 5.9). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/acl.h"
#include "tests/fuzz/fuzz.h"

/*
 * Input: a flags byte (bit 0: the key is nil, the every-key feed or a
 * PUBLISH without key; bit 1: ask about publish rather than subscribe),
 * then lines: TOPIC, KEY, then up to 16 patterns. The key may hold any
 * byte but '\n' (NUL and non-UTF-8 included); patterns are C strings, as
 * tokens and --anonymous-acl give them. The reference below is the rule
 * as PROTOCOL.md 5.9 words it, written the slow and obvious way.
 */


#define MAX_PATTERNS 16

/* Whether p[0..pl) matches s[0..sl): '*' any run of bytes, '?' one
 * byte, anything else itself. Dynamic programming over prefixes. */
static int ref_glob(const char *p, size_t pl, const char *s, size_t sl) {
    unsigned char *row = calloc(sl + 1, 1), *next = calloc(sl + 1, 1);
    row[0] = 1;                           /* empty pattern, empty string */
    for (size_t i = 0; i < pl; i++) {
        memset(next, 0, sl + 1);
        for (size_t j = 0; j <= sl; j++) {
            if (p[i] == '*')
                next[j] = row[j] || (j > 0 && next[j - 1]);
            else if (j > 0)
                next[j] = row[j - 1] && (p[i] == '?' || p[i] == s[j - 1]);
        }
        unsigned char *t = row;
        row = next;
        next = t;
    }
    int ok = row[sl];
    free(row);
    free(next);
    return ok;
}

static int ref_allows(const char *pat, const char *topic, size_t tl, const char *key, size_t kl) {
    const char *slash = strchr(pat, '/');
    if (!slash) return 0;
    if (!ref_glob(pat, (size_t)(slash - pat), topic, tl)) return 0;
    if (!key) return strcmp(slash + 1, "*") == 0;
    return ref_glob(slash + 1, strlen(slash + 1), key, kl);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int nil_key = data[0] & 1, publish = data[0] & 2;
    const char *p = (const char *)data + 1, *end = (const char *)data + size;
    const char *line[2 + MAX_PATTERNS];
    size_t len[2 + MAX_PATTERNS], n = 0;
    while (p <= end && n < 2 + MAX_PATTERNS) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *e = nl ? nl : end;
        line[n] = p;
        len[n++] = (size_t)(e - p);
        p = e + 1;
    }
    if (n < 2) return 0;

    acl a;
    memset(&a, 0, sizeof(a));
    int want = 0;
    char err[200];
    for (size_t i = 2; i < n; i++) {
        char spec[16 + ACL_MAX_PATTERN + 2];
        if (len[i] > ACL_MAX_PATTERN + 1 || memchr(line[i], '\0', len[i])) continue;
        int w = snprintf(spec, sizeof(spec), "%s%.*s", publish ? "publish:" : "subscribe:", (int)len[i], line[i]);
        if (w < 0 || (size_t)w >= sizeof(spec)) continue;
        if (acl_add_spec(&a, spec, err, sizeof(err)) < 0) {
            CHECK(acl_pattern_problem(strchr(spec, ':') + 1) != NULL);   /* refused for a reason */
            continue;
        }
        const char *pat = publish ? a.publish[a.publish_cnt - 1] : a.subscribe[a.subscribe_cnt - 1];
        want |= ref_allows(pat, line[0], len[0], nil_key ? NULL : line[1], len[1]);
    }
    int got = publish ? acl_may_publish(&a, line[0], len[0], nil_key ? NULL : line[1], len[1])
                      : acl_may_subscribe(&a, line[0], len[0], nil_key ? NULL : line[1], len[1]);
    if (got != want) {
        fprintf(stderr, "fuzz_acl: acl says %d, the reference %d (%s, key %s)\n", got, want,
                publish ? "publish" : "subscribe", nil_key ? "nil" : "given");
        abort();
    }
    acl_clear(&a);
    return 0;
}
