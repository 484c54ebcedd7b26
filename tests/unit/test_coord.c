/* test_coord.c -- the in-memory coordination backend: counts, first/last, wildcard vs exact keys, demand events, topics in use. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "coord/coord.h"
#include "coord/coord_cmd.h"

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

/* ------------------------------------------------------ demand events */

typedef struct demand_log {
    int n;
    char json[8][2048];
    coord_feed f[8];              /* pointers valid only during the call: not read after */
    char topic[8][64];
} demand_log;

static void on_demand(void *cb_data, const coord_feed *f, const char *json, size_t len) {
    demand_log *d = cb_data;
    assert_true(d->n < 8);
    assert_true(len < sizeof(d->json[0]));
    assert_int_equal(strlen(json), len);
    memcpy(d->json[d->n], json, len + 1);
    d->f[d->n] = *f;
    snprintf(d->topic[d->n], sizeof(d->topic[0]), "%s", f->topic);
    d->n++;
}

/* The JSON with its ts_ms cut off (the local clock). */
static const char *without_ts(char *json) {
    char *ts = strstr(json, ",\"ts_ms\":");
    assert_non_null(ts);
    assert_true(strspn(ts + 9, "0123456789") >= 13);
    *ts = '\0';
    return json;
}

static void test_demand_events(void **state) {
    static const struct {
        const char *topic, *key;  /* key NULL: the every-key feed */
        size_t key_len;
        int subs;                 /* acquires, then as many releases */
        const char *demand, *release;
    } cases[] = {
        {"orders", "cust-1", 6, 1, "{\"event\":\"demand\",\"feed\":\"orders/cust-1\",\"topic\":\"orders\",\"key\":\"cust-1\",\"node\":\"n1\"",
         "{\"event\":\"release\",\"feed\":\"orders/cust-1\",\"topic\":\"orders\",\"key\":\"cust-1\",\"node\":\"n1\""},
        {"orders", NULL, 0, 3, "{\"event\":\"demand\",\"feed\":\"orders/*\",\"topic\":\"orders\",\"key\":null,\"node\":\"n1\"",
         "{\"event\":\"release\",\"feed\":\"orders/*\",\"topic\":\"orders\",\"key\":null,\"node\":\"n1\""},
        {"t", "a\"b\\c\n\x01", 7, 2, "{\"event\":\"demand\",\"feed\":\"t/a\\\"b\\\\c\\u000a\\u0001\",\"topic\":\"t\",\"key\":\"a\\\"b\\\\c\\u000a\\u0001\",\"node\":\"n1\"",
         "{\"event\":\"release\",\"feed\":\"t/a\\\"b\\\\c\\u000a\\u0001\",\"topic\":\"t\",\"key\":\"a\\\"b\\\\c\\u000a\\u0001\",\"node\":\"n1\""},
        {"t", "*", 1, 1, "{\"event\":\"demand\",\"feed\":\"t/*\",\"topic\":\"t\",\"key\":\"*\",\"node\":\"n1\"",
         "{\"event\":\"release\",\"feed\":\"t/*\",\"topic\":\"t\",\"key\":\"*\",\"node\":\"n1\""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        coord *c = coord_memory_new("n1");
        demand_log d = {0};
        coord_events ev = {.demand = on_demand, .cb_data = &d};
        coord_set_events(c, &ev);
        coord_feed f = {cases[i].topic, cases[i].key, cases[i].key_len, cases[i].key == NULL};
        for (int k = 0; k < cases[i].subs; k++) acquire(c, &f);
        assert_int_equal(d.n, 1);             /* 0 -> 1 only */
        assert_string_equal(without_ts(d.json[0]), cases[i].demand);
        assert_string_equal(d.topic[0], cases[i].topic);
        assert_int_equal(d.f[0].wildcard, f.wildcard);
        for (int k = 0; k < cases[i].subs; k++) release(c, &f, NULL);
        assert_int_equal(d.n, 2);             /* -> 0 only */
        assert_string_equal(without_ts(d.json[1]), cases[i].release);
        coord_free(c);
    }
}

/* Any length of feed name: nothing is cut or dropped. */
static void test_demand_long_name(void **state) {
    coord *c = coord_memory_new("n1");
    demand_log d = {0};
    coord_events ev = {.demand = on_demand, .cb_data = &d};
    coord_set_events(c, &ev);
    char key[700];
    memset(key, 'k', sizeof(key));
    coord_feed f = {"orders", key, sizeof(key), 0};
    acquire(c, &f);
    release(c, &f, NULL);
    assert_int_equal(d.n, 2);
    char want[2048];
    snprintf(want, sizeof(want), "{\"event\":\"release\",\"feed\":\"orders/%.*s\",\"topic\":\"orders\",\"key\":\"%.*s\",\"node\":\"n1\"",
             700, key, 700, key);
    assert_string_equal(without_ts(d.json[1]), want);
    assert_int_equal(d.f[1].key_len, 700);
    coord_free(c);
}

/* ------------------------------------------------------- topics in use */

static void used_cb(void *cb_data, int used) {
    int *u = cb_data;
    assert_int_equal(*u, -2);     /* exactly once */
    *u = used;
}

static int in_use(coord *c, const char *topic) {
    int u = -2;
    coord_topic_in_use(c, topic, used_cb, &u);
    assert_int_not_equal(u, -2);  /* memory answers at once */
    return u;
}

static void test_topic_in_use(void **state) {
    coord *c = coord_memory_new("n1");
    coord_feed a = {"search.cats", "tabby", 5, 0}, b = {"search.cats", NULL, 0, 1}, other = {"search.dogs", "x", 1, 0};
    /* step: +1 acquire, -1 release of which feed; then what each topic answers */
    static const struct { int feed, delta, cats, dogs; } steps[] = {
        {0, +1, 1, 0}, {0, +1, 1, 0}, {1, +1, 1, 0}, {0, -1, 1, 0}, {0, -1, 1, 0},
        {2, +1, 1, 1}, {1, -1, 0, 1}, {2, -1, 0, 0}, {1, +1, 1, 0}, {1, -1, 0, 0},
    };
    const coord_feed *feeds[] = {&a, &b, &other};
    assert_int_equal(in_use(c, "search.cats"), 0);
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        if (steps[i].delta > 0)
            acquire(c, feeds[steps[i].feed]);
        else
            release(c, feeds[steps[i].feed], NULL);
        assert_int_equal(in_use(c, "search.cats"), steps[i].cats);
        assert_int_equal(in_use(c, "search.dogs"), steps[i].dogs);
        assert_int_equal(in_use(c, "search"), 0);      /* a prefix is not the topic */
    }
    coord_topic_forget(c, "search.cats");
    assert_int_equal(in_use(c, "search.cats"), 0);
    coord_free(c);
}

