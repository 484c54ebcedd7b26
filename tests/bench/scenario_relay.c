/* scenario_relay.c -- three Redis-coordinated nodes: subscribers on the non-owners (relayed) vs on the owner. */
#include "tests/bench/bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RELAY_TOPIC "bench-relay"
#define RELAY_KEY "r"
#define RELAY_RATE 1000           /* records/s in the latency phase */
#define RELAY_NODES 3

typedef struct relay_phase {
    int ok;
    double secs;
    uint64_t delivered, produced;
    double nodes_cpu, redis_cpu;
    hist h;
    health hl;                    /* the machine during the window */
} relay_phase;

/* Drives p against a new pacer (rate > 0: fixed rate, else window) and
 * measures the window. */
static int relay_measure(const kafka_svc *k, pool *p, const node_svc *nodes, const redis_svc *rs, double rate,
                         uint64_t window, relay_phase *r) {
    char err[512];
    kprod *kp = kprod_new(k->bootstrap, RELAY_TOPIC, rate > 0 ? "0" : "5", err, sizeof(err));
    if (!kp) {
        fprintf(stderr, "bench: relay: %s\n", err);
        return -1;
    }
    pacer_conf pcf = {.kp = kp, .topic = RELAY_TOPIC, .key = RELAY_KEY, .rate = rate, .window = window};
    pacer *pc = pacer_start(&pcf, err, sizeof(err));
    if (!pc) {
        fprintf(stderr, "bench: %s\n", err);
        kprod_free(kp);
        return -1;
    }
    vlog("relay: measuring %s", rate > 0 ? "at a fixed rate" : "saturated");
    int rc = drive(p, pc, g_opts.warmup_s);
    double warmed;
    if (rc == 0) rc = warm_until_healthy(p, pc, NULL, &r->hl, &warmed);
    machine_snapshot m0, m1;
    machine_use u;
    machine_snap(&m0);
    procstat n0[RELAY_NODES], n1[RELAY_NODES], r0, r1;
    for (int i = 0; i < RELAY_NODES; i++) procstat_read(nodes[i].p.pid, &n0[i]);
    procstat_read(rs->p.pid, &r0);
    uint64_t d0 = pool_total(p), p0 = pacer_produced(pc);
    double t0 = now_s();
    pool_latency(p, 1);
    if (rc == 0) rc = drive(p, pc, g_opts.duration_s);
    r->secs = now_s() - t0;
    r->delivered = pool_total(p) - d0;
    r->produced = pacer_produced(pc) - p0;
    for (int i = 0; i < RELAY_NODES; i++) {
        procstat_read(nodes[i].p.pid, &n1[i]);
        r->nodes_cpu += n1[i].cpu_s - n0[i].cpu_s;
    }
    procstat_read(rs->p.pid, &r1);
    r->redis_cpu = r1.cpu_s - r0.cpu_s;
    r->h = *pool_hist(p);
    pool_latency(p, 0);
    machine_snap(&m1);
    machine_usage(&m0, &m1, &u);
    health_init(&r->hl);
    health_machine(&r->hl, &u);
    pacer_stop(pc);
    kprod_free(kp);
    r->ok = rc == 0 && r->delivered > 0;
    return r->ok ? 0 : -1;
}

/* One placement: Redis and three nodes of their own; connection 0 subscribes
 * on node 0 first (making it the owner), then the others subscribe on node 0
 * too (relayed = 0) or alternately on nodes 1 and 2. */
static int relay_run(const kafka_svc *k, int relayed, relay_phase *lat, relay_phase *thr) {
    redis_svc rs;
    node_svc nodes[RELAY_NODES];
    pool *p = NULL;
    int rc = -1, subs = g_opts.relay_subs, started = 0;
    char addr[64];
    memset(nodes, 0, sizeof(nodes));
    if (redis_start(&rs) < 0) return -1;
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", rs.port);
    for (; started < RELAY_NODES; started++) {
        char id[32];
        snprintf(id, sizeof(id), "relay-%s-%d", relayed ? "r" : "o", started);
        if (node_start(&nodes[started], k, addr, id, NULL) < 0) goto out;
    }
    if (!(p = pool_new(POOL_SUBWAY, (size_t)subs + 1))) goto out;
    for (int i = 0; i <= subs; i++) {
        pool_set_feed(p, (size_t)i, RELAY_TOPIC, RELAY_KEY);
        if (i > 0 && relayed) pool_set_port(p, (size_t)i, nodes[1 + (i % 2)].port);
    }
    pool_connect(p, nodes[0].port, NULL);
    if (pool_wait_connected(p, 60) < 0) {
        fprintf(stderr, "bench: relay: %zu of %zu connected (%s)\n", pool_connected(p), pool_count(p), pool_err(p));
        goto out;
    }
    pool_subscribe_range(p, 0, 1);
    if (pool_wait_subscribed_n(p, 1, 30) < 0) {
        fprintf(stderr, "bench: relay: the owner's subscriber did not subscribe (%s)\n", pool_err(p));
        goto out;
    }
    pool_subscribe(p);
    if (pool_wait_subscribed(p, 60) < 0) {
        fprintf(stderr, "bench: relay: %zu of %zu subscribed (%s)\n", pool_subscribed(p), pool_count(p), pool_err(p));
        goto out;
    }
    vlog("relay: %d subscribers subscribed", subs + 1);
    uint64_t window = 2000000u / (uint64_t)(subs + 1);
    window = window < 1000 ? 1000 : window > 8000 ? 8000 : window;
    rc = 0;
    if (relay_measure(k, p, nodes, &rs, RELAY_RATE, 0, lat) < 0) rc = -1;
    if (relay_measure(k, p, nodes, &rs, 0, window, thr) < 0) rc = -1;
out:
    pool_free(p);
    for (int i = 0; i < RELAY_NODES; i++) svc_stop(&nodes[i].p);
    svc_stop(&rs.p);
    return rc;
}

