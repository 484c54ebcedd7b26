/* main.c -- the subway node: options, start-up in dependency order, the loop, orderly shutdown. */
#include <event2/event.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "broker/admin.h"
#include "broker/auth.h"
#include "broker/catchup.h"
#include "broker/cluster.h"
#include "broker/fanout.h"
#include "broker/health.h"
#include "broker/broker.h"
#include "broker/config.h"
#include "broker/dev.h"
#include "broker/feed.h"
#include "broker/log.h"
#include "broker/names.h"
#include "broker/partition.h"
#include "broker/producer.h"
#include "broker/server.h"
#include "broker/tls.h"
#include "broker/upstream.h"
#include "broker/xmalloc.h"

/* Coordination events go to the cluster roles. */
static void ev_notice(void *cb_data, const coord_feed *f, coord_notice what, const char *node, long nodes) {
    cluster_on_notice(((broker *)cb_data)->feeds, f, what, node, nodes);
}

static void ev_relay(void *cb_data, const coord_feed *f, const char *data, size_t len) {
    cluster_on_relay(((broker *)cb_data)->feeds, f, data, len);
}

static void ev_state(void *cb_data, int up) {
    cluster_on_state(((broker *)cb_data)->feeds, up);
}

/* --demand-topic: the same JSON the coordination published, keyed by feed. */
static void ev_demand(void *cb_data, const coord_feed *f, const char *json, size_t len) {
    broker *b = cb_data;
    if (!b->cfg->demand_topic) return;
    size_t nlen = coord_feed_name_len(f);
    char *name = xmalloc(nlen + 1);
    coord_feed_name(f, name);
    producer_send(b->prod, b->cfg->demand_topic, name, nlen, json, len);
    free(name);
}

/* Kafka's answers go to the feed side. */
static void up_topic(void *cb_data, const char *topic_name, int32_t partition_cnt, proto_err code,
                     const char *errstr) {
    feed_on_topic_resolved(((broker *)cb_data)->feeds, topic_name, partition_cnt, code, errstr);
}

static void up_start(void *cb_data, const char *topic_name, int32_t partition, int64_t offset, const char *errstr) {
    feed_on_partition_start(((broker *)cb_data)->feeds, topic_name, partition, offset, errstr);
}

static void up_out_of_range(void *cb_data, const char *topic_name, int32_t partition, int64_t from) {
    part_on_out_of_range(((broker *)cb_data)->feeds, topic_name, partition, from);
}

static void up_reset(void *cb_data, const char *topic_name, int32_t partition, uint32_t tag, int64_t from,
                     int64_t offset, int64_t lost) {
    part_on_reset(((broker *)cb_data)->feeds, topic_name, partition, tag, from, offset, lost);
}

static void up_probe(void *cb_data, const char *errstr) {
    health_on_probe(cb_data, errstr);
}

static void up_record(void *cb_data, const upstream_record *r) {
    fanout_record(((broker *)cb_data)->feeds, r->topic, r->partition, r->offset, r->ts_ms, r->key, r->key_len,
                  r->value, r->value_len, r->headers, r->header_cnt);
}

static void up_batch_end(void *cb_data) {
    cluster_on_batch_end(((broker *)cb_data)->feeds);
}

/* The catch-up consumer's go to the catch-ups. */
static void hist_record(void *cb_data, const upstream_record *r) {
    catchup_on_record(((broker *)cb_data)->feeds, r);
}

static void hist_batch_end(void *cb_data) {
    catchup_on_batch_end(((broker *)cb_data)->feeds);
}

static void hist_eof(void *cb_data, const char *topic_name, int32_t partition, int64_t offset) {
    catchup_on_eof(((broker *)cb_data)->feeds, topic_name, partition, offset);
}

static void hist_seek(void *cb_data, const char *topic_name, int32_t partition, uint32_t tag, int64_t offset,
                      const char *errstr) {
    catchup_on_seek(((broker *)cb_data)->feeds, topic_name, partition, tag, offset, errstr);
}

static void hist_out_of_range(void *cb_data, const char *topic_name, int32_t partition, int64_t from) {
    catchup_on_out_of_range(((broker *)cb_data)->feeds, topic_name, partition, from);
}

