/* test_coord_redis.c -- the Redis coordination backend against a real redis-server: EVALSHA, NOSCRIPT, topics in use, demand events. */
/*
 * Starts its own redis-server (no persistence) on a free loopback port in a
 * temp dir and stops it at the end, as hiredis's test.sh does; or uses
 * SUBWAY_TEST_REDIS=HOST:PORT (it must be a server it may FLUSHALL).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "coord/coord.h"

static struct event_base *base;
static char redis_host[64] = "127.0.0.1";
static int redis_port;
static pid_t redis_pid;
static char tmpdir[64];

/* ------------------------------------------------------------- helpers */

static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof(a);
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || getsockname(fd, (struct sockaddr *)&a, &l) < 0) return -1;
    close(fd);
    return ntohs(a.sin_port);
}

static redisContext *blocking(void) {
    redisContext *rc = redisConnect(redis_host, redis_port);
    if (!rc || rc->err) {
        if (rc) redisFree(rc);
        return NULL;
    }
    return rc;
}

/* One command on a fresh blocking connection; returns the reply's integer,
 * or its string parsed, -1 on error. */
static long long rcall(const char *fmt, ...) {
    redisContext *rc = blocking();
    assert_non_null(rc);
    va_list ap;
    va_start(ap, fmt);
    redisReply *rep = redisvCommand(rc, fmt, ap);
    va_end(ap);
    long long v = -1;
    if (rep && rep->type == REDIS_REPLY_INTEGER) v = rep->integer;
    if (rep && rep->type == REDIS_REPLY_STRING) v = atoll(rep->str);
    if (rep && rep->type == REDIS_REPLY_STATUS) v = 0;
    if (rep) freeReplyObject(rep);
    redisFree(rc);
    return v;
}

/* A field of INFO (section), as a number: "calls=N" of a commandstats line,
 * or the value itself. -1 when absent. */
static long long info_field(const char *section, const char *field) {
    redisContext *rc = blocking();
    assert_non_null(rc);
    redisReply *rep = redisCommand(rc, "INFO %s", section);
    assert_non_null(rep);
    long long v = -1;
    char pat[128];
    snprintf(pat, sizeof(pat), "\n%s:", field);
    const char *p = strstr(rep->str, pat);
    if (p) {
        p += strlen(pat);
        if (strncmp(p, "calls=", 6) == 0) p += 6;
        v = atoll(p);
    }
    freeReplyObject(rep);
    redisFree(rc);
    return v;
}

static int redis_start(void) {
    const char *addr = getenv("SUBWAY_TEST_REDIS");
    if (addr) {
        const char *colon = strrchr(addr, ':');
        if (!colon) return -1;
        snprintf(redis_host, sizeof(redis_host), "%.*s", (int)(colon - addr), addr);
        redis_port = atoi(colon + 1);
        return 0;
    }
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/subway-coord-XXXXXX");
    if (!mkdtemp(tmpdir) || (redis_port = free_port()) < 0) return -1;
    char port[16];
    snprintf(port, sizeof(port), "%d", redis_port);
    redis_pid = fork();
    if (redis_pid == 0) {
        if (!freopen("/dev/null", "w", stdout)) _exit(127);
        execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly",
               "no", "--dir", tmpdir, (char *)NULL);
        fprintf(stderr, "test_coord_redis: cannot run redis-server (deploy/install-deps.sh installs it)\n");
        _exit(127);
    }
    for (int i = 0; i < 500; i++) {
        redisContext *rc = blocking();
        if (rc) {
            redisFree(rc);
            return 0;
        }
        int st;
        if (waitpid(redis_pid, &st, WNOHANG) == redis_pid) return -1;
        usleep(10000);
    }
    return -1;
}

static void redis_stop(void) {
    if (redis_pid > 0) {
        kill(redis_pid, SIGTERM);
        waitpid(redis_pid, NULL, 0);
    }
    if (tmpdir[0]) rmdir(tmpdir);
}

static void loop_once_ms(int ms) {
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    event_base_loopexit(base, &tv);
    event_base_loop(base, 0);
}

