/* scenario_fanout.c -- one feed to 100 and 1000 subscribers as fast as it drains, vs Redis pub/sub. */
#include "tests/bench/bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FAN_TOPIC "bench-fanout"
#define FAN_KEY "fan"
#define REDIS_BATCH 256

typedef struct fan_result {
    int ok;
    uint64_t window;
    double secs;
    uint64_t delivered;           /* MESSAGEs / messages at the clients in the window */
    uint64_t produced;            /* records into the feed in the window */
    uint64_t dropped;
    double server_cpu;            /* node or redis-server */
    long server_peak_kb;
    double kafka_cpu;             /* mock_kafka (subway only) */
    double bench_cpu;
    hist h;
    health hl;                    /* the machine during the window */
    double warmed_s;
} fan_result;

/* The window: enough records in flight to keep the pipeline busy, few
 * enough that no queue grows without bound (the node shares a record's
 * bytes among subscribers; Redis copies them into each client's buffer).
 * Kept below the node's queued.min.messages (10000): past it librdkafka
 * stops fetching the partition and records then arrive in bursts up to a
 * second apart, a tenth of the throughput (see RESULTS.md). */
#define FAN_WINDOW_MAX 8000
#define FAN_WINDOW_MIN 1000

static uint64_t fan_window(int subs) {
    uint64_t w = 2000000u / (uint64_t)subs;
    if (g_opts.fan_window > 0) return (uint64_t)g_opts.fan_window;
    return w < FAN_WINDOW_MIN ? FAN_WINDOW_MIN : w > FAN_WINDOW_MAX ? FAN_WINDOW_MAX : w;
}

/* Drives p against pc for the warm-up and the window, snapshotting the
 * server (pid) and mock Kafka (kpid, 0: none) around the window. */
static int fan_measure(pool *p, pacer *pc, pid_t pid, pid_t kpid, fan_result *r) {
    procstat s0, s1, k0 = {0}, k1 = {0};
    machine_snapshot m0, m1;
    machine_use u;
    if (drive(p, pc, g_opts.warmup_s) < 0) return -1;
    if (warm_until_healthy(p, pc, NULL, &r->hl, &r->warmed_s) < 0) return -1;
    machine_snap(&m0);
    procstat_read(pid, &s0);
    if (kpid) procstat_read(kpid, &k0);
    double b0 = self_cpu_s(), t0 = now_s();
    uint64_t d0 = pool_total(p), p0 = pacer_produced(pc), x0 = pool_dropped(p);
    pool_latency(p, 1);
    int rc = drive(p, pc, g_opts.duration_s);
    r->secs = now_s() - t0;
    r->delivered = pool_total(p) - d0;
    r->produced = pacer_produced(pc) - p0;
    r->dropped = pool_dropped(p) - x0;
    r->bench_cpu = self_cpu_s() - b0;
    procstat_read(pid, &s1);
    if (kpid) procstat_read(kpid, &k1);
    r->server_cpu = s1.cpu_s - s0.cpu_s;
    r->server_peak_kb = s1.hwm_kb;
    r->kafka_cpu = k1.cpu_s - k0.cpu_s;
    r->h = *pool_hist(p);
    pool_latency(p, 0);
    machine_snap(&m1);
    machine_usage(&m0, &m1, &u);
    health_init(&r->hl);
    health_machine(&r->hl, &u);
    return rc;
}

static int fan_subway(const kafka_svc *k, int subs, fan_result *r) {
    node_svc n;
    char err[512];
    pool *p = NULL;
    kprod *kp = NULL;
    pacer *pc = NULL;
    int rc = -1;
    r->window = fan_window(subs);
    if (node_start(&n, k, NULL, NULL, NULL) < 0) return -1;
    if (!(p = pool_new(POOL_SUBWAY, (size_t)subs))) goto out;
    for (int i = 0; i < subs; i++) pool_set_feed(p, (size_t)i, FAN_TOPIC, FAN_KEY);
    if (pool_setup(p, n.port, "fanout/subway") < 0) goto out;
    if (!(kp = kprod_new(k->bootstrap, FAN_TOPIC, g_opts.fan_linger, err, sizeof(err)))) {
        fprintf(stderr, "bench: producer: %s\n", err);
        goto out;
    }
    pacer_conf pcf = {.kp = kp, .topic = FAN_TOPIC, .key = FAN_KEY, .window = r->window};
    if (!(pc = pacer_start(&pcf, err, sizeof(err)))) {
        fprintf(stderr, "bench: %s\n", err);
        goto out;
    }
    rc = fan_measure(p, pc, n.p.pid, kafka_pid(k), r);
    r->ok = rc == 0 && r->delivered > 0;
    if (!r->ok) fprintf(stderr, "bench: fanout/subway %d: %llu records delivered (%s)\n", subs,
                        (unsigned long long)r->delivered, pool_err(p));
    rc = r->ok ? 0 : -1;
out:
    pacer_stop(pc);
    pool_free(p);
    kprod_free(kp);
    svc_stop(&n.p);
    return rc;
}

