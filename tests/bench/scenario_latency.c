/* scenario_latency.c -- produce-to-client latency at a fixed rate: subscribers vs a direct consumer and Redis pub/sub. */
#include "tests/bench/bench.h"

#include <stdio.h>
#include <stdlib.h>

#define LAT_TOPIC "bench-latency"
#define LAT_KEY "lat"
#define LAT_LINGER "0"            /* the producer sends each record at once */

static void lat_row(tab *t, const char *who, int fetch_wait, double rate, const hist *h, uint64_t got,
                    uint64_t want, double cpu_pct, double bench_pct) {
    tab_row(t, who, fetch_wait >= 0 ? fmt_int(fetch_wait) : "-", fmt_int(rate), fmt_us(hist_pct(h, 50)), fmt_us(hist_pct(h, 99)), fmt_us(hist_pct(h, 99.9)),
            fmt_us(hist_pct(h, 100)), fmt_int((double)h->n), fmt_f("%.4f", want ? (double)got / (double)want : 0),
            cpu_pct >= 0 ? fmt_f("%.0f%%", cpu_pct) : "", bench_pct >= 0 ? fmt_f("%.0f%%", bench_pct) : "");
}

/* What one measurement window saw. */
typedef struct lat_window {
    double secs;
    uint64_t produced;            /* records produced in the window */
    uint64_t got;                 /* of them, delivered to the pool */
    uint64_t got_direct;          /* and to the direct consumer */
    double server_pct, bench_pct; /* CPU of the server (node or Redis) and of this process */
    procstat s0, s1;              /* the server's, around the window */
} lat_window;

/* Warms up, measures for --duration with latency recording on, stops the
 * producer (*pcp is freed) and waits up to 2 s for records still in
 * flight. kc (may be NULL) is the direct consumer; its window samples end
 * up in hd. */
static int lat_measure(pool *p, pacer **pcp, kcons *kc, hist *hd, pid_t server, int subs, lat_window *w) {
    if (drive(p, *pcp, g_opts.warmup_s) < 0) return -1;
    procstat_read(server, &w->s0);
    double b0 = self_cpu_s();
    uint64_t d0 = pool_total(p), c0 = kc ? kcons_records(kc) : 0, p0 = pacer_produced(*pcp);
    double t0 = now_s();
    pool_latency(p, 1);
    if (kc) kcons_take_hist(kc, hd);  /* drops the warm-up samples */
    if (drive(p, *pcp, g_opts.duration_s) < 0) return -1;
    w->secs = now_s() - t0;
    procstat_read(server, &w->s1);
    w->server_pct = 100.0 * (w->s1.cpu_s - w->s0.cpu_s) / w->secs;
    w->bench_pct = 100.0 * (self_cpu_s() - b0) / w->secs;
    w->produced = pacer_produced(*pcp) - p0;
    pacer_stop(*pcp);
    *pcp = NULL;
    /* Records produced in the window may still be on their way: let them land. */
    for (double settle = now_s() + 2.0; now_s() < settle;) {
        if (pool_total(p) - d0 >= w->produced * (uint64_t)subs && (!kc || kcons_records(kc) - c0 >= w->produced))
            break;
        pool_run(p, 5);
    }
    if (kc) kcons_take_hist(kc, hd);
    w->got = pool_total(p) - d0;
    w->got_direct = kc ? kcons_records(kc) - c0 : 0;
    return 0;
}

/* One measurement: a fresh node whose consumer and the direct consumer
 * both use fetch.wait.max.ms = fetch_wait. Adds rows to t. */
