/* test_acl.c -- TOPIC/KEY patterns: globbing, the every-key feed, odd keys and pattern forms (PROTOCOL.md 5.9). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "broker/acl.h"

typedef struct {
    const char *pattern;
    const char *topic;
    const char *key;              /* NULL: nil, the every-key feed */
    size_t key_len;               /* 0: strlen(key) */
    int allowed;
} acl_case;

static const acl_case cases[] = {
    {"orders/cust-42", "orders", "cust-42", 0, 1},
    {"orders/cust-42", "orders", "cust-420", 0, 0},
    {"orders/cust-42", "orders", NULL, 0, 0},
    {"orders/cust-*", "orders", "cust-", 0, 1},
    {"orders/cust-*", "orders", NULL, 0, 0},   /* every key of a topic needs a key part of exactly * */
    {"orders/cust-*", "orders", "*", 0, 0},
    {"orders/**", "orders", NULL, 0, 0},
    {"orders/*", "orders", NULL, 0, 1},
    {"orders/*", "orders", "", 0, 1},
    {"orders/*", "orders2", "k", 0, 0},
    {"orders*/*", "orders2", "k", 0, 1},
    {"search.?/k", "search.a", "k", 0, 1},
    {"search.?/k", "search.ab", "k", 0, 0},
    {"search.?/k", "searchxa", "k", 0, 0},
    /* Keys may hold '/', NUL and bytes that are not UTF-8. */
    {"orders/a/*", "orders", "a/b/c", 0, 1},
    {"orders/a/*", "orders", "b/a/c", 0, 0},
    {"orders/k?x", "orders", "k\0x", 3, 1},
    {"orders/k*", "orders", "k\0\xff\xfe", 4, 1},
    {"orders/k", "orders", "k\0", 2, 0},
    /* '*' and '?' in the pattern are wildcards even where the key has the
     * same byte (fuzz_acl found "*b" refusing "*xb"). */
    {"orders/*b", "orders", "*xb", 0, 1},
    {"orders/a*b", "orders", "a*xb", 0, 1},
    {"orders/?b", "orders", "?b", 0, 1},
    {"*/*", "a*", "*x", 0, 1},
    /* Worst cases stay linear-ish and right. */
    {"t/*a*a*a*a*a*a*b", "t", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 0, 0},
    {"t/*a*a*a*a*a*a*b", "t", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab", 0, 1},
};

static void test_patterns(void **state) {
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const acl_case *c = &cases[i];
        acl a;
        char err[200], spec[300];
        memset(&a, 0, sizeof(a));
        snprintf(spec, sizeof(spec), "subscribe:%s", c->pattern);
        assert_int_equal(acl_add_spec(&a, spec, err, sizeof(err)), 0);
        snprintf(spec, sizeof(spec), "publish:%s", c->pattern);
        assert_int_equal(acl_add_spec(&a, spec, err, sizeof(err)), 0);
        size_t kl = c->key ? (c->key_len ? c->key_len : strlen(c->key)) : 0;
        if (acl_may_subscribe(&a, c->topic, strlen(c->topic), c->key, kl) != c->allowed ||
            acl_may_publish(&a, c->topic, strlen(c->topic), c->key, kl) != c->allowed)
            fail_msg("case %zu: pattern %s, topic %s: expected %s", i, c->pattern, c->topic,
                     c->allowed ? "allowed" : "refused");
        acl_clear(&a);
    }
}

static void test_pattern_forms(void **state) {
    assert_null(acl_pattern_problem("a/b"));
    assert_non_null(acl_pattern_problem("ab"));
    assert_non_null(acl_pattern_problem("/b"));
    assert_non_null(acl_pattern_problem("a/"));
    assert_non_null(acl_pattern_problem(""));
    acl a;
    char err[200];
    memset(&a, 0, sizeof(a));
    assert_int_equal(acl_add_spec(&a, "read:a/b", err, sizeof(err)), -1);
    assert_string_equal(err, "'read:a/b' is not subscribe:TOPIC/KEY or publish:TOPIC/KEY");
    acl_clear(&a);
}

static void test_empty_acl_allows_nothing(void **state) {
    acl a;
    memset(&a, 0, sizeof(a));
    assert_int_equal(acl_may_subscribe(&a, "t", 1, NULL, 0), 0);
    assert_int_equal(acl_may_publish(&a, "t", 1, "k", 1), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_patterns),
        cmocka_unit_test(test_pattern_forms),
        cmocka_unit_test(test_empty_acl_allows_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
