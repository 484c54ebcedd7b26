/* scenario_latency.c -- produce-to-client latency at a fixed rate: subscribers vs a direct consumer and Redis pub/sub. */
#include "tests/bench/bench.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define LAT_TOPIC "bench-latency"
#define LAT_KEY "lat"
#define LAT_LINGER "0"            /* the producer sends each record at once */
#define LAT_MOCK_HEALTH_WAIT_S 6.0 /* most extra warm-up on the mock (its log walk) */

/* "p50 / p99" of the published line, or "" when there is none. */
static const char *prev_lat(const char *line) {
    double a = prev_num(line, "latency_p50_us"), b = prev_num(line, "latency_p99_us");
    if (!line || isnan(a) || isnan(b)) return "";
    return fmt_str("%s / %s", fmt_us((uint64_t)(a * 1000)), fmt_us((uint64_t)(b * 1000)));
}

static void lat_row(tab *t, const char *who, int fetch_wait, double rate, const hist *h, uint64_t got,
                    uint64_t want, double cpu_pct, double bench_pct, const char *prev) {
    tab_row(t, who, fetch_wait >= 0 ? fmt_int(fetch_wait) : "-", fmt_int(rate), fmt_us(hist_pct(h, 50)), fmt_us(hist_pct(h, 99)), fmt_us(hist_pct(h, 99.9)),
            fmt_us(hist_pct(h, 100)), fmt_int((double)h->n), fmt_f("%.4f", want ? (double)got / (double)want : 0),
            cpu_pct >= 0 ? fmt_f("%.0f%%", cpu_pct) : "", bench_pct >= 0 ? fmt_f("%.0f%%", bench_pct) : "", prev);
}

/* What one measurement window saw. */
typedef struct lat_window {
    double secs;
    uint64_t produced;            /* records produced in the window */
    uint64_t got;                 /* of them, delivered to the pool */
    uint64_t got_direct;          /* and to the direct consumer */
    double server_pct, bench_pct; /* CPU of the server (node or Redis) and of this process */
    procstat s0, s1;              /* the server's, around the window */
    double warmed_s;              /* warm-up spent waiting for a healthy baseline */
    health h;                     /* the window's baseline: machine, direct consumer */
    double gc_ms;                 /* Apache Kafka's GC pauses in the window: their sum */
    long gc_n;                    /* and how many */
} lat_window;

typedef struct lat_probe {
    kcons *kc;                    /* NULL: Redis, nothing of its own to judge */
    int fetch_wait;
} lat_probe;

static void lat_probe_begin(void *arg) {
    lat_probe *lp = arg;
    if (lp->kc) kcons_window(lp->kc, wall_ns(), UINT64_MAX);
}

static void lat_probe_judge(void *arg, health *h) {
    lat_probe *lp = arg;
    if (!lp->kc) return;
    hist *hd = malloc(sizeof(*hd));
    if (!hd) abort();
    kcons_take_hist(lp->kc, hd);
    health_direct(h, hd, lp->fetch_wait);
    free(hd);
}

/* Warms up (then on while the baseline is unhealthy, within --health-wait),
 * measures for --duration with latency recording on, stops the producer
 * (*pcp is freed) and waits up to 5 s for the window's records still in
 * flight. Only records produced inside the window count, at every receiver
 * (their stamps say when), so a warm-up's backlog cannot inflate
 * received/expected. kc (may be NULL) is the direct consumer; its window
 * samples end up in hd. */