/* Runs the loop until *flag is set or ms pass; returns *flag. */
static int run_until(const int *flag, int ms) {
    for (int t = 0; !*flag && t < ms; t += 10) loop_once_ms(10);
    return *flag;
}

/* ------------------------------------------------------------- a node */

typedef struct node {
    coord *c;
    int up;
    int demands;
    char json[4][4096];
    size_t len[4];
    char topic[4][64];            /* the event's feed, copied: valid only during the call */
    char key[4][1024];
    size_t key_len[4];
} node;

static void on_state(void *cb_data, int up) {
    ((node *)cb_data)->up = up;
}

static void on_demand(void *cb_data, const coord_feed *f, const char *json, size_t len) {
    node *n = cb_data;
    assert_true(n->demands < 4);
    assert_true(len < sizeof(n->json[0]));
    memcpy(n->json[n->demands], json, len);
    n->json[n->demands][len] = '\0';
    n->len[n->demands] = len;
    snprintf(n->topic[n->demands], sizeof(n->topic[0]), "%s", f->topic);
    assert_true(f->key_len <= sizeof(n->key[0]));
    memcpy(n->key[n->demands], f->key, f->key_len);
    n->key_len[n->demands] = f->key_len;
    n->demands++;
}

static void node_start(node *n, const char *id, uint64_t ttl_ms) {
    memset(n, 0, sizeof(*n));
    char addr[96], err[256];
    snprintf(addr, sizeof(addr), "%s:%d", redis_host, redis_port);
    coord_redis_opts o = {.addr = addr, .node_id = id, .node_addr = "127.0.0.1:1", .node_admin = "off",
                          .lease_ms = 3000, .node_ttl_ms = ttl_ms, .reap_interval_ms = 100};
    n->c = coord_redis_new(base, &o, err, sizeof(err));
    assert_non_null(n->c);
    coord_events ev = {.state = on_state, .demand = on_demand, .cb_data = n};
    coord_set_events(n->c, &ev);
    assert_true(run_until(&n->up, 5000));
}

typedef struct result {
    int done;
    coord_status status;
    long count;
    char err[256];
} result;

static void record_cb(void *cb_data, const coord_result *res) {
    result *r = cb_data;
    assert_int_equal(r->done, 0);
    r->done = 1;
    r->status = res->status;
    r->count = res->count;
    snprintf(r->err, sizeof(r->err), "%s", res->errstr ? res->errstr : "");
}

static coord_status acquire(node *n, const coord_feed *f) {
    result r = {0};
    coord_acquire(n->c, f, record_cb, &r);
    assert_true(run_until(&r.done, 5000));
    assert_string_equal(r.err, "");
    return r.status;
}

static coord_status release(node *n, const coord_feed *f, long local_after) {
    result r = {0};
    coord_release(n->c, f, local_after, record_cb, &r);
    assert_true(run_until(&r.done, 5000));
    assert_string_equal(r.err, "");
    return r.status;
}

typedef struct used {
    int done, used;
} used;

static void used_cb(void *cb_data, int u) {
    used *x = cb_data;
    assert_int_equal(x->done, 0);
    x->done = 1;
    x->used = u;
}

static int in_use(node *n, const char *topic) {
    used x = {0};
    coord_topic_in_use(n->c, topic, used_cb, &x);
    assert_true(run_until(&x.done, 5000));
    return x.used;
}

static int setup(void **state) {
    rcall("FLUSHALL");
    rcall("SCRIPT FLUSH");
    rcall("CONFIG RESETSTAT");
    return 0;
}

/* --------------------------------------------------------------- tests */

