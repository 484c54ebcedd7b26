/* acl.c -- who may subscribe to and publish on which feeds: topic/key patterns from a token or --anonymous-acl. */
#include "broker/acl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/xmalloc.h"

/* Glob over bytes: '*' any run, '?' one byte. Iterative, with one
 * backtrack point, so a hostile pattern or key costs O(p * s) at worst. */
static int glob_match(const char *p, size_t plen, const char *s, size_t slen) {
    size_t pi = 0, si = 0, star = (size_t)-1, mark = 0;
    while (si < slen) {
        if (pi < plen && p[pi] == '*') {  /* before the literal test: a '*' in the key is no excuse */
            star = pi++;
            mark = si;
        } else if (pi < plen && (p[pi] == '?' || p[pi] == s[si])) {
            pi++;
            si++;
        } else if (star != (size_t)-1) {
            pi = star + 1;
            si = ++mark;
        } else {
            return 0;
        }
    }
    while (pi < plen && p[pi] == '*') pi++;
    return pi == plen;
}

static int match_one(const char *pat, const char *topic, size_t topic_len, const char *key, size_t key_len) {
    const char *slash = strchr(pat, '/');
    if (!slash) return 0;
    if (!glob_match(pat, (size_t)(slash - pat), topic, topic_len)) return 0;
    const char *kp = slash + 1;
    if (!key) return strcmp(kp, "*") == 0;
    return glob_match(kp, strlen(kp), key, key_len);
}

static int match_any(char *const *pats, size_t n, const char *topic, size_t topic_len, const char *key,
                     size_t key_len) {
    for (size_t i = 0; i < n; i++)
        if (match_one(pats[i], topic, topic_len, key, key_len)) return 1;
    return 0;
}

int acl_may_subscribe(const acl *a, const char *topic, size_t topic_len, const char *key, size_t key_len) {
    return match_any(a->subscribe, a->subscribe_cnt, topic, topic_len, key, key_len);
}

int acl_may_publish(const acl *a, const char *topic, size_t topic_len, const char *key, size_t key_len) {
    return match_any(a->publish, a->publish_cnt, topic, topic_len, key, key_len);
}

const char *acl_pattern_problem(const char *p) {
    size_t n = strlen(p);
    if (n == 0 || n > ACL_MAX_PATTERN) return "a pattern must be 1..1300 bytes";
    const char *slash = strchr(p, '/');
    if (!slash || slash == p || slash[1] == '\0') return "a pattern is TOPIC/KEY (e.g. orders/*, orders/cust-42)";
    return NULL;
}

static int add(char ***list, size_t *cnt, const char *pat, char *err, size_t errlen) {
    const char *why = acl_pattern_problem(pat);
    if (why) {
        snprintf(err, errlen, "pattern '%.64s': %s", pat, why);
        return -1;
    }
    if (*cnt >= ACL_MAX_PATTERNS) {
        snprintf(err, errlen, "more than %d patterns", ACL_MAX_PATTERNS);
        return -1;
    }
    *list = xreallocarray(*list, *cnt + 1, sizeof(**list));
    (*list)[(*cnt)++] = xstrdup(pat);
    return 0;
}

int acl_add_spec(acl *a, const char *spec, char *err, size_t errlen) {
    if (strncmp(spec, "subscribe:", 10) == 0) return add(&a->subscribe, &a->subscribe_cnt, spec + 10, err, errlen);
    if (strncmp(spec, "publish:", 8) == 0) return add(&a->publish, &a->publish_cnt, spec + 8, err, errlen);
    snprintf(err, errlen, "'%.64s' is not subscribe:TOPIC/KEY or publish:TOPIC/KEY", spec);
    return -1;
}

static int from_list(char ***list, size_t *cnt, json_t *arr, const char *name, char *err, size_t errlen) {
    if (!arr) return 0;
    if (!json_is_array(arr)) {
        snprintf(err, errlen, "token claim subway.%s must be a list of TOPIC/KEY patterns", name);
        return -1;
    }
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v) {
        const char *s = json_string_value(v);
        char why[160];
        if (!s || strlen(s) != json_string_length(v)) {
            snprintf(err, errlen, "token claim subway.%s[%zu] is not a string", name, i);
            return -1;
        }
        if (add(list, cnt, s, why, sizeof(why)) < 0) {
            snprintf(err, errlen, "token claim subway.%s: %s", name, why);
            return -1;
        }
    }
    return 0;
}

int acl_from_claims(acl *a, json_t *claims, char *err, size_t errlen) {
    memset(a, 0, sizeof(*a));
    json_t *sw = json_object_get(claims, "subway");
    if (sw && !json_is_object(sw)) {
        snprintf(err, errlen, "token claim subway must be an object {\"subscribe\": [...], \"publish\": [...]}");
        return -1;
    }
    if (sw && (from_list(&a->subscribe, &a->subscribe_cnt, json_object_get(sw, "subscribe"), "subscribe", err,
                         errlen) < 0 ||
               from_list(&a->publish, &a->publish_cnt, json_object_get(sw, "publish"), "publish", err, errlen) < 0)) {
        acl_clear(a);
        return -1;
    }
    return 0;
}

void acl_clear(acl *a) {
    for (size_t i = 0; i < a->subscribe_cnt; i++) free(a->subscribe[i]);
    for (size_t i = 0; i < a->publish_cnt; i++) free(a->publish[i]);
    free(a->subscribe);
    free(a->publish);
    memset(a, 0, sizeof(*a));
}
