/* scenario_catchup.c -- live-feed latency around a large catch-up, and the catch-up's speed and exactness. */
#include "tests/bench/bench.h"

#include <pthread.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "proto/proto.h"

#define CU_TOPIC "bench-catchup"
#define CU_FETCH_WAIT_MS 10       /* the direct consumer's, as the node's default */
#define CU_LIVE_LINGER "0"        /* live records go one by one, as in the latency scenario */
#define CU_FILL_LINGER "20"       /* history goes in full batches */
/* The mock keeps about 5 MiB of batches per partition and drops the oldest
 * beyond (rdkafka_mock.c: max_size); history stays below this, leaving
 * room for the live records. */
#define CU_MOCK_PART_BYTES (3.5 * 1024 * 1024)
#define CU_RECORD_OVERHEAD 10     /* bytes of a v2 record besides its value (no key) */
#define CU_TIMEOUT_S (60.0 + g_opts.cu_records / 5000.0)   /* the catch-up must go LIVE within this */
#define CU_DRAIN_S 30.0           /* and then get the live records up to the log end */
#define CU_MAX_PARTS 256
#define CU_SETTLE_PCT 25.0        /* Kafka has digested the history below this much CPU */
#define CU_SETTLE_MAX_S 60.0
/* Apache Kafka under the live load after the history: p99s of 200-700 ms
 * for the direct consumer too for the first ~15 s on the 2-core VM. */
#define CU_APACHE_WARM_S 15.0

/* ------------------------------------------------------ catch-up clients */

/* The catch-up subscribers: a pool of their own, run by a thread of its
 * own, so that reading the history does not hold up the live pool's loop
 * (it still takes its share of the machine's CPU). */
typedef struct cu_clients {
    pool *p;
    int port;
    pthread_t th;
    _Atomic int sent;             /* SUBSCRIBE sent */
    _Atomic int live;             /* every client got its LIVE */
    _Atomic int failed;
    _Atomic int stop;
    _Atomic int done;             /* the thread is over */
    _Atomic uint64_t want;        /* stop once every client holds this many records (0: not known yet) */
    double t_sub;                 /* SUBSCRIBE sent (now_s) */
    double cpu_s;                 /* the thread's CPU from SUBSCRIBE to the last LIVE */
} cu_clients;

static double thread_cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *cu_clients_main(void *arg) {
    cu_clients *cc = arg;
    size_t n = pool_count(cc->p);
    pool_connect(cc->p, cc->port, NULL);
    if (pool_wait_connected(cc->p, 30) < 0) {
        atomic_store(&cc->failed, 1);
        atomic_store(&cc->done, 1);
        return NULL;
    }
    double cpu0 = thread_cpu_s();
    cc->t_sub = now_s();
    pool_subscribe(cc->p);
    atomic_store(&cc->sent, 1);
    while (!atomic_load(&cc->stop)) {
        pool_run(cc->p, 10);
        if (pool_failed(cc->p)) {
            atomic_store(&cc->failed, 1);
            break;
        }
        if (!atomic_load(&cc->live) && pool_live(cc->p) == n) {
            cc->cpu_s = thread_cpu_s() - cpu0;
            atomic_store(&cc->live, 1);
        }
        uint64_t want = atomic_load(&cc->want);
        if (want && pool_min(cc->p) >= want) break;
    }
    atomic_store(&cc->done, 1);
    return NULL;
}

/* ----------------------------------------------------------- the history */

static int cu_partitions(void) {
    if (g_opts.cu_partitions > 0) return g_opts.cu_partitions;
    if (g_opts.kafka_apache) return 1;
    double bytes = (double)g_opts.cu_records * (g_opts.value_len + CU_RECORD_OVERHEAD);
    int n = (int)(bytes / CU_MOCK_PART_BYTES) + 1;
    return n > CU_MAX_PARTS ? CU_MAX_PARTS : n;
}

/* Writes the history round-robin over the partitions and checks that
 * Kafka holds all of it from offset 0. */
