/* test_coord.c -- the in-memory coordination backend: counts, first/last, wildcard vs exact keys. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "coord/coord.h"

typedef struct result {
    int calls;
    int own;
    long count;
    coord_status status;
    char err[128];
} result;

static void record_cb(void *cb_data, const coord_result *res) {
    result *r = cb_data;
    r->calls++;
    r->status = res->status;
    r->own = res->own;
    r->count = res->count;
    snprintf(r->err, sizeof(r->err), "%s", res->errstr ? res->errstr : "");
}

static coord_status acquire(coord *c, const coord_feed *f) {
    result r = {0};
    coord_acquire(c, f, record_cb, &r);
    assert_int_equal(r.calls, 1);
    return r.status;
}

static coord_status release(coord *c, const coord_feed *f, result *out) {
    result r = {0};
    coord_release(c, f, 0, record_cb, &r);
    assert_int_equal(r.calls, 1);
    if (out) *out = r;
    return r.status;
}

static void test_first_and_last(void **state) {
    coord *c = coord_memory_new("n1");
    coord_feed f = {"orders", "cust-1", 6, 0};
    assert_int_equal(acquire(c, &f), COORD_FIRST);
    assert_int_equal(acquire(c, &f), COORD_OK);
    assert_int_equal(coord_memory_count(c, &f), 2);
    assert_int_equal(release(c, &f, NULL), COORD_OK);
    assert_int_equal(release(c, &f, NULL), COORD_LAST);
    assert_int_equal(coord_memory_count(c, &f), 0);
    /* back from zero: first again (the subscribe/unsubscribe/subscribe race) */
    assert_int_equal(acquire(c, &f), COORD_FIRST);
    coord_free(c);
}

static void test_single_node_owns_everything(void **state) {
    coord *c = coord_memory_new("n1");
    coord_feed f = {"t", "k", 1, 0};
    result r = {0};
    coord_acquire(c, &f, record_cb, &r);
    assert_true(r.own);
    assert_int_equal(r.count, 1);
    memset(&r, 0, sizeof(r));
    coord_claim(c, &f, 1, record_cb, &r);
    assert_int_equal(r.calls, 1);
    assert_true(r.own);
    memset(&r, 0, sizeof(r));
    coord_disown(c, &f, record_cb, &r);    /* count 1: stays owned */
    assert_true(r.own);
    release(c, &f, NULL);
    memset(&r, 0, sizeof(r));
    coord_disown(c, &f, record_cb, &r);    /* count 0: given up */
    assert_int_equal(r.calls, 1);
    assert_false(r.own);
    assert_true(coord_up(c));
    coord_free(c);
}

static void test_feed_names(void **state) {
    char buf[64];
    coord_feed exact = {"orders", "cust-1", 6, 0}, wild = {"orders", NULL, 0, 1};
    assert_int_equal(coord_feed_name(&exact, buf), 13);
    assert_string_equal(buf, "orders/cust-1");
    assert_int_equal(coord_feed_name_len(&exact), 13);
    assert_int_equal(coord_feed_name(&wild, buf), 8);
    assert_string_equal(buf, "orders/*");
}

static void test_release_unknown_is_error(void **state) {
    coord *c = coord_memory_new("n1");
    coord_feed f = {"orders", "x", 1, 0};
    result r;
    assert_int_equal(release(c, &f, &r), COORD_ERROR);
    assert_string_equal(r.err, "release of a feed with no subscriptions");
    coord_free(c);
}

static void test_wildcard_distinct_from_star_key(void **state) {
    coord *c = coord_memory_new("n1");
    coord_feed wild = {"t", NULL, 0, 1};
    coord_feed star = {"t", "*", 1, 0};
    coord_feed other_topic = {"t2", NULL, 0, 1};
    assert_int_equal(acquire(c, &wild), COORD_FIRST);
    assert_int_equal(acquire(c, &star), COORD_FIRST);
    assert_int_equal(acquire(c, &other_topic), COORD_FIRST);
    assert_int_equal(coord_memory_count(c, &wild), 1);
    coord_free(c);
}

static void test_binary_keys_and_growth(void **state) {
    coord *c = coord_memory_new("n1");
    char key[4];
    for (int i = 0; i < 1000; i++) {
        memcpy(key, &i, sizeof(i));   /* keys with NUL bytes */
        coord_feed f = {"t", key, sizeof(key), 0};
        assert_int_equal(acquire(c, &f), COORD_FIRST);
    }
    for (int i = 0; i < 1000; i++) {
        memcpy(key, &i, sizeof(i));
        coord_feed f = {"t", key, sizeof(key), 0};
        assert_int_equal(coord_memory_count(c, &f), 1);
        assert_int_equal(release(c, &f, NULL), COORD_LAST);
    }
    coord_free(c);
    coord_free(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_and_last),
        cmocka_unit_test(test_release_unknown_is_error),
        cmocka_unit_test(test_single_node_owns_everything),
        cmocka_unit_test(test_feed_names),
        cmocka_unit_test(test_wildcard_distinct_from_star_key),
        cmocka_unit_test(test_binary_keys_and_growth),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