static int fan_redis(int subs, fan_result *r) {
    redis_svc rs;
    char err[512];
    pool *p = NULL;
    pacer *pc = NULL;
    int rc = -1;
    r->window = fan_window(subs);
    if (redis_start(&rs) < 0) return -1;
    if (!(p = pool_new(POOL_REDIS, (size_t)subs))) goto out;
    for (int i = 0; i < subs; i++) pool_set_feed(p, (size_t)i, FAN_TOPIC, NULL);
    if (pool_setup(p, rs.port, "fanout/redis") < 0) goto out;
    pacer_conf pcf = {.redis_port = rs.port, .channel = FAN_TOPIC, .window = r->window, .batch = REDIS_BATCH};
    if (!(pc = pacer_start(&pcf, err, sizeof(err)))) {
        fprintf(stderr, "bench: %s\n", err);
        goto out;
    }
    rc = fan_measure(p, pc, rs.p.pid, 0, r);
    r->ok = rc == 0 && r->delivered > 0;
    if (!r->ok) fprintf(stderr, "bench: fanout/redis %d: %llu messages delivered (%s)\n", subs,
                        (unsigned long long)r->delivered, pool_err(p));
    rc = r->ok ? 0 : -1;
out:
    pacer_stop(pc);
    pool_free(p);
    svc_stop(&rs.p);
    return rc;
}

/* Server CPU seconds per million deliveries: what a delivery costs the
 * server whoever receives it, so a slow receiver cannot flatter either. */
static double fan_cpu_per_m(double cpu_s, uint64_t delivered) {
    return delivered ? cpu_s * 1e6 / (double)delivered : 0;
}

static void fan_report(tab *t, const char *system, int subs, const fan_result *r) {
    double rate = r->secs > 0 ? (double)r->delivered / r->secs : 0;
    jrec *j = jr_begin("fanout", system);
    jr_str(j, "system", system);
    jr_int(j, "subscribers", subs);
    jr_int(j, "ok", r->ok);
    jr_int(j, "window_records", (long long)r->window);
    jr_num(j, "duration_s", r->secs);
    jr_num(j, "warmup_s", g_opts.warmup_s);
    jr_int(j, "delivered", (long long)r->delivered);
    jr_num(j, "delivered_per_s", rate);
    jr_int(j, "produced", (long long)r->produced);
    jr_num(j, "produced_per_s", r->secs > 0 ? (double)r->produced / r->secs : 0);
    jr_int(j, "dropped", (long long)r->dropped);
    jr_num(j, "server_cpu_s", r->server_cpu);
    jr_int(j, "server_peak_rss_kb", r->server_peak_kb);
    jr_num(j, "kafka_cpu_s", r->kafka_cpu);
    jr_num(j, "bench_cpu_s", r->bench_cpu);
    if (strcmp(system, "subway") == 0) {
        jr_str(j, "producer", "librdkafka murmur2_random");
        jr_str(j, "linger_ms", g_opts.fan_linger);
        jr_str(j, "feed", FAN_TOPIC "/" FAN_KEY);
    } else {
        jr_str(j, "producer", "hiredis pipelined PUBLISH");
        jr_int(j, "pipeline", REDIS_BATCH);
    }
    jr_hist(j, "latency", &r->h);
    jr_num(j, "server_cpu_s_per_m", fan_cpu_per_m(r->server_cpu, r->delivered));
    jr_num(j, "health_warmup_s", r->warmed_s);
    health_json(j, &r->hl);
    jr_end(j);
    if (!r->ok) {
        tab_row(t, fmt_int(subs), system, "FAILED", "", "", "", "", "", "", "", "", "");
        return;
    }
    const char *pl = prev_find("fanout", system, "subscribers", (double)subs, (const char *)NULL);
    const char *prev = pl ? fmt_str("%s/s, %.3f s/M", fmt_int(prev_num(pl, "delivered_per_s")),
                                    fan_cpu_per_m(prev_num(pl, "server_cpu_s"), (uint64_t)prev_num(pl, "delivered")))
                          : "";
    char sys[64];
    snprintf(sys, sizeof(sys), "%s%s", system, r->hl.ok ? "" : " (UNHEALTHY)");
    tab_row(t, fmt_int(subs), sys, fmt_int(rate), fmt_int((double)r->produced / r->secs),
            fmt_f("%.0f%%", 100.0 * r->server_cpu / r->secs), fmt_f("%.3f", fan_cpu_per_m(r->server_cpu, r->delivered)),
            fmt_kb(r->server_peak_kb), fmt_f("%.0f%%", 100.0 * r->bench_cpu / r->secs), fmt_us(hist_pct(&r->h, 50)),
            fmt_us(hist_pct(&r->h, 99)), fmt_int((double)r->dropped), prev);
}