static int lat_run(const kafka_svc *k, const char *topic, int subs, int fetch_wait, tab *t) {
    node_svc n = {0};
    pool *p = NULL;
    kprod *kp = NULL;
    pacer *pc = NULL;
    kcons *kc = NULL;
    char err[512], opt[64];
    int rc = -1;
    hist *hd = calloc(1, sizeof(*hd)), *hs = calloc(1, sizeof(*hs));
    if (!hd || !hs) abort();
    snprintf(opt, sizeof(opt), "fetch.wait.max.ms=%d", fetch_wait);
    const char *extra[] = {"--kafka-opt", opt, NULL};

    if (node_start(&n, k, NULL, NULL, extra) < 0) goto out;
    if (!(p = pool_new(POOL_SUBWAY, (size_t)subs))) goto out;
    for (int i = 0; i < subs; i++) pool_set_feed(p, (size_t)i, topic, LAT_KEY);
    if (pool_setup(p, n.port, "latency/subway") < 0) goto out;
    if (!(kc = kcons_start(k->bootstrap, topic, 1, fetch_wait, err, sizeof(err))) ||
        !(kp = kprod_new(k->bootstrap, topic, LAT_LINGER, err, sizeof(err)))) {
        fprintf(stderr, "bench: latency: %s\n", err);
        goto out;
    }
    pacer_conf pcf = {.kp = kp, .topic = topic, .key = LAT_KEY, .rate = g_opts.lat_rate};
    if (!(pc = pacer_start(&pcf, err, sizeof(err)))) {
        fprintf(stderr, "bench: %s\n", err);
        goto out;
    }
    lat_window w = {0};
    if (lat_measure(p, &pc, kc, hd, n.p.pid, subs, &w) < 0) goto out;
    *hs = *pool_hist(p);
    uint64_t spread_lo, spread_hi;
    pool_lat_spread(p, &spread_lo, &spread_hi);
    uint64_t produced = w.produced, got_s = w.got, got_d = w.got_direct;
    double secs = w.secs;

    char who[96];
    snprintf(who, sizeof(who), "subway, %d subscribers", subs);
    lat_row(t, who, fetch_wait, (double)produced / secs, hs, got_s, produced * (uint64_t)subs, w.server_pct,
            w.bench_pct);
    lat_row(t, "direct librdkafka consumer", fetch_wait, (double)produced / secs, hd, got_d, produced, -1, -1);
    double diff_ms = ((double)hist_pct(hs, 99) - (double)hist_pct(hd, 99)) / 1e6;
    tab_note(t, "fetch.wait.max.ms=%d: p99(subway) - p99(direct) = %.2f ms (goal <= 1 ms); subway p99 %s (goal < 5 ms); "
             "per-subscriber mean latency from %s (best subscriber) to %s (worst).",
             fetch_wait, diff_ms, fmt_us(hist_pct(hs, 99)), fmt_us(spread_lo), fmt_us(spread_hi));

    jrec *j = jr_begin("latency", "subway");
    jr_int(j, "subscribers", subs);
    jr_int(j, "rate", g_opts.lat_rate);
    jr_num(j, "duration_s", secs);
    jr_int(j, "produced", (long long)produced);
    jr_int(j, "received", (long long)got_s);
    jr_int(j, "expected", (long long)(produced * (uint64_t)subs));
    jr_str(j, "linger_ms", LAT_LINGER);
    jr_int(j, "fetch_wait_max_ms", fetch_wait);
    jr_hist(j, "latency", hs);
    jr_proc(j, "node", &w.s0, &w.s1);
    jr_num(j, "bench_cpu_pct", w.bench_pct);
    jr_num(j, "subscriber_mean_min_us", (double)spread_lo / 1000);
    jr_num(j, "subscriber_mean_max_us", (double)spread_hi / 1000);
    jr_end(j);
    j = jr_begin("latency", "direct");
    jr_int(j, "consumers", 1);
    jr_int(j, "rate", g_opts.lat_rate);
    jr_int(j, "produced", (long long)produced);
    jr_int(j, "received", (long long)got_d);
    jr_int(j, "fetch_wait_max_ms", fetch_wait);
    jr_hist(j, "latency", hd);
    jr_num(j, "p99_diff_ms", diff_ms);
    jr_end(j);
    rc = got_s > 0 && got_d > 0 ? 0 : -1;
    if (rc < 0) fprintf(stderr, "bench: latency: no records arrived (subway %llu, direct %llu)\n",
                        (unsigned long long)got_s, (unsigned long long)got_d);
out:
    pacer_stop(pc);
    kcons_stop(kc);
    kprod_free(kp);
    pool_free(p);
    svc_stop(&n.p);
    free(hd);
    free(hs);
    return rc;
}

/* The same subscribers on one Redis channel, the same records published
 * at the same rate: what the fan-out alone costs on this machine. */