static void test_evalsha_and_noscript(void **state) {
    node n;
    node_start(&n, "n1", 600000);   /* no heartbeat (an EVALSHA too) while calls are counted */
    coord_feed a = {"orders", "cust-1", 6, 0}, b = {"orders", "cust-2", 6, 0};
    assert_int_equal(info_field("commandstats", "cmdstat_script|load"), 11);  /* once per script */
    long long sha0 = info_field("commandstats", "cmdstat_evalsha");   /* -1: none yet */
    if (sha0 < 0) sha0 = 0;
    long long in0 = info_field("stats", "total_net_input_bytes");
    long long in1 = info_field("stats", "total_net_input_bytes");   /* what one INFO adds */
    assert_int_equal(acquire(&n, &a), COORD_FIRST);
    long long in2 = info_field("stats", "total_net_input_bytes");
    print_message("bytes to Redis for one SUBSCRIBE's acquire: %lld\n", in2 - in1 - (in1 - in0));
    assert_true(in2 - in1 - (in1 - in0) < 600);
    assert_int_equal(info_field("commandstats", "cmdstat_evalsha") - sha0, 1);
    assert_int_equal(info_field("commandstats", "cmdstat_eval"), -1);
    /* The server loses its scripts: the call goes again with EVAL, the
     * scripts are reloaded, and the next call is EVALSHA again. */
    rcall("SCRIPT FLUSH");
    assert_int_equal(acquire(&n, &b), COORD_FIRST);
    assert_int_equal(info_field("commandstats", "cmdstat_eval"), 1);
    assert_int_equal(release(&n, &b, 0), COORD_LAST);
    assert_int_equal(info_field("commandstats", "cmdstat_eval"), 1);
    assert_int_equal(info_field("commandstats", "cmdstat_evalsha") - sha0, 3);  /* a, b refused, b's release */
    assert_int_equal(rcall("GET subway:feed:{orders/cust-2}:count"), -1);
    assert_int_equal(rcall("GET subway:feed:{orders/cust-1}:count"), 1);
    assert_true(n.up);
    coord_free(n.c);
}

static void test_topic_in_use(void **state) {
    node n1, n2;
    node_start(&n1, "n1", 5000);
    node_start(&n2, "n2", 5000);
    coord_feed a = {"search.cats", "tabby", 5, 0}, w = {"search.cats", NULL, 0, 1};
    assert_int_equal(in_use(&n1, "search.cats"), 0);
    acquire(&n1, &a);
    acquire(&n1, &a);
    acquire(&n2, &w);
    assert_int_equal(in_use(&n2, "search.cats"), 1);
    assert_int_equal(in_use(&n1, "search.dogs"), 0);
    assert_int_equal(rcall("SCARD subway:topic:{search.cats}:feeds"), 2);  /* n1 search.cats/tabby, n2 search.cats/(every key) */
    release(&n1, &a, 1);
    assert_int_equal(in_use(&n1, "search.cats"), 1);
    release(&n1, &a, 0);
    assert_int_equal(in_use(&n1, "search.cats"), 1);          /* n2 still holds the every-key feed */
    release(&n2, &w, 0);
    assert_int_equal(in_use(&n1, "search.cats"), 0);
    assert_int_equal(rcall("EXISTS subway:topic:{search.cats}:feeds"), 0);  /* nothing left behind */
    coord_topic_forget(n1.c, "search.cats");
    coord_free(n2.c);
    /* Store unreachable: unknown, at once. */
    redisContext *rc = blocking();
    redisReply *rep = redisCommand(rc, "CLIENT KILL TYPE normal");
    freeReplyObject(rep);
    redisFree(rc);
    for (int t = 0; n1.up && t < 5000; t += 10) loop_once_ms(10);
    assert_false(n1.up);
    used x = {0};
    coord_topic_in_use(n1.c, "search.cats", used_cb, &x);
    assert_int_equal(x.done, 1);
    assert_int_equal(x.used, -1);
    coord_free(n1.c);
}

/* Reads one message of the subscription on rc (blocking). */
static void read_message(redisContext *rc, char *out, size_t outlen) {
    redisReply *rep;
    assert_int_equal(redisGetReply(rc, (void **)&rep), REDIS_OK);
    assert_int_equal(rep->type, REDIS_REPLY_ARRAY);
    assert_true((size_t)rep->element[2]->len < outlen);
    memcpy(out, rep->element[2]->str, (size_t)rep->element[2]->len + 1);
    freeReplyObject(rep);
}

