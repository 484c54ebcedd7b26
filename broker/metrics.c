/* metrics.c -- GET /metrics: the node's counters, gauges and histograms in Prometheus's text exposition format. */
#include "broker/metrics.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <stdlib.h>
#include <string.h>

#include "broker/catchup.h"
#include "broker/health.h"
#include "broker/histogram.h"
#include "broker/table.h"
#include "broker/xmalloc.h"

/* "# HELP" and "# TYPE" of a metric family. */
static void family(struct evbuffer *out, const char *name, const char *type, const char *help) {
    evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A family of one unlabelled sample. */
static void single(struct evbuffer *out, const char *name, const char *type, const char *help, uint64_t v) {
    family(out, name, type, help);
    evbuffer_add_printf(out, "%s %llu\n", name, (unsigned long long)v);
}

static void histogram_add(struct evbuffer *out, const char *name, const char *help, const histogram *h) {
    family(out, name, "histogram", help);
    uint64_t cum = 0;
    for (size_t i = 0; i < HISTOGRAM_NBOUNDS; i++) {
        cum += h->buckets[i];
        evbuffer_add_printf(out, "%s_bucket{le=\"%g\"} %llu\n", name, histogram_bounds[i], (unsigned long long)cum);
    }
    evbuffer_add_printf(out, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n", name,
                        (unsigned long long)h->count, name, h->sum, name, (unsigned long long)h->count);
}

/* A label value: backslash, quote and newline escaped; bytes outside
 * printable ASCII as '?', so a binary key still makes valid UTF-8. */
static void label_value(struct evbuffer *out, const char *s, size_t len) {
    for (size_t i = 0; i < len; i++) {
        char ch = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
        if (ch == '\\' || ch == '"') evbuffer_add(out, "\\", 1);
        evbuffer_add(out, &ch, 1);
    }
}

static int by_subscribers(const void *a, const void *b) {
    size_t x = (*(feed *const *)a)->nsubs, y = (*(feed *const *)b)->nsubs;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* --metrics-per-feed N: the N feeds with the most subscribers here, each
 * with its own series (labels topic and key, "*" for every key). */
static void per_feed(struct evbuffer *out, feed_table *ft, size_t cap) {
    if (!cap) return;
    feed **all = xreallocarray(NULL, ft->nfeeds + 1, sizeof(*all));
    size_t n = 0;
    TABLE_FOR_EACH_TOPIC(ft, t)
        for (feed *f = t->feeds; f && n < ft->nfeeds; f = f->tnext) all[n++] = f;
    qsort(all, n, sizeof(*all), by_subscribers);
    if (n > cap) n = cap;
    static const char *const names[] = {"subway_feed_subscribers", "subway_feed_records_total"};
    static const char *const types[] = {"gauge", "counter"};
    static const char *const helps[] = {"Subscriptions of the feed on this node (--metrics-per-feed).",
                                        "Records appended to the feed on this node (--metrics-per-feed)."};
    for (int m = 0; m < 2; m++) {
        family(out, names[m], types[m], helps[m]);
        for (size_t i = 0; i < n; i++) {
            const feed *f = all[i];
            evbuffer_add_printf(out, "%s{topic=\"", names[m]);
            label_value(out, f->t->name, strlen(f->t->name));
            evbuffer_add_printf(out, "\",key=\"");
            if (f->wildcard)
                evbuffer_add_printf(out, "*");
            else
                label_value(out, f->key, f->key_len);
            evbuffer_add_printf(out, "\"} %llu\n", (unsigned long long)(m == 0 ? f->nsubs : f->records));
        }
    }
    free(all);
}

void metrics_write(broker *b, struct evbuffer *out) {
    const broker_counters *k = &b->ctr;
    family(out, "subway_build_info", "gauge", "Always 1; the node's version and id as labels.");
    evbuffer_add_printf(out, "subway_build_info{version=\"%s\",node_id=\"", SUBWAY_VERSION);
    label_value(out, b->node_id, strlen(b->node_id));
    evbuffer_add_printf(out, "\"} 1\n");
    family(out, "subway_uptime_seconds", "gauge", "Seconds since the node started.");
    evbuffer_add_printf(out, "subway_uptime_seconds %.3f\n", (double)(broker_now_ms() - b->start_ms) / 1e3);
    single(out, "subway_draining", "gauge", "1 while the node drains after SIGTERM.", (uint64_t)b->draining);
    single(out, "subway_connections", "gauge", "Open client connections.", b->nconns);
    single(out, "subway_subscriptions", "gauge", "Subscriptions, in any state.", b->feeds->nsubs);

    uint64_t roles[3] = {0, 0, 0};
    TABLE_FOR_EACH_TOPIC(b->feeds, t)
        for (feed *f = t->feeds; f; f = f->tnext) roles[f->role]++;
    family(out, "subway_feeds", "gauge", "Feeds on this node by role.");
    static const feed_role order[] = {ROLE_OWNER, ROLE_RELAY, ROLE_PENDING};
    for (size_t i = 0; i < 3; i++)
        evbuffer_add_printf(out, "subway_feeds{role=\"%s\"} %llu\n", feed_role_name(order[i]),
                            (unsigned long long)roles[order[i]]);

    single(out, "subway_records_in_total", "counter", "Records taken from Kafka.", k->records_in);
    single(out, "subway_bytes_in_total", "counter", "Key and value bytes of the records taken from Kafka.",
           k->bytes_in);
    single(out, "subway_records_out_total", "counter", "MESSAGE frames queued to clients.", k->records_out);
    single(out, "subway_dropped_total", "counter", "MESSAGE frames dropped for slow clients.", k->dropped);
    single(out, "subway_lost_total", "counter", "Records Kafka lost before the node read them.", k->lost);
    single(out, "subway_connections_accepted_total", "counter", "Client connections accepted.", k->conns_accepted);
    single(out, "subway_connections_refused_total", "counter", "Client connections refused over --max-conns.",
           k->conns_refused);
    family(out, "subway_connections_closed_total", "counter", "Clients the node closed, by reason.");
    evbuffer_add_printf(out, "subway_connections_closed_total{reason=\"slow_consumer\"} %llu\n"
                        "subway_connections_closed_total{reason=\"heartbeat\"} %llu\n"
                        "subway_connections_closed_total{reason=\"protocol_error\"} %llu\n"
                        "subway_connections_closed_total{reason=\"hello_timeout\"} %llu\n"
                        "subway_connections_closed_total{reason=\"unauthorized\"} %llu\n",
                        (unsigned long long)k->slow_closed, (unsigned long long)k->heartbeat_closed,
                        (unsigned long long)k->protocol_errors, (unsigned long long)k->hello_closed,
                        (unsigned long long)k->auth_refused);
    single(out, "subway_tls_handshakes_total", "counter", "TLS handshakes completed on --tls-listen.",
           k->tls_handshakes);
    single(out, "subway_tls_handshake_failures_total", "counter",
           "TLS connections closed for a failed handshake (bad bytes, unknown CA, no client certificate).",
           k->tls_handshake_failed);
    single(out, "subway_forbidden_total", "counter", "SUBSCRIBEs and PUBLISHes refused as not allowed (FORBIDDEN).",
           k->forbidden);
    single(out, "subway_input_paused_total", "counter",
           "Times a client's input waited: its answers unread, or its PUBLISHes over their limits.", k->input_paused);

    catchup_stats cs;
    catchup_stats_get(b->feeds, &cs);
    single(out, "subway_catchup_readers", "gauge", "Catch-up partitions being read or waiting to be.", cs.readers);
    single(out, "subway_catchup_readers_active", "gauge", "Catch-up readers assigned in the catch-up consumer.",
           cs.active);
    single(out, "subway_catchup_readers_queued", "gauge", "Catch-up readers waiting their turn.", cs.queued);
    single(out, "subway_catchup_reading", "gauge", "Subscriptions' partitions on catch-up readers.", cs.reading);
    single(out, "subway_catchup_parked", "gauge", "Catch-up partitions waiting for their connection to drain.",
           cs.parked);
    single(out, "subway_catchup_resolving", "gauge", "Catch-up partitions whose start offset is being looked up.",
           cs.resolving);
    single(out, "subway_catchup_records_total", "counter", "MESSAGE frames of catch-ups queued to clients.",
           k->catchup_records);
    single(out, "subway_catchup_missing_total", "counter", "Records catch-ups asked for that Kafka no longer held.",
           k->catchup_missing);
    single(out, "subway_catchup_yields_total", "counter", "Catch-up readers sent to the back of the queue.",
           k->catchup_yields);

    if (config_cluster(b->cfg))
        single(out, "subway_redis_up", "gauge", "1 while the coordination Redis is connected.",
               (uint64_t)(coord_up(b->coord) != 0));
    single(out, "subway_kafka_up", "gauge", "1 while Kafka answered the node's last health probe.",
           (uint64_t)(health_kafka_up(b) != 0));

    histogram_add(out, "subway_record_age_seconds",
                  "Kafka timestamp to the record's fan-out to a feed with subscribers on this node.",
                  &node_hist.record_age);
    histogram_add(out, "subway_subscribe_seconds", "SUBSCRIBE received to SUBSCRIBED queued.",
                  &node_hist.subscribe);
    histogram_add(out, "subway_redis_rtt_seconds", "Redis script call sent to its reply.", &node_hist.redis_rtt);
    histogram_add(out, "subway_relay_lag_seconds", "Kafka timestamp to a relayed record appended on this relay.",
                  &node_hist.relay_lag);
    per_feed(out, b->feeds, (size_t)b->cfg->metrics_per_feed);
}

void metrics_cb(struct evhttp_request *req, void *arg) {
    struct evbuffer *out = evbuffer_new();
    if (!out) {
        evhttp_send_error(req, HTTP_INTERNAL, "out of memory");
        return;
    }
    metrics_write(arg, out);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
    evhttp_send_reply(req, HTTP_OK, "OK", out);
    evbuffer_free(out);
}
