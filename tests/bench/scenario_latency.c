/* scenario_latency.c -- produce-to-client latency at a fixed rate: 1000 subscribers vs one direct consumer. */
#include "tests/bench/bench.h"

#include <stdio.h>
#include <stdlib.h>

#define LAT_TOPIC "bench-latency"
#define LAT_KEY "lat"
#define LAT_LINGER "0"            /* the producer sends each record at once */

static void lat_row(tab *t, const char *who, int fetch_wait, const hist *h, uint64_t got, uint64_t want,
                    double cpu_pct, double bench_pct) {
    tab_row(t, who, fmt_int(fetch_wait), fmt_us(hist_pct(h, 50)), fmt_us(hist_pct(h, 99)), fmt_us(hist_pct(h, 99.9)),
            fmt_us(hist_pct(h, 100)), fmt_int((double)h->n), fmt_f("%.4f", want ? (double)got / (double)want : 0),
            cpu_pct >= 0 ? fmt_f("%.0f%%", cpu_pct) : "", bench_pct >= 0 ? fmt_f("%.0f%%", bench_pct) : "");
}

/* One measurement: a fresh node whose consumer and the direct consumer
 * both use fetch.wait.max.ms = fetch_wait. Adds rows to t. */
static int lat_run(const kafka_svc *k, int fetch_wait, tab *t) {
    node_svc n = {0};
    pool *p = NULL;
    kprod *kp = NULL;
    pacer *pc = NULL;
    kcons *kc = NULL;
    char err[512], opt[64];
    int rc = -1, subs = g_opts.lat_subs;
    hist *hd = calloc(1, sizeof(*hd)), *hs = calloc(1, sizeof(*hs));
    if (!hd || !hs) abort();
    snprintf(opt, sizeof(opt), "fetch.wait.max.ms=%d", fetch_wait);
    const char *extra[] = {"--kafka-opt", opt, NULL};

    if (node_start(&n, k, NULL, NULL, extra) < 0) goto out;
    if (!(p = pool_new(POOL_SUBWAY, (size_t)subs))) goto out;
    for (int i = 0; i < subs; i++) pool_set_feed(p, (size_t)i, LAT_TOPIC, LAT_KEY);
    if (pool_setup(p, n.port, "latency/subway") < 0) goto out;
    if (!(kc = kcons_start(k->bootstrap, LAT_TOPIC, 1, fetch_wait, err, sizeof(err))) ||
        !(kp = kprod_new(k->bootstrap, LAT_TOPIC, LAT_LINGER, err, sizeof(err)))) {
        fprintf(stderr, "bench: latency: %s\n", err);
        goto out;
    }
    pacer_conf pcf = {.kp = kp, .topic = LAT_TOPIC, .key = LAT_KEY, .rate = g_opts.lat_rate};
    if (!(pc = pacer_start(&pcf, err, sizeof(err)))) {
        fprintf(stderr, "bench: %s\n", err);
        goto out;
    }
    if (drive(p, pc, g_opts.warmup_s) < 0) goto out;
    procstat s0, s1;
    procstat_read(n.p.pid, &s0);
    double b0 = self_cpu_s();
    uint64_t d0 = pool_total(p), c0 = kcons_records(kc), p0 = pacer_produced(pc);
    double t0 = now_s();
    pool_latency(p, 1);
    kcons_take_hist(kc, hd);      /* drops the warm-up samples */
    if (drive(p, pc, g_opts.duration_s) < 0) goto out;
    double secs = now_s() - t0;
    procstat_read(n.p.pid, &s1);
    double bench_pct = 100.0 * (self_cpu_s() - b0) / secs;
    uint64_t produced = pacer_produced(pc) - p0;
    pacer_stop(pc);
    pc = NULL;
    /* Records produced in the window may still be on their way: let them land. */
    double settle = now_s() + 2.0;
    while (now_s() < settle && (pool_total(p) - d0 < produced * (uint64_t)subs || kcons_records(kc) - c0 < produced))
        pool_run(p, 5);
    *hs = *pool_hist(p);
    uint64_t spread_lo, spread_hi;
    pool_lat_spread(p, &spread_lo, &spread_hi);
    kcons_take_hist(kc, hd);
    uint64_t got_s = pool_total(p) - d0, got_d = kcons_records(kc) - c0;

    char who[96];
    snprintf(who, sizeof(who), "subway, %d subscribers", subs);
    lat_row(t, who, fetch_wait, hs, got_s, produced * (uint64_t)subs, 100.0 * (s1.cpu_s - s0.cpu_s) / secs, bench_pct);
    lat_row(t, "direct librdkafka consumer", fetch_wait, hd, got_d, produced, -1, -1);
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
    jr_proc(j, "node", &s0, &s1);
    jr_num(j, "bench_cpu_pct", bench_pct);
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

int scenario_latency(void) {
    static const char *const topics[] = {LAT_TOPIC ":1", NULL};
    static const char *const cols[] = {"receiver", "fetch.wait.max.ms", "p50", "p99", "p99.9", "max", "samples",
                                       "received/expected", "node CPU", "bench CPU"};
    static const int waits[] = {10, 1};
    kafka_svc k;
    int failed = 0;
    if (kafka_start(&k, topics) < 0) return -1;
    char title[200];
    snprintf(title, sizeof(title), "latency: %d subscribers, %d records/s of %d bytes, produce -> client",
             g_opts.lat_subs, g_opts.lat_rate, g_opts.value_len);
    tab *t = tab_new(title, 10, cols);
    for (size_t i = 0; i < sizeof(waits) / sizeof(waits[0]); i++)
        if (lat_run(&k, waits[i], t) < 0) failed++;
    tab_note(t, "Producer: librdkafka, linger.ms=%s, acks=1. Node and direct consumer: fetch.min.bytes=1 and the "
             "fetch.wait.max.ms shown (10 is the node's default). librdkafka's mock broker holds an empty fetch "
             "for the whole fetch.wait.max.ms even when a record arrives meanwhile (real brokers answer at once), "
             "so on the mock that setting adds up to its value to every latency.", LAT_LINGER);
    tab_print(t);
    svc_stop(&k.p);
    return failed ? -1 : 0;
}