/* A feed name over 600 bytes: each transition reaches exactly one node's
 * demand event, with exactly the bytes subway:demand carried; a reap's goes
 * to the reaper. */
static void test_demand_events_long_name(void **state) {
    redisContext *listener = blocking();
    redisReply *rep = redisCommand(listener, "SUBSCRIBE subway:demand");
    freeReplyObject(rep);
    node n1, n2;
    node_start(&n1, "n1", 5000);
    node_start(&n2, "n2", 600);
    char key[700];
    memset(key, 'k', sizeof(key));
    key[0] = '"';                 /* escaped in the JSON */
    coord_feed f = {"orders", key, sizeof(key), 0};
    char msg[4096];

    assert_int_equal(acquire(&n1, &f), COORD_FIRST);
    assert_int_equal(acquire(&n2, &f), COORD_OK);
    assert_int_equal(n1.demands, 1);
    assert_int_equal(n2.demands, 0);
    read_message(listener, msg, sizeof(msg));
    assert_string_equal(msg, n1.json[0]);
    assert_non_null(strstr(msg, "\"event\":\"demand\""));
    assert_non_null(strstr(msg, "\"node\":\"n1\""));
    assert_true(n1.len[0] > 1400);
    assert_string_equal(n1.topic[0], "orders");
    assert_int_equal(n1.key_len[0], sizeof(key));
    assert_memory_equal(n1.key[0], key, sizeof(key));

    assert_int_equal(release(&n1, &f, 0), COORD_OK);   /* n2 still holds it */
    assert_int_equal(n1.demands, 1);
    /* n2 dies without releasing (its liveness key goes); n1 reaps it. */
    coord_free(n2.c);
    for (int t = 0; n1.demands < 2 && t < 5000; t += 10) loop_once_ms(10);
    assert_int_equal(n1.demands, 2);
    assert_int_equal(n2.demands, 0);
    read_message(listener, msg, sizeof(msg));
    assert_string_equal(msg, n1.json[1]);
    assert_non_null(strstr(msg, "\"event\":\"release\""));
    assert_non_null(strstr(msg, "\"node\":\"n2\""));   /* whose subscriptions went */
    assert_int_equal(n1.key_len[1], sizeof(key));
    assert_int_equal(in_use(&n1, "orders"), 0);

    /* And a plain acquire/release pair on one node. */
    assert_int_equal(acquire(&n1, &f), COORD_FIRST);
    assert_int_equal(release(&n1, &f, 0), COORD_LAST);
    assert_int_equal(n1.demands, 4);
    read_message(listener, msg, sizeof(msg));
    assert_string_equal(msg, n1.json[2]);
    read_message(listener, msg, sizeof(msg));
    assert_string_equal(msg, n1.json[3]);
    assert_non_null(strstr(msg, "\"event\":\"release\",") || strstr(msg, "\"event\":\"release\"}"));
    redisFree(listener);
    coord_free(n1.c);
}

static void test_ipv6_address(void **state) {
    char err[256];
    coord_redis_opts o = {.addr = "[::1]:6379", .node_id = "n1", .node_addr = "x", .node_admin = "off",
                          .lease_ms = 1000, .node_ttl_ms = 1000, .reap_interval_ms = 1000};
    coord *c = coord_redis_new(base, &o, err, sizeof(err));
    assert_non_null(c);
    coord_free(c);
    o.addr = "::1:6379";
    assert_null(coord_redis_new(base, &o, err, sizeof(err)));
    assert_string_equal(err, "--redis: '::1:6379': put an IPv6 address in brackets, [IPV6]:PORT");
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    if (redis_start() < 0) {
        fprintf(stderr, "test_coord_redis: no redis-server to test against\n");
        redis_stop();
        return 1;
    }
    base = event_base_new();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_evalsha_and_noscript, setup),
        cmocka_unit_test_setup(test_topic_in_use, setup),
        cmocka_unit_test_setup(test_demand_events_long_name, setup),
        cmocka_unit_test(test_ipv6_address),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    event_base_free(base);
    redis_stop();
    return rc;
}