static int cu_fill(const kafka_svc *k, int nparts, double *rate) {
    char err[512];
    kprod *kp = kprod_new(k->bootstrap, CU_TOPIC, CU_FILL_LINGER, err, sizeof(err));
    if (!kp) {
        fprintf(stderr, "bench: catchup: %s\n", err);
        return -1;
    }
    int rc = -1;
    uint64_t records = (uint64_t)g_opts.cu_records;
    double t0 = now_s();
    for (uint64_t i = 0; i < records; i++) {
        if (kprod_send(kp, NULL, 0, (int32_t)(i % (uint64_t)nparts)) < 0) {
            fprintf(stderr, "bench: catchup: producing the history failed at record %llu\n", (unsigned long long)i);
            goto out;
        }
        if (i % 1000 == 999) kprod_poll(kp);
    }
    if (kprod_flush(kp, 300) < 0 || kprod_failed(kp)) {
        fprintf(stderr, "bench: catchup: %llu of %llu history records acknowledged\n",
                (unsigned long long)kprod_acked(kp), (unsigned long long)records);
        goto out;
    }
    *rate = (double)records / (now_s() - t0);
    for (int p = 0; p < nparts; p++) {
        int64_t lo, hi, want = (int64_t)(records / (uint64_t)nparts + ((uint64_t)p < records % (uint64_t)nparts));
        if (kprod_watermarks(kp, p, &lo, &hi) < 0) {
            fprintf(stderr, "bench: catchup: no watermarks for %s/%d\n", CU_TOPIC, p);
            goto out;
        }
        if (lo != 0 || hi != want) {
            fprintf(stderr, "bench: catchup: %s/%d holds offsets [%lld, %lld), not [0, %lld)%s\n", CU_TOPIC, p,
                    (long long)lo, (long long)hi, (long long)want,
                    g_opts.kafka_apache ? "" : ": the mock keeps ~5 MiB per partition; use more --catchup-partitions");
            goto out;
        }
    }
    vlog("catchup: %llu history records over %d partitions at %.0f records/s", (unsigned long long)records, nparts,
         *rate);
    rc = 0;
out:
    kprod_free(kp);
    return rc;
}

/* Waits until Kafka's CPU over half a second falls below CU_SETTLE_PCT:
 * a JVM broker that has just taken a million records keeps busy for
 * seconds (flushes, GC, JIT), which would land in the baseline. */
static void cu_settle(const kafka_svc *k) {
    pid_t pid = kafka_pid(k);
    procstat a, b;
    double t0 = now_s(), pct = 0;
    if (!pid || procstat_read(pid, &a) < 0) return;
    while (now_s() - t0 < CU_SETTLE_MAX_S) {
        sleep_s(0.5);
        if (procstat_read(pid, &b) < 0) return;
        pct = 100.0 * (b.cpu_s - a.cpu_s) / 0.5;
        a = b;
        if (pct < CU_SETTLE_PCT) break;
    }
    vlog("catchup: Kafka settled at %.0f%% CPU after %.1f s", pct, now_s() - t0);
}

/* ------------------------------------------------------------ the windows */

/* What the live subscribers, and a direct consumer beside them, saw in
 * one window. */
typedef struct cu_window {
    const char *name;
    const char *key;              /* its JSON measurement name */
    double secs;
    uint64_t produced, got, dropped, got_direct;
    double node_pct, kafka_pct, bench_pct;
    procstat s0, s1;              /* the node's */
    procstat k0, k1;              /* Kafka's */
    hist h, hd;                   /* subscribers', the direct consumer's */
    health hl;                    /* machine; the baseline's direct consumer too */
} cu_window;

typedef struct cu_run {
    kafka_svc k;
    node_svc n;
    pool *live;
    kprod *kp;
    pacer *pc;
    kcons *kc;                    /* the control: a librdkafka consumer of the same records */
    cu_clients cc;
    int cc_started;
    cu_window w[3];               /* before, during, after the catch-up */
    int64_t lo[CU_MAX_PARTS], hi[CU_MAX_PARTS];
    double fill_rate;
    double warm_s;                /* warm-up before the baseline */
} cu_run;

/* Measures the live pool for secs, or (cc non-NULL) until the catch-up
 * clients are LIVE or failed. */