static void hist_reset(void *cb_data, const char *topic_name, int32_t partition, uint32_t tag, int64_t from,
                       int64_t offset, int64_t lost) {
    catchup_on_reset(((broker *)cb_data)->feeds, topic_name, partition, tag, from, offset, lost);
}

static void node_stats(void *data, long *conns, long *feeds) {
    broker *b = data;
    *conns = (long)b->nconns;
    *feeds = (long)feed_table_count(b->feeds);
}

/* librdkafka's destroy could hang for good after a topic it knew was
 * deleted (issue 13: librdkafka 2.0.2 leaked an unassigned partition of a
 * deleted topic; upstream.c now frees what it leaked). This stays as the
 * bound on any other wait in it. Everything the cluster relies on
 * (releases, the node key's DEL) is done by then, so a node that is still
 * in its Kafka shutdown after this long leaves without it. The bound holds
 * for the exit after the cleanup too (its atexit handlers, and under the
 * sanitizers the leak check): once seen stuck there, under load, past the
 * test harness's 10 s. */
#define SHUTDOWN_BOUND_MS 5000

static atomic_int cleanup_done;

static void *shutdown_watchdog(void *arg) {
    struct timespec ts = {SHUTDOWN_BOUND_MS / 1000, (SHUTDOWN_BOUND_MS % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    if (!atomic_load(&cleanup_done))
        log_warn("Kafka client shutdown still running after %d ms; exiting without it", SHUTDOWN_BOUND_MS);
    else
        log_warn("exit still running %d ms after the shutdown began; leaving now", SHUTDOWN_BOUND_MS);
    _exit(0);
    return NULL;
}

static void broker_cleanup(broker *b) {
    /* Connections first (they release their subscriptions), then the
     * feeds this node owns are handed over, then the coordination (it sends
     * those releases and hand-overs on its way out), then feeds
     * (they unassign), then the Kafka handles they used. */
    server_stop(b);
    admin_stop(b);
    auth_stop(b);
    tls_stop(b);
    health_stop(b);
    if (b->feeds && b->coord) cluster_resign_all(b->feeds);
    coord_free(b->coord);
    b->coord = NULL;
    feed_table_free(b->feeds);
    upstream_free(b->history);
    upstream_free(b->up);
    producer_free(b->prod);
    dev_kafka_free(b->dev);
    free(b->kafka_bootstrap);
    if (b->base) event_base_free(b->base);
}

int main(int argc, char **argv) {
    config cfg;
    char err[512];
    if (config_defaults(&cfg) < 0) {
        fprintf(stderr, "subway: out of memory\n");
        return 1;
    }
    int rc = config_parse_args(&cfg, argc, argv, err, sizeof(err));
    if (rc == 1) {
        config_free(&cfg);
        return 0;
    }
    if (rc < 0 || config_validate(&cfg, err, sizeof(err)) < 0) {
        fprintf(stderr, "subway: %s\n", err);
        config_free(&cfg);
        return 2;
    }
    log_level = log_level_parse(cfg.log_level);
    signal(SIGPIPE, SIG_IGN);

    broker b;
    memset(&b, 0, sizeof(b));
    b.cfg = &cfg;
    b.start_ms = broker_now_ms();
    b.kafka_state = -1;
    if (cfg.node_id) {
        if (!names_node_id_ok(cfg.node_id)) {
            fprintf(stderr, "subway: --node-id must be 1..100 characters of A-Z a-z 0-9 . _ -\n");
            config_free(&cfg);
            return 2;
        }
        snprintf(b.node_id, sizeof(b.node_id), "%s", cfg.node_id);
    } else {
        char host[64] = "node";
        gethostname(host, sizeof(host) - 1);
        host[sizeof(host) - 1] = '\0';
        for (char *p = host; *p; p++)
            if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-", *p)) *p = '_';
        snprintf(b.node_id, sizeof(b.node_id), "%s-%d", host, (int)getpid());
    }
    log_set_node(b.node_id);

    rc = 1;
    if (cfg.dev) {
        if (!(b.dev = dev_kafka_new((int)cfg.dev_partitions, err, sizeof(err)))) goto fail;
        b.kafka_bootstrap = xstrdup(dev_kafka_bootstrap(b.dev));
        log_info("dev: embedded Kafka bootstrap %s", b.kafka_bootstrap);
        log_info("dev: produce with: kcat -P -b %s -t demo -K: -X partitioner=murmur2_random", b.kafka_bootstrap);
    } else {
        b.kafka_bootstrap = xstrdup(cfg.kafka);
    }
    if (!(b.base = event_base_new()) || event_base_priority_init(b.base, BROKER_PRIOS) < 0) {
        snprintf(err, sizeof(err), "cannot create the event loop");
        goto fail;
    }
    if (!(b.feeds = feed_table_new(&b))) {
        snprintf(err, sizeof(err), "out of memory");
        goto fail;
    }
    if (config_cluster(&cfg)) {
        char admin[300];
        snprintf(admin, sizeof(admin), "%s", cfg.admin ? cfg.admin : "off");
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        coord_redis_opts ro = {
            .addr = cfg.redis, .sentinels = cfg.redis_sentinel, .master = cfg.redis_master,
            .password = cfg.redis_password, .node_id = b.node_id,
            .node_addr = cfg.listen, .node_admin = admin,
            .start_ms = (uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_nsec / 1000000,
            .stats = node_stats, .stats_data = &b,
            .lease_ms = cfg.lease_ms, .node_ttl_ms = cfg.node_ttl_ms, .reap_interval_ms = cfg.reap_interval_ms,
            .timeout_ms = cfg.redis_timeout_ms,
        };
        b.coord = coord_redis_new(b.base, &ro, err, sizeof(err));
        if (!b.coord) goto fail;
        log_info("coordination: Redis %s%s%s (lease %llu ms, node TTL %llu ms)",
                 cfg.redis ? "at " : "master ", cfg.redis ? cfg.redis : cfg.redis_master,
                 cfg.redis ? "" : " through Sentinel",
                 (unsigned long long)cfg.lease_ms, (unsigned long long)cfg.node_ttl_ms);
    } else if (!(b.coord = coord_memory_new(b.node_id))) {
        snprintf(err, sizeof(err), "out of memory");
        goto fail;
    }
    coord_events ev = {.notice = ev_notice, .relay = ev_relay, .state = ev_state, .demand = ev_demand, .cb_data = &b};
    coord_set_events(b.coord, &ev);
    upstream_events uev = {.topic = up_topic, .start = up_start, .out_of_range = up_out_of_range,
                           .reset = up_reset, .record = up_record, .batch_end = up_batch_end,
                           .probe = up_probe, .cb_data = &b};
    if (!(b.up = upstream_new(&b, UPSTREAM_LIVE, &uev, err, sizeof(err)))) goto fail;
    upstream_events hev = {.out_of_range = hist_out_of_range, .reset = hist_reset, .record = hist_record,
                           .batch_end = hist_batch_end, .eof = hist_eof, .seek = hist_seek, .cb_data = &b};
    if (!(b.history = upstream_new(&b, UPSTREAM_HISTORY, &hev, err, sizeof(err)))) goto fail;
    if (!(b.prod = producer_new(&b, err, sizeof(err)))) goto fail;
    if (auth_start(&b, err, sizeof(err)) < 0) goto fail;
    if (tls_start(&b, err, sizeof(err)) < 0) goto fail;
    if (server_start(&b, err, sizeof(err)) < 0) goto fail;
    if (admin_start(&b, err, sizeof(err)) < 0) goto fail;
    if (health_start(&b) < 0) {
        snprintf(err, sizeof(err), "cannot start the health probes");
        goto fail;
    }
    log_info("node %s ready (subway %s, Kafka %s)", b.node_id, SUBWAY_VERSION, b.kafka_bootstrap);

    event_base_dispatch(b.base);
    log_info("stopped");
    pthread_t wd;
    if (pthread_create(&wd, NULL, shutdown_watchdog, NULL) == 0) pthread_detach(wd);
    rc = 0;
    goto out;
fail:
    fprintf(stderr, "subway: %s\n", err);
out:
    broker_cleanup(&b);
    atomic_store(&cleanup_done, 1);
    config_free(&cfg);
    return rc;
}