static int lat_redis(int subs, tab *t) {
    redis_svc rs;
    pool *p = NULL;
    pacer *pc = NULL;
    char err[512];
    int rc = -1;
    hist *h = calloc(1, sizeof(*h));
    if (!h) abort();
    if (redis_start(&rs) < 0) goto out;
    if (!(p = pool_new(POOL_REDIS, (size_t)subs))) goto out;
    for (int i = 0; i < subs; i++) pool_set_feed(p, (size_t)i, LAT_TOPIC, NULL);
    if (pool_setup(p, rs.port, "latency/redis") < 0) goto out;
    pacer_conf pcf = {.redis_port = rs.port, .channel = LAT_TOPIC, .rate = g_opts.lat_rate, .batch = 1};
    if (!(pc = pacer_start(&pcf, err, sizeof(err)))) {
        fprintf(stderr, "bench: %s\n", err);
        goto out;
    }
    lat_window w = {0};
    if (lat_measure(p, &pc, NULL, NULL, rs.p.pid, subs, &w) < 0) goto out;
    *h = *pool_hist(p);
    char who[96];
    snprintf(who, sizeof(who), "Redis pub/sub, %d subscribers", subs);
    lat_row(t, who, -1, (double)w.produced / w.secs, h, w.got, w.produced * (uint64_t)subs, w.server_pct,
            w.bench_pct);
    jrec *j = jr_begin("latency", "redis");
    jr_int(j, "subscribers", subs);
    jr_int(j, "rate", g_opts.lat_rate);
    jr_num(j, "duration_s", w.secs);
    jr_int(j, "produced", (long long)w.produced);
    jr_int(j, "received", (long long)w.got);
    jr_int(j, "expected", (long long)(w.produced * (uint64_t)subs));
    jr_hist(j, "latency", h);
    jr_proc(j, "redis", &w.s0, &w.s1);
    jr_num(j, "bench_cpu_pct", w.bench_pct);
    jr_end(j);
    rc = w.got > 0 ? 0 : -1;
    if (rc < 0) fprintf(stderr, "bench: latency/redis: no messages arrived (%s)\n", pool_err(p));
out:
    pacer_stop(pc);
    pool_free(p);
    svc_stop(&rs.p);
    free(h);
    return rc;
}

int scenario_latency(void) {
    static const char *const cols[] = {"receiver", "fetch.wait.max.ms", "records/s", "p50", "p99", "p99.9", "max", "samples",
                                       "received/expected", "server CPU", "bench CPU"};
    static const int waits[] = {10, 1};
    /* A topic per measurement: the mock broker finds a fetch's offset by
     * walking the partition's whole log, so a log grown by the measurements
     * before slows every later fetch (by hundreds of ms after ~30k records). */
    enum { NWAITS = sizeof(waits) / sizeof(waits[0]) };
    char names[4 * NWAITS][64], specs[4 * NWAITS][80];
    const char *topics[4 * NWAITS + 1];
    int nt = 0;
    for (int s = 0; s < g_opts.nlat_subs; s++)
        for (int i = 0; i < NWAITS; i++, nt++) {
            snprintf(names[nt], sizeof(names[nt]), LAT_TOPIC "-%d-%d", g_opts.lat_subs[s], waits[i]);
            snprintf(specs[nt], sizeof(specs[nt]), "%.63s:1", names[nt]);
            topics[nt] = specs[nt];
        }
    topics[nt] = NULL;
    kafka_svc k;
    int failed = 0;
    if (kafka_start(&k, topics) < 0) return -1;
    char title[200];
    snprintf(title, sizeof(title), "latency: %d records/s of %d bytes, produce -> client (Kafka: %s)",
             g_opts.lat_rate, g_opts.value_len, kafka_name());
    tab *t = tab_new(title, 11, cols);
    for (int s = 0; s < g_opts.nlat_subs; s++) {
        for (int i = 0; i < NWAITS; i++)
            if (lat_run(&k, names[s * NWAITS + i], g_opts.lat_subs[s], waits[i], t) < 0) failed++;
        if (lat_redis(g_opts.lat_subs[s], t) < 0) failed++;
    }
    tab_note(t, "Producer: librdkafka, linger.ms=%s, acks=1; Redis: one PUBLISH per record at the same rate. Node and "
             "direct consumer: fetch.min.bytes=1 and the fetch.wait.max.ms shown (10 is the node's default). "
             "records/s = the rate the producer kept up (the PUBLISH loop waits for each reply, so a "
             "saturated Redis publishes less). server CPU = the node or redis-server. %s", LAT_LINGER,
             g_opts.kafka_apache ? "Apache Kafka answers a waiting fetch as soon as a record arrives."
                                 : "librdkafka's mock broker holds an empty fetch for the whole fetch.wait.max.ms even "
                                   "when a record arrives meanwhile (real brokers answer at once), so on the mock that "
                                   "setting adds up to its value to every Kafka latency.");
    tab_print(t);
    kafka_stop(&k);
    return failed ? -1 : 0;
}