static int cu_window_run(cu_run *r, cu_clients *cc, double secs, cu_window *w) {
    pid_t kpid = kafka_pid(&r->k);
    machine_snapshot m0, m1;
    machine_use u;
    machine_snap(&m0);
    procstat_read(r->n.p.pid, &w->s0);
    if (kpid) procstat_read(kpid, &w->k0);
    double b0 = self_cpu_s(), t0 = now_s();
    uint64_t d0 = pool_total(r->live), p0 = pacer_produced(r->pc), x0 = pool_dropped(r->live);
    uint64_t c0 = kcons_records(r->kc);
    pool_latency(r->live, 1);
    kcons_take_hist(r->kc, &w->hd);   /* drops what came before */
    if (!cc) {
        if (drive(r->live, r->pc, secs) < 0) return -1;
    } else
        while (!atomic_load(&cc->live) && !atomic_load(&cc->failed)) {
            if (drive(r->live, r->pc, 0.05) < 0) return -1;
            if (now_s() - t0 > CU_TIMEOUT_S) {
                fprintf(stderr, "bench: catchup: no LIVE after %.0f s\n", CU_TIMEOUT_S);
                return -1;
            }
        }
    w->secs = now_s() - t0;
    procstat_read(r->n.p.pid, &w->s1);
    if (kpid) procstat_read(kpid, &w->k1);
    w->node_pct = 100.0 * (w->s1.cpu_s - w->s0.cpu_s) / w->secs;
    w->kafka_pct = kpid ? 100.0 * (w->k1.cpu_s - w->k0.cpu_s) / w->secs : -1;
    w->bench_pct = 100.0 * (self_cpu_s() - b0) / w->secs;
    w->produced = pacer_produced(r->pc) - p0;
    w->got = pool_total(r->live) - d0;
    w->dropped = pool_dropped(r->live) - x0;
    w->got_direct = kcons_records(r->kc) - c0;
    w->h = *pool_hist(r->live);
    kcons_take_hist(r->kc, &w->hd);
    machine_snap(&m1);
    machine_usage(&m0, &m1, &u);
    health_init(&w->hl);
    health_machine(&w->hl, &u);
    if (w == &r->w[0]) health_direct(&w->hl, &w->hd, CU_FETCH_WAIT_MS); /* the baseline; during is the effect */
    return 0;
}

/* The run's settings every JSON line of the scenario carries. */
static void cu_json_common(jrec *j) {
    char args[512] = "";
    size_t off = 0;
    for (int i = 0; i < g_opts.nnode_args && off < sizeof(args); i++)
        off += (size_t)snprintf(args + off, sizeof(args) - off, "%s%s", i ? " " : "", g_opts.node_args[i]);
    jr_int(j, "history_records", g_opts.cu_records);
    jr_int(j, "partitions", cu_partitions());
    jr_int(j, "catchup_clients", g_opts.cu_clients);
    jr_str(j, "node_args", args);
}

static void cu_window_report(tab *t, const cu_window *w, int subs, double warm_s) {
    uint64_t want = w->produced * (uint64_t)subs;
    char who[64];
    const hist *hs[2] = {&w->h, &w->hd};
    for (int i = 0; i < 2; i++) {
        const hist *h = hs[i];
        uint64_t got = i ? w->got_direct : w->got, expect = i ? w->produced : want;
        snprintf(who, sizeof(who), i ? "direct consumer" : "%d subscribers", subs);
        const char *pl = prev_find("catchup", w->key, "subscribers", (double)subs, "history_records",
                                   (double)g_opts.cu_records, (const char *)NULL);
        double pp99 = prev_num(pl, i ? "direct_latency_p99_us" : "latency_p99_us");
        tab_row(t, i ? "" : fmt_str("%s%s", w->name, w->hl.ok ? "" : " (UNHEALTHY)"), who, fmt_f("%.1f", w->secs), fmt_int((double)w->produced / w->secs),
                fmt_us(hist_pct(h, 50)), fmt_us(hist_pct(h, 99)), fmt_us(hist_pct(h, 99.9)), fmt_us(hist_pct(h, 100)),
                fmt_int((double)h->n), fmt_f("%.4f", expect ? (double)got / (double)expect : 0),
                i ? "" : fmt_f("%.0f%%", w->node_pct), i ? "" : fmt_kb(w->s1.hwm_kb),
                i || w->kafka_pct < 0 ? "" : fmt_f("%.0f%%", w->kafka_pct), i ? "" : fmt_f("%.0f%%", w->bench_pct),
                isnan(pp99) ? "" : fmt_us((uint64_t)(pp99 * 1000)));
    }
    jrec *j = jr_begin("catchup", w->key);
    jr_int(j, "subscribers", subs);
    jr_int(j, "rate", g_opts.lat_rate);
    cu_json_common(j);
    jr_num(j, "warmup_s", warm_s);
    jr_num(j, "duration_s", w->secs);
    jr_int(j, "produced", (long long)w->produced);
    jr_int(j, "received", (long long)w->got);
    jr_int(j, "expected", (long long)want);
    jr_int(j, "dropped", (long long)w->dropped);
    jr_hist(j, "latency", &w->h);
    jr_int(j, "direct_received", (long long)w->got_direct);
    jr_hist(j, "direct_latency", &w->hd);
    jr_proc(j, "node", &w->s0, &w->s1);
    if (w->kafka_pct >= 0) jr_proc(j, "kafka", &w->k0, &w->k1);
    jr_num(j, "bench_cpu_pct", w->bench_pct);
    health_json(j, &w->hl);
    jr_end(j);
}

