/* scenario_amplification.c -- exact-key feeds on a 12-partition topic: bytes the node reads vs the topic's bytes. */
#include "tests/bench/bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AMP_TOPIC "bench-amp"
#define AMP_KEYS_PER_PART 2       /* 24 distinct keys, two in each partition */
#define AMP_MAX_PARTS 64

typedef struct amp_case {
    const char *name;
    int feeds;                    /* exact-key feeds, one per partition from 0; 0: the every-key feed */
} amp_case;

typedef struct amp_result {
    uint64_t records, topic_bytes, read_bytes, read_records;
    uint64_t received, expected;
    int partitions_read;
} amp_result;

/* Produces `records` records round-robin over the keys and waits until
 * Kafka has them all. Counts the topic's key + value bytes into r. */
static int amp_produce(const kafka_svc *k, char (*keys)[32], int nkeys, uint64_t records, amp_result *r) {
    char err[512];
    kprod *kp = kprod_new(k->bootstrap, AMP_TOPIC, "5", err, sizeof(err));
    if (!kp) {
        fprintf(stderr, "bench: amplification: %s\n", err);
        return -1;
    }
    for (uint64_t i = 0; i < records; i++) {
        const char *key = keys[i % (uint64_t)nkeys];
        if (kprod_send(kp, key, strlen(key), -1) < 0) {
            kprod_free(kp);
            return -1;
        }
        r->topic_bytes += strlen(key) + (uint64_t)g_opts.value_len;
        if (i % 1000 == 999) kprod_poll(kp);
    }
    int rc = kprod_flush(kp, 30);
    kprod_free(kp);
    r->records = records;
    return rc;
}

static int amp_run(const kafka_svc *k, const amp_case *c, char (*keys)[32], int nparts, amp_result *r) {
    node_svc n;
    pool *p = NULL;
    int rc = -1, nkeys = nparts * AMP_KEYS_PER_PART;
    int subs = c->feeds ? c->feeds : 1;
    uint64_t records = g_opts.tiny ? 2400 : 48000;
    memset(r, 0, sizeof(*r));
    if (node_start(&n, k, NULL, NULL, NULL) < 0) return -1;
    if (!(p = pool_new(POOL_SUBWAY, (size_t)subs))) goto out;
    /* Feed i follows the first key of partition i. */
    for (int i = 0; i < subs; i++) pool_set_feed(p, (size_t)i, AMP_TOPIC, c->feeds ? keys[i * AMP_KEYS_PER_PART] : NULL);
    if (pool_setup(p, n.port, "amplification") < 0) goto out;
    long long b0 = node_counter(&n, "bytes_in"), r0 = node_counter(&n, "records_in");
    if (amp_produce(k, keys, nkeys, records, r) < 0) goto out;
    r->expected = c->feeds ? (uint64_t)c->feeds * (records / (uint64_t)nkeys) : records;
    double deadline = now_s() + 15;
    while (pool_total(p) < r->expected && now_s() < deadline) pool_run(p, 10);
    pool_run_for(p, 0.3);         /* anything beyond the expected would show */
    r->received = pool_total(p);
    long long b1 = node_counter(&n, "bytes_in"), r1 = node_counter(&n, "records_in");
    if (b0 < 0 || b1 < 0) {
        fprintf(stderr, "bench: amplification: no bytes_in in the node's /stats\n");
        goto out;
    }
    r->read_bytes = (uint64_t)(b1 - b0);
    r->read_records = (uint64_t)(r1 - r0);
    r->partitions_read = c->feeds ? c->feeds : nparts;
    rc = r->received > 0 ? 0 : -1;
out:
    pool_free(p);
    svc_stop(&n.p);
    return rc;
}

int scenario_amplification(void) {
    int nparts = g_opts.amp_partitions;
    char topic_spec[64];
    snprintf(topic_spec, sizeof(topic_spec), "%s:%d", AMP_TOPIC, nparts);
    const char *const topics[] = {topic_spec, NULL};
    static const char *const cols[] = {"subscription", "partitions read", "records produced", "topic bytes",
                                       "node bytes read", "read / topic", "goal", "received/expected",
                                       "previous read / topic"};
    const amp_case cases[] = {
        {"1 exact-key feed", 1},
        {"3 exact-key feeds (3 partitions)", 3},
        {"every-key feed (topic/*)", 0},
    };
    char (*keys)[32] = calloc((size_t)(nparts * AMP_KEYS_PER_PART), 32);
    kafka_svc k;
    int rc = 0;
    if (!keys || nparts > AMP_MAX_PARTS) return -1;
    keys_per_partition(nparts, AMP_KEYS_PER_PART, keys);
    if (kafka_start(&k, topics) < 0) {
        free(keys);
        return -1;
    }
    char title[160];
    snprintf(title, sizeof(title), "amplification: %d-partition topic, %d keys evenly spread (murmur2), %d-byte values",
             nparts, nparts * AMP_KEYS_PER_PART, g_opts.value_len);
    tab *t = tab_new(title, 9, cols);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        amp_result r;
        if (amp_run(&k, &cases[i], keys, nparts, &r) < 0) {
            rc = -1;
            tab_row(t, cases[i].name, "FAILED", "", "", "", "", "", "", "");
            continue;
        }
        double ratio = r.topic_bytes ? (double)r.read_bytes / (double)r.topic_bytes : 0;
        double goal = (double)r.partitions_read / nparts;
        const char *pl = prev_find("amplification", cases[i].name, "partitions", (double)nparts, (const char *)NULL);
        tab_row(t, cases[i].name, fmt_int(r.partitions_read), fmt_int((double)r.records), fmt_int((double)r.topic_bytes),
                fmt_int((double)r.read_bytes), fmt_f("%.4f", ratio), fmt_f("%.4f", goal),
                fmt_f("%.4f", r.expected ? (double)r.received / (double)r.expected : 0),
                pl ? fmt_f("%.4f", prev_num(pl, "ratio")) : "");
        jrec *j = jr_begin("amplification", cases[i].name);
        jr_int(j, "partitions", nparts);
        jr_int(j, "keys", nparts * AMP_KEYS_PER_PART);
        jr_int(j, "feeds", cases[i].feeds);
        jr_int(j, "partitions_read", r.partitions_read);
        jr_int(j, "records", (long long)r.records);
        jr_int(j, "topic_bytes", (long long)r.topic_bytes);
        jr_int(j, "node_bytes_in", (long long)r.read_bytes);
        jr_int(j, "node_records_in", (long long)r.read_records);
        jr_num(j, "ratio", ratio);
        jr_num(j, "goal", goal);
        jr_int(j, "received", (long long)r.received);
        jr_int(j, "expected", (long long)r.expected);
        jr_end(j);
    }
    tab_note(t, "Bytes are key + value bytes (the node's /stats counters.bytes_in; Kafka's batch framing not "
             "counted). A direct consumer filtering by key reads every partition: ratio 1. Byte counts do not "
             "depend on the machine's load: no health check.");
    prev_note(t, prev_find("amplification", cases[0].name, "partitions", (double)nparts, (const char *)NULL));
    tab_print(t);
    kafka_stop(&k);
    free(keys);
    return rc;
}