/* "delivered/s, p99" of the published line of placement and phase, or "". */
static const char *relay_prev(const char *placement, const char *phase) {
    const char *pl = prev_find_str("relay", placement, "phase", phase, "subscribers",
                                   (double)(g_opts.relay_subs + 1));
    if (!pl) return "";
    return fmt_str("%s/s, %s", fmt_int(prev_num(pl, "delivered_per_s")),
                   fmt_us((uint64_t)(prev_num(pl, "latency_p99_us") * 1000)));
}

static void relay_row(tab *t, const char *placement, const char *phase, const relay_phase *r) {
    if (!r->ok) {
        tab_row(t, placement, phase, "FAILED", "", "", "", "", "", "", "");
        return;
    }
    tab_row(t, placement, fmt_str("%s%s", phase, r->hl.ok ? "" : " (UNHEALTHY)"),
            fmt_int((double)r->delivered / r->secs), fmt_int((double)r->produced / r->secs),
            fmt_us(hist_pct(&r->h, 50)), fmt_us(hist_pct(&r->h, 99)), fmt_us(hist_pct(&r->h, 100)),
            fmt_f("%.0f%%", 100 * r->nodes_cpu / r->secs), fmt_f("%.0f%%", 100 * r->redis_cpu / r->secs),
            relay_prev(placement, phase));
    jrec *j = jr_begin("relay", placement);
    jr_str(j, "phase", phase);
    jr_int(j, "subscribers", g_opts.relay_subs + 1);
    jr_num(j, "duration_s", r->secs);
    jr_int(j, "delivered", (long long)r->delivered);
    jr_num(j, "delivered_per_s", (double)r->delivered / r->secs);
    jr_int(j, "produced", (long long)r->produced);
    jr_num(j, "nodes_cpu_s", r->nodes_cpu);
    jr_num(j, "redis_cpu_s", r->redis_cpu);
    jr_hist(j, "latency", &r->h);
    health_json(j, &r->hl);
    jr_end(j);
}

int scenario_relay(void) {
    static const char *const topics[] = {RELAY_TOPIC ":1", NULL};
    static const char *const cols[] = {"subscribers on", "phase", "delivered rec/s", "feed rec/s", "p50", "p99",
                                       "max", "3 nodes CPU", "Redis CPU", "previous rec/s, p99"};
    kafka_svc k;
    relay_phase *r = calloc(4, sizeof(*r));
    int rc = 0;
    if (!r) abort();
    if (kafka_start(&k, topics) < 0) {
        free(r);
        return -1;
    }
    if (relay_run(&k, 0, &r[0], &r[1]) < 0) rc = -1;
    if (relay_run(&k, 1, &r[2], &r[3]) < 0) rc = -1;
    kafka_stop(&k);
    char title[200], lat[64];
    snprintf(title, sizeof(title), "relay: %d subscribers + 1 on the owner, 3 nodes coordinated through Redis",
             g_opts.relay_subs);
    snprintf(lat, sizeof(lat), "%d rec/s", RELAY_RATE);
    tab *t = tab_new(title, 10, cols);
    relay_row(t, "owner", lat, &r[0]);
    relay_row(t, "owner", "saturated", &r[1]);
    relay_row(t, "other 2 nodes (relayed)", lat, &r[2]);
    relay_row(t, "other 2 nodes (relayed)", "saturated", &r[3]);
    health hl;
    health_init(&hl);
    for (int i = 0; i < 4; i++)
        if (r[i].ok && !r[i].hl.ok) health_require(&hl, 0, "%s", r[i].hl.why);
    if (!hl.ok) {
        health_note(t, "relay vs owner", &hl);
        r[0].ok = r[2].ok = 0;  /* no verdicts below */
        r[1].ok = r[3].ok = 0;
    }
    if (r[0].ok && r[2].ok)
        tab_note(t, "Relay adds %.2f ms at p50 and %.2f ms at p99 at %d records/s.",
                 ((double)hist_pct(&r[2].h, 50) - (double)hist_pct(&r[0].h, 50)) / 1e6,
                 ((double)hist_pct(&r[2].h, 99) - (double)hist_pct(&r[0].h, 99)) / 1e6, RELAY_RATE);
    if (r[1].ok && r[3].ok)
        tab_note(t, "Saturated: relayed/owner delivered = %.2f.",
                 ((double)r[3].delivered / r[3].secs) / ((double)r[1].delivered / r[1].secs));
    tab_note(t, "In the relayed placement the owner (node 0) keeps one subscriber, so it owns the feed and relays "
             "its records through Redis to nodes 1 and 2, which hold the other subscribers.");
    prev_note(t, prev_find("relay", "owner", (const char *)NULL));
    tab_print(t);
    free(r);
    return rc;
}