/* ----------------------------------------------------------- the checks */

/* Client i's records against the log: every offset of [lo, hi) of each
 * partition exactly once, LIVE's positions where its records put it, and
 * the history before LIVE. Writes what is wrong into why ("" when all is
 * right). */
static void cu_check(const pool *p, size_t i, const int64_t *lo, const int64_t *hi, int nparts, char *why,
                     size_t len) {
    const pool_tracked *tr = pool_tracked_get(p, i);
    uint64_t want = 0;
    int off = 0;
    why[0] = '\0';
#define CU_WHY(...) \
    if (off < (int)len) off += snprintf(why + off, len - (size_t)off, __VA_ARGS__)
    for (int q = 0; q < nparts; q++) want += (uint64_t)(hi[q] - lo[q]);
    if (!tr->live_at) CU_WHY("no LIVE; ");
    if (tr->gaps) CU_WHY("%llu offsets skipped; ", (unsigned long long)tr->gaps);
    if (tr->repeats) CU_WHY("%llu records repeated; ", (unsigned long long)tr->repeats);
    if (tr->records != want) CU_WHY("%llu records, the log has %llu; ", (unsigned long long)tr->records,
                                    (unsigned long long)want);
    if (tr->before_live < (uint64_t)g_opts.cu_records)
        CU_WHY("%llu records before LIVE, the history is %ld; ", (unsigned long long)tr->before_live,
               g_opts.cu_records);
    if (pool_dropped(p)) CU_WHY("DROPPED %llu; ", (unsigned long long)pool_dropped(p));
    for (uint32_t q = 0; q < tr->nparts; q++) {
        const pool_part *pp = &tr->parts[q];
        if ((int)q >= nparts) {
            if (pp->records || pp->live >= 0) CU_WHY("partition %u is not the topic's; ", q);
            continue;
        }
        int64_t at_live = pp->next_at_live >= 0 ? pp->next_at_live : lo[q];
        if (pp->records && (pp->first != lo[q] || pp->next != hi[q]))
            CU_WHY("partition %u: offsets [%lld, %lld), the log [%lld, %lld); ", q, (long long)pp->first,
                   (long long)pp->next, (long long)lo[q], (long long)hi[q]);
        if (tr->live_at && pp->live != at_live)
            CU_WHY("partition %u: LIVE says %lld, the records %lld; ", q, (long long)pp->live, (long long)at_live);
    }
#undef CU_WHY
}

/* ------------------------------------------------------------ the scenario */

/* Stops the catch-up clients' thread and waits for it (then its pool is
 * ours to read). */
static void cu_clients_stop(cu_run *r) {
    if (!r->cc_started) return;
    atomic_store(&r->cc.stop, 1);
    pthread_join(r->cc.th, NULL);
    r->cc_started = 0;
}

/* Stops the producer, waits until the catch-up clients hold every record
 * up to the log end, and stops them. */