int scenario_fanout(void) {
    static const char *const cols[] = {"subscribers", "system", "delivered rec/s", "feed rec/s", "server CPU",
                                       "server CPU s per M deliveries", "server peak RSS", "bench CPU",
                                       "p50 (saturated)", "p99 (saturated)", "dropped", "previous rec/s, CPU s/M"};
    static const char *const topics[] = {FAN_TOPIC ":1", NULL};
    kafka_svc k;
    int failed = 0;
    if (kafka_start(&k, topics) < 0) return -1;
    tab *t = tab_new("fanout: one feed, 100-byte values, produced as fast as delivery drains", 12, cols);
    for (int i = 0; i < g_opts.nfanout_subs; i++) {
        int subs = g_opts.fanout_subs[i];
        fan_result *rs = calloc(1, sizeof(*rs)), *rr = calloc(1, sizeof(*rr));
        if (!rs || !rr) abort();
        vlog("fanout: subway, %d subscribers", subs);
        if (fan_subway(&k, subs, rs) < 0) failed++;
        fan_report(t, "subway", subs, rs);
        vlog("fanout: redis, %d subscribers", subs);
        if (fan_redis(subs, rr) < 0) failed++;
        fan_report(t, "redis", subs, rr);
        if (rs->ok && rr->ok) {
            double a = (double)rs->delivered / rs->secs, b = (double)rr->delivered / rr->secs;
            double ca = fan_cpu_per_m(rs->server_cpu, rs->delivered), cb = fan_cpu_per_m(rr->server_cpu, rr->delivered);
            double kafka_m = fan_cpu_per_m(rs->kafka_cpu, rs->delivered);
            health hl;
            health_init(&hl);
            if (!rs->hl.ok) health_require(&hl, 0, "subway's window: %s", rs->hl.why);
            if (!rr->hl.ok) health_require(&hl, 0, "Redis's window: %s", rr->hl.why);
            char what[64];
            snprintf(what, sizeof(what), "%d subscribers", subs);
            if (hl.ok) {
                tab_note(t, "%d subscribers: subway/Redis delivered = %.2f (subway %s/s, Redis %s/s); Redis/subway server "
                         "CPU per delivery = %.1f (subway %.3f s per million, Redis %.3f; with %s's %.3f, subway %.3f).",
                         subs, a / b, fmt_int(a), fmt_int(b), ca > 0 ? cb / ca : 0, ca, cb, kafka_name(), kafka_m,
                         ca + kafka_m);
            } else {
                health_note(t, what, &hl);
            }
            jrec *j = jr_begin("fanout", "ratio");
            jr_int(j, "subscribers", subs);
            jr_num(j, "subway_per_s", a);
            jr_num(j, "redis_per_s", b);
            jr_num(j, "subway_cpu_s_per_m", ca);
            jr_num(j, "redis_cpu_s_per_m", cb);
            jr_num(j, "kafka_cpu_s_per_m", kafka_m);
            jr_int(j, "healthy", hl.ok);
            if (hl.ok) {
                jr_num(j, "subway_over_redis", a / b);
                jr_num(j, "redis_over_subway_cpu_per_delivery", ca > 0 ? cb / ca : 0);
            } else {
                jr_str(j, "unhealthy_why", hl.why);
            }
            jr_end(j);
        }
        free(rs);
        free(rr);
    }
    tab_note(t, "Latency columns are produce-to-client under saturation (queueing included), not the latency scenario's.");
    tab_note(t, "server = subway node (Kafka: %s, its CPU in the JSON) or redis-server; bench CPU = this process, "
             "all threads.", kafka_name());
    tab_note(t, "delivered rec/s is bounded by the bench's one receiving thread as much as by the server (see bench "
             "CPU); CPU s per M deliveries is not: it is the server's own cost of a delivery.");
    prev_note(t, prev_find("fanout", "subway", (const char *)NULL));
    tab_print(t);
    kafka_stop(&k);
    return failed ? -1 : 0;
}