static int lat_measure(pool *p, pacer **pcp, kcons *kc, hist *hd, const kafka_svc *k, int fetch_wait, pid_t server,
                       int subs, lat_window *w) {
    lat_probe lp = {kc, fetch_wait};
    /* The mock finds a fetch's offset by walking the partition's log, so
     * every second of warm-up makes its fetches slower: a 30 s warm-on
     * there left the direct consumer seconds behind. */
    baseline_probe bp = {lat_probe_begin, lat_probe_judge, &lp, g_opts.kafka_apache ? 0 : LAT_MOCK_HEALTH_WAIT_S};
    if (drive(p, *pcp, g_opts.warmup_s) < 0) return -1;
    if (warm_until_healthy(p, *pcp, &bp, &w->h, &w->warmed_s) < 0) return -1;
    double gc0 = 0, gc1 = 0, gcmax = 0;
    long gcn0 = 0, gcn1 = 0;
    if (k) kafka_gc_pauses(k, &gc0, &gcmax, &gcn0);
    machine_snapshot m0, m1;
    machine_snap(&m0);
    procstat_read(server, &w->s0);
    double b0 = self_cpu_s();
    uint64_t p0 = pacer_produced(*pcp), w0 = wall_ns();
    double t0 = now_s();
    pool_latency(p, 1);
    if (kc) kcons_window(kc, w0, UINT64_MAX);
    if (drive(p, *pcp, g_opts.duration_s) < 0) return -1;
    uint64_t w1 = wall_ns();
    w->produced = pacer_produced(*pcp) - p0;
    pool_latency_until(p, w1);
    if (kc) kcons_window_until(kc, w1);
    w->secs = now_s() - t0;
    procstat_read(server, &w->s1);
    machine_snap(&m1);
    w->server_pct = 100.0 * (w->s1.cpu_s - w->s0.cpu_s) / w->secs;
    w->bench_pct = 100.0 * (self_cpu_s() - b0) / w->secs;
    if (k && kafka_gc_pauses(k, &gc1, &gcmax, &gcn1) == 0) {
        w->gc_ms = gc1 - gc0;
        w->gc_n = gcn1 - gcn0;
    }
    pacer_stop(*pcp);
    *pcp = NULL;
    /* Records produced in the window may still be on their way: let them land. */
    for (double settle = now_s() + 5.0; now_s() < settle;) {
        if (pool_windowed(p) >= w->produced * (uint64_t)subs && (!kc || kcons_windowed(kc) >= w->produced)) break;
        pool_run(p, 5);
    }
    if (kc) kcons_take_hist(kc, hd);
    w->got = pool_windowed(p);
    w->got_direct = kc ? kcons_windowed(kc) : 0;
    /* The verdict stands on the window itself, not on the probes before it. */
    machine_use u;
    machine_usage(&m0, &m1, &u);
    health_init(&w->h);
    health_machine(&w->h, &u);
    if (kc) {
        health_direct(&w->h, hd, fetch_wait);
        health_ratio(&w->h, "direct consumer", w->got_direct, w->produced);
    }
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
    if (lat_measure(p, &pc, kc, hd, k, fetch_wait, n.p.pid, subs, &w) < 0) goto out;
    *hs = *pool_hist(p);
    uint64_t spread_lo, spread_hi;
    pool_lat_spread(p, &spread_lo, &spread_hi);
    uint64_t produced = w.produced, got_s = w.got, got_d = w.got_direct;
    double secs = w.secs;

    char who[96];
    const char *ps = prev_find("latency", "subway", "subscribers", (double)subs, "fetch_wait_max_ms", (double)fetch_wait,
                               (const char *)NULL);
    const char *pd = prev_find("latency", "direct", "subscribers", (double)subs, "fetch_wait_max_ms", (double)fetch_wait,
                               (const char *)NULL);
    if (!pd && ps) /* lines from before the direct ones named their subscribers: the same record count */
        pd = prev_find("latency", "direct", "fetch_wait_max_ms", (double)fetch_wait, "produced",
                       prev_num(ps, "produced"), (const char *)NULL);
    snprintf(who, sizeof(who), "subway, %d subscribers%s", subs, w.h.ok ? "" : " (UNHEALTHY)");
    lat_row(t, who, fetch_wait, (double)produced / secs, hs, got_s, produced * (uint64_t)subs, w.server_pct,
            w.bench_pct, prev_lat(ps));
    lat_row(t, "direct librdkafka consumer", fetch_wait, (double)produced / secs, hd, got_d, produced, -1, -1,
            prev_lat(pd));
    double diff_ms = ((double)hist_pct(hs, 99) - (double)hist_pct(hd, 99)) / 1e6;
    char what[96];
    snprintf(what, sizeof(what), "%d subscribers, fetch.wait.max.ms=%d", subs, fetch_wait);
    health_note(t, what, &w.h);
    if (w.h.ok)
        tab_note(t, "%s: p99(subway) - p99(direct) = %.2f ms (goal <= 1 ms); subway p99 %s (goal < 5 ms); "
                 "per-subscriber mean latency from %s (best subscriber) to %s (worst).",
                 what, diff_ms, fmt_us(hist_pct(hs, 99)), fmt_us(spread_lo), fmt_us(spread_hi));
    if (w.warmed_s > health_probe_s() + 0.5 || w.gc_ms > 0)
        tab_note(t, "%s: %.1f s of extra warm-up waiting for a healthy baseline; Kafka's GC paused %.0f ms in the window "
                 "(%ld pauses).", what, w.warmed_s, w.gc_ms, w.gc_n);

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
    jr_num(j, "health_warmup_s", w.warmed_s);
    jr_num(j, "kafka_gc_pause_ms", w.gc_ms);
    health_json(j, &w.h);
    jr_end(j);
    j = jr_begin("latency", "direct");
    jr_int(j, "consumers", 1);
    jr_int(j, "subscribers", subs);
    jr_int(j, "rate", g_opts.lat_rate);
    jr_int(j, "produced", (long long)produced);
    jr_int(j, "received", (long long)got_d);
    jr_int(j, "fetch_wait_max_ms", fetch_wait);
    jr_hist(j, "latency", hd);
    if (w.h.ok) jr_num(j, "p99_diff_ms", diff_ms);
    health_json(j, &w.h);
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
    if (lat_measure(p, &pc, NULL, NULL, NULL, -1, rs.p.pid, subs, &w) < 0) goto out;
    *h = *pool_hist(p);
    char who[96];
    snprintf(who, sizeof(who), "Redis pub/sub, %d subscribers%s", subs, w.h.ok ? "" : " (UNHEALTHY)");
    lat_row(t, who, -1, (double)w.produced / w.secs, h, w.got, w.produced * (uint64_t)subs, w.server_pct,
            w.bench_pct, prev_lat(prev_find("latency", "redis", "subscribers", (double)subs, (const char *)NULL)));
    if (!w.h.ok) {
        snprintf(who, sizeof(who), "Redis pub/sub, %d subscribers", subs);
        health_note(t, who, &w.h);
    }
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
    health_json(j, &w.h);
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
                                       "received/expected", "server CPU", "bench CPU", "previous p50 / p99"};
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
    tab *t = tab_new(title, 12, cols);
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
    tab_note(t, "received/expected counts only records produced inside the window (by their stamps), wherever "
             "they arrive.");
    prev_note(t, prev_find("latency", "direct", (const char *)NULL));
    tab_print(t);
    kafka_stop(&k);
    return failed ? -1 : 0;
}