static int cu_drain(cu_run *r, int nparts) {
    pacer_stop(r->pc);
    r->pc = NULL;
    if (kprod_flush(r->kp, 10) < 0) fprintf(stderr, "bench: catchup: live records not all acknowledged\n");
    uint64_t want = 0;
    for (int q = 0; q < nparts; q++) {
        if (kprod_watermarks(r->kp, q, &r->lo[q], &r->hi[q]) < 0) {
            fprintf(stderr, "bench: catchup: no watermarks for %s/%d\n", CU_TOPIC, q);
            return -1;
        }
        want += (uint64_t)(r->hi[q] - r->lo[q]);
    }
    atomic_store(&r->cc.want, want);
    for (double end = now_s() + CU_DRAIN_S; now_s() < end && !atomic_load(&r->cc.done);)
        pool_run(r->live, 10);    /* keeps the live subscribers read */
    cu_clients_stop(r);
    return 0;
}

static void cu_report(cu_run *r, int nparts, int *bad) {
    static const char *const lcols[] = {"live feed", "receiver", "seconds", "records/s", "p50", "p99", "p99.9",
                                        "max", "samples", "received/expected", "node CPU", "node peak RSS",
                                        "Kafka CPU", "bench CPU", "previous p99"};
    static const char *const ccols[] = {"catch-up", "records before LIVE", "first record after", "LIVE after",
                                        "records/s", "MiB/s of values", "client CPU", "every record exactly once"};
    int subs = g_opts.cu_subs;
    char title[300];
    snprintf(title, sizeof(title),
             "catchup: %d live subscribers of %s/* at %d records/s, %d catch-up%s of %s records over %d partition%s "
             "(Kafka: %s)",
             subs, CU_TOPIC, g_opts.lat_rate, g_opts.cu_clients, g_opts.cu_clients == 1 ? "" : "s",
             fmt_int((double)g_opts.cu_records), nparts, nparts == 1 ? "" : "s", kafka_name());
    tab *t = tab_new(title, 15, lcols);
    for (int i = 0; i < 3; i++) cu_window_report(t, &r->w[i], subs, r->warm_s);
    health hl;
    health_init(&hl);
    for (int i = 0; i < 3; i++)
        if (!r->w[i].hl.ok) health_require(&hl, 0, "%s: %s", r->w[i].name, r->w[i].hl.why);
    health_note(t, "before, during and after", &hl);
    for (int i = 0; i < 2 && hl.ok; i++) {
        const hist *b = i ? &r->w[0].hd : &r->w[0].h, *d = i ? &r->w[1].hd : &r->w[1].h,
                   *a = i ? &r->w[2].hd : &r->w[2].h;
        tab_note(t, "%s p99: %s before the catch-up, %s during it (%+.2f ms), %s after its LIVE.",
                 i ? "The direct consumer's" : "The live subscribers'", fmt_us(hist_pct(b, 99)),
                 fmt_us(hist_pct(d, 99)), ((double)hist_pct(d, 99) - (double)hist_pct(b, 99)) / 1e6,
                 fmt_us(hist_pct(a, 99)));
    }
    tab_note(t, "Live subscribers and catch-up subscribe to the every-key feed of the topic, on protocol version 2 "
             "connections (%zu of %d live subscriptions got their LIVE right after SUBSCRIBED). Live records: "
             "librdkafka, linger.ms=%s, acks=1, 8-byte stamp + %d bytes, any partition; latency is produce call -> "
             "client recv; %.1f s of warm-up with them before the baseline. History: %s records written beforehand "
             "(%s records/s) round-robin over the partitions%s.",
             pool_live(r->live), subs, CU_LIVE_LINGER, g_opts.value_len - 8, r->warm_s,
             fmt_int((double)g_opts.cu_records), fmt_int(r->fill_rate),
             g_opts.kafka_apache || g_opts.cu_partitions
                 ? ""
                 : " (the mock keeps ~5 MiB per partition, so the history is spread to stay under 3.5 MiB each)");
    tab_note(t, "The catch-up client has a thread of its own in the bench and reads as fast as it can; 'during' runs "
             "from its SUBSCRIBE to its LIVE. The direct consumer (librdkafka, in a thread of the bench, every "
             "partition assigned at the log end, fetch.wait.max.ms=10 as the node) shows what Kafka and the machine "
             "add without the node. node peak RSS is VmHWM at the end of the window.%s",
             g_opts.kafka_apache ? ""
                                 : " The mock answers a fetch with one record batch per partition, and each live "
                                   "record is a batch of its own, so the catch-up crosses the live records one fetch "
                                   "each.");
    prev_note(t, prev_find("catchup", "live-before", "subscribers", (double)subs, "history_records",
                           (double)g_opts.cu_records, (const char *)NULL));
    tab_print(t);

    t = tab_new("catchup: the catch-up subscribers (start BEGINNING, on a thread of their own)", 8, ccols);
    for (size_t i = 0; i < pool_count(r->cc.p); i++) {
        const pool_tracked *tr = pool_tracked_get(r->cc.p, i);
        char why[1024], who[32];
        cu_check(r->cc.p, i, r->lo, r->hi, nparts, why, sizeof(why));
        double secs = tr->live_at ? tr->live_at - r->cc.t_sub : 0;
        double rate = secs > 0 ? (double)tr->before_live / secs : 0;
        if (why[0]) *bad = 1;
        snprintf(who, sizeof(who), "client %zu", i + 1);
        tab_row(t, who, fmt_int((double)tr->before_live),
                fmt_f("%.3f s", tr->first_at ? tr->first_at - r->cc.t_sub : 0), fmt_f("%.2f s", secs), fmt_int(rate),
                fmt_f("%.1f", rate * g_opts.value_len / 1048576.0),
                fmt_f("%.0f%%", secs > 0 ? 100 * r->cc.cpu_s / secs : 0), why[0] ? "NO" : "yes");
        if (why[0]) tab_note(t, "client %zu: %s", i + 1, why);
        jrec *j = jr_begin("catchup", "catchup");
        jr_int(j, "client", (long long)i + 1);
        jr_str(j, "start", "beginning");
        cu_json_common(j);
        jr_int(j, "records_before_live", (long long)tr->before_live);
        jr_int(j, "records", (long long)tr->records);
        jr_num(j, "first_record_s", tr->first_at ? tr->first_at - r->cc.t_sub : -1);
        jr_num(j, "live_s", secs);
        jr_num(j, "records_per_s", rate);
        jr_num(j, "client_cpu_s", r->cc.cpu_s);
        jr_int(j, "gaps", (long long)tr->gaps);
        jr_int(j, "repeats", (long long)tr->repeats);
        jr_int(j, "exactly_once", !why[0]);
        jr_str(j, "problems", why);
        jr_end(j);
    }
    tab_note(t, "LIVE after = SUBSCRIBE sent -> LIVE received; records/s = records before LIVE / that. Exactly once: "
             "per partition, the client's offsets are every offset from the log start to the log end once the "
             "producer stopped, in order, none twice, no DROPPED, and LIVE's positions are where its records were. "
             "client CPU = the bench thread holding the catch-up clients, from SUBSCRIBE to the last LIVE. Node: "
             "--catchup-readers default, bench limits (--out-soft-limit 32 MiB).");
    tab_print(t);
}