/* ---------------------------------------------------------- key names */

static void test_key_builders(void **state) {
    static const struct { int which; const char *a, *b; const char *want; } cases[] = {
        {0, "orders/cust-1", "count", "subway:feed:{orders/cust-1}:count"},
        {0, "orders/*", "relay", "subway:feed:{orders/*}:relay"},
        {1, "node 1", NULL, "subway:node:node 1"},
        {1, "n1", "feeds", "subway:node:n1:feeds"},
        {2, "search.cats", NULL, "subway:topic:{search.cats}:feeds"},
        {3, "n1", "search.cats/tabby", "n1 search.cats/tabby"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        coord_cmd b;
        coord_cmd_init(&b);
        if (cases[i].which == 0) coord_arg_feed_key(&b, cases[i].a, strlen(cases[i].a), cases[i].b);
        if (cases[i].which == 1) coord_arg_node_key(&b, cases[i].a, cases[i].b);
        if (cases[i].which == 2) coord_arg_topic_key(&b, cases[i].a, strlen(cases[i].a));
        if (cases[i].which == 3) coord_arg_topic_member(&b, cases[i].a, cases[i].b, strlen(cases[i].b));
        char want[128];
        int n = snprintf(want, sizeof(want), "$%zu\r\n%s\r\n", strlen(cases[i].want), cases[i].want);
        assert_int_equal(b.argc, 1);
        assert_int_equal(b.len - COORD_CMD_HEAD_ROOM, (size_t)n);
        assert_memory_equal(b.p + COORD_CMD_HEAD_ROOM, want, (size_t)n);
        free(b.p);
    }
    /* a long argument grows the buffer */
    coord_cmd b;
    coord_cmd_init(&b);
    char big[5000];
    memset(big, 'x', sizeof(big));
    coord_arg(&b, big, sizeof(big));
    coord_arg_num(&b, -42);
    assert_int_equal(b.argc, 2);
    assert_memory_equal(b.p + b.len - 9, "$3\r\n-42\r\n", 9);
    free(b.p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_and_last),
        cmocka_unit_test(test_release_unknown_is_error),
        cmocka_unit_test(test_single_node_owns_everything),
        cmocka_unit_test(test_feed_names),
        cmocka_unit_test(test_wildcard_distinct_from_star_key),
        cmocka_unit_test(test_binary_keys_and_growth),
        cmocka_unit_test(test_demand_events),
        cmocka_unit_test(test_demand_long_name),
        cmocka_unit_test(test_topic_in_use),
        cmocka_unit_test(test_key_builders),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