int scenario_catchup(void) {
    int nparts = cu_partitions(), subs = g_opts.cu_subs, rc = -1, bad = 0;
    if (nparts > CU_MAX_PARTS) {
        fprintf(stderr, "bench: catchup: at most %d partitions\n", CU_MAX_PARTS);
        return -1;
    }
    char spec[80], err[512];
    snprintf(spec, sizeof(spec), CU_TOPIC ":%d", nparts);
    const char *const topics[] = {spec, NULL};
    /* Apache Kafka: the bench broker's retention (64 MiB a partition)
     * would cut the history. */
    static const char *const keep_all[] = {"retention.bytes=-1", "retention.ms=-1", NULL};
    cu_run *r = calloc(1, sizeof(*r));
    if (!r) return -1;
    r->w[0] = (cu_window){.name = "before the catch-up (baseline)", .key = "live-before"};
    r->w[1] = (cu_window){.name = "during the catch-up", .key = "live-during"};
    r->w[2] = (cu_window){.name = "after its LIVE", .key = "live-after"};

    if (kafka_start(&r->k, g_opts.kafka_apache ? NULL : topics) < 0) goto out;
    if (g_opts.kafka_apache && kafka_create_topics(r->k.bootstrap, topics, keep_all, err, sizeof(err)) < 0) {
        fprintf(stderr, "bench: catchup: %s\n", err);
        goto out;
    }
    if (cu_fill(&r->k, nparts, &r->fill_rate) < 0) goto out;
    cu_settle(&r->k);
    if (node_start(&r->n, &r->k, NULL, NULL, NULL) < 0) goto out;

    /* The live subscribers, their producer, and the baseline. */
    if (!(r->live = pool_new(POOL_SUBWAY, (size_t)subs))) goto out;
    for (int i = 0; i < subs; i++) pool_set_feed(r->live, (size_t)i, CU_TOPIC, NULL);
    if (pool_setup(r->live, r->n.port, "catchup/live") < 0) goto out;
    if (!(r->kc = kcons_start(r->k.bootstrap, CU_TOPIC, nparts, CU_FETCH_WAIT_MS, err, sizeof(err))) ||
        !(r->kp = kprod_new(r->k.bootstrap, CU_TOPIC, CU_LIVE_LINGER, err, sizeof(err)))) {
        fprintf(stderr, "bench: catchup: %s\n", err);
        goto out;
    }
    pacer_conf pcf = {.kp = r->kp, .topic = CU_TOPIC, .rate = g_opts.lat_rate};
    if (!(r->pc = pacer_start(&pcf, err, sizeof(err)))) {
        fprintf(stderr, "bench: catchup: %s\n", err);
        goto out;
    }
    r->warm_s = g_opts.warmup_s;
    if (g_opts.kafka_apache && !g_opts.tiny && r->warm_s < CU_APACHE_WARM_S) r->warm_s = CU_APACHE_WARM_S;
    if (drive(r->live, r->pc, r->warm_s) < 0) goto out;
    if (cu_window_run(r, NULL, g_opts.duration_s, &r->w[0]) < 0) goto out;

    /* The catch-up, measured from its SUBSCRIBE to its LIVE. */
    if (!(r->cc.p = pool_new(POOL_SUBWAY, (size_t)g_opts.cu_clients))) goto out;
    for (int i = 0; i < g_opts.cu_clients; i++) {
        pool_set_feed(r->cc.p, (size_t)i, CU_TOPIC, NULL);
        pool_set_start(r->cc.p, (size_t)i, PROTO_START_BEGINNING, 0);
        if (pool_track(r->cc.p, (size_t)i) < 0) goto out;
    }
    r->cc.port = r->n.port;
    if (pthread_create(&r->cc.th, NULL, cu_clients_main, &r->cc) != 0) goto out;
    r->cc_started = 1;
    while (!atomic_load(&r->cc.sent) && !atomic_load(&r->cc.failed))
        if (drive(r->live, r->pc, 0.001) < 0) goto out;
    vlog("catchup: catch-up subscribed");
    if (cu_window_run(r, &r->cc, 0, &r->w[1]) < 0) goto out;
    vlog("catchup: LIVE after %.2f s", r->w[1].secs);
    if (atomic_load(&r->cc.failed)) {
        cu_clients_stop(r);
        fprintf(stderr, "bench: catchup: the catch-up client failed: %s\n", pool_err(r->cc.p));
        goto out;
    }
    if (cu_window_run(r, NULL, g_opts.duration_s, &r->w[2]) < 0) goto out;
    if (cu_drain(r, nparts) < 0) goto out;
    if (atomic_load(&r->cc.failed)) fprintf(stderr, "bench: catchup: %s\n", pool_err(r->cc.p));
    cu_report(r, nparts, &bad);
    rc = bad ? -1 : 0;
    if (bad) fprintf(stderr, "bench: catchup: the catch-up did not get every record exactly once\n");
    if (r->w[0].got == 0 || r->w[1].got == 0) {
        fprintf(stderr, "bench: catchup: no live records arrived\n");
        rc = -1;
    }
out:
    pacer_stop(r->pc);
    cu_clients_stop(r);
    kcons_stop(r->kc);
    kprod_free(r->kp);
    pool_free(r->cc.p);
    pool_free(r->live);
    svc_stop(&r->n.p);
    kafka_stop(&r->k);
    free(r);
    return rc;
}
