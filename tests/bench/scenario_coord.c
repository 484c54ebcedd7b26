/* scenario_coord.c -- Redis coordination at scale without client sockets: simulated nodes drive coord/ as a node does; subscribes/s ceilings and Redis's steady-state load per feed. */
/*
 * Each simulated node is a coord_redis instance on an event loop of the
 * bench, with the node's default lease (3000 ms), node TTL and reap interval.
 * It does what broker/cluster.c does with coordination and nothing else:
 *   - a subscription is one coord_acquire (the node calls it for every
 *     SUBSCRIBE, not once per feed: cluster_acquire);
 *   - every third of a lease, for every feed it holds, an owner calls
 *     coord_renew and any other node coord_claim (cluster.c's lease_tick);
 *   - coord_redis itself beats the node's liveness key and reaps.
 * No Kafka, no sockets to clients: what is measured is coordination alone.
 * If cluster.c's lease policy changes, lease_tick() below must follow.
 */
#include "tests/bench/bench.h"

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "broker/log.h"
#include "coord/coord.h"

#define CO_TOPIC "bench-coord"
#define CO_LEASE_MS 3000          /* the node's default --lease-ms */
#define CO_TINY_LEASE_MS 300      /* tiny runs: the same ticks, ten times as often */
#define CO_NODE_TTL_MS 5000       /* --node-ttl-ms */
#define CO_REAP_MS 1000           /* --reap-interval-ms */
#define CO_TIMEOUT_MS 10000       /* generous: the bench loads Redis on purpose */
#define CO_WINDOW 1000            /* acquires in flight per node */
#define CO_MAX_NODES 16
#define CO_THREADS 2              /* loops driving the nodes in the Redis ceiling */

/* ----------------------------------------------------------- a sim node */

typedef struct sim_node sim_node;

typedef struct sim_slot {
    sim_node *n;
    uint32_t feed;
} sim_slot;

struct sim_node {
    coord *c;
    char id[32];
    int up;
    uint32_t nfeeds;              /* feeds k-(base) .. k-(base + nfeeds - 1) */
    uint32_t base;
    uint8_t *own;                 /* per feed: this node owns it (as the last answer said) */
    sim_slot *slots;              /* per feed: the callbacks' cb_data */
    uint32_t next, inflight, done; /* the acquire pump */
    uint64_t errors, lost;        /* calls that failed; renewals that found the lease gone */
    uint32_t rounds_inflight;     /* lease-tick calls not answered yet */
};

static uint64_t co_lease_ms(void) {
    return g_opts.tiny ? CO_TINY_LEASE_MS : CO_LEASE_MS;
}

static void co_feed(uint32_t i, char *key, size_t size, coord_feed *f) {
    int len = snprintf(key, size, "k-%u", i);
    *f = (coord_feed){.topic = CO_TOPIC, .key = key, .key_len = (size_t)len};
}

static void on_state(void *cb_data, int up) {
    ((sim_node *)cb_data)->up = up;
}

static void pump(sim_node *n);

static void acquire_done(void *cb_data, const coord_result *r) {
    sim_slot *s = cb_data;
    sim_node *n = s->n;
    n->inflight--;
    n->done++;
    if (r->status == COORD_ERROR) n->errors++;
    else n->own[s->feed] = (uint8_t)r->own;
    pump(n);
}

/* Keeps CO_WINDOW acquires in flight until every feed is acquired once. */
static void pump(sim_node *n) {
    char key[32];
    coord_feed f;
    while (n->inflight < CO_WINDOW && n->next < n->nfeeds) {
        uint32_t i = n->next++;
        co_feed(n->base + i, key, sizeof(key), &f);
        n->inflight++;
        coord_acquire(n->c, &f, acquire_done, &n->slots[i]);
    }
}

static void tick_done(void *cb_data, const coord_result *r) {
    sim_slot *s = cb_data;
    sim_node *n = s->n;
    n->rounds_inflight--;
    if (r->status == COORD_ERROR) {
        n->errors++;
        return;
    }
    if (n->own[s->feed] && !r->own) n->lost++;
    n->own[s->feed] = (uint8_t)r->own;
}

/* cluster.c's lease_tick: owners renew, the others check the owner lives. */
static void lease_tick(sim_node *n) {
    char key[32];
    coord_feed f;
    if (!coord_up(n->c)) return;
    for (uint32_t i = 0; i < n->nfeeds; i++) {
        co_feed(n->base + i, key, sizeof(key), &f);
        n->rounds_inflight++;
        if (n->own[i]) coord_renew(n->c, &f, tick_done, &n->slots[i]);
        else coord_claim(n->c, &f, 0, tick_done, &n->slots[i]);
    }
}

static int sim_node_start(sim_node *n, struct event_base *base, int redis_port, int idx, uint32_t feed_base,
                          uint32_t nfeeds) {
    char addr[64], err[256];
    memset(n, 0, sizeof(*n));
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", redis_port);
    snprintf(n->id, sizeof(n->id), "bench-coord-%d", idx);
    n->base = feed_base;
    n->nfeeds = nfeeds;
    n->own = calloc(nfeeds ? nfeeds : 1, 1);
    n->slots = calloc(nfeeds ? nfeeds : 1, sizeof(*n->slots));
    if (!n->own || !n->slots) return -1;
    for (uint32_t i = 0; i < nfeeds; i++) n->slots[i] = (sim_slot){n, i};
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    coord_redis_opts o = {.addr = addr, .node_id = n->id, .node_addr = "127.0.0.1:1", .node_admin = "off",
                          .start_ms = (uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_nsec / 1000000,
                          .lease_ms = co_lease_ms(), .node_ttl_ms = CO_NODE_TTL_MS, .reap_interval_ms = CO_REAP_MS,
                          .timeout_ms = CO_TIMEOUT_MS};
    if (!(n->c = coord_redis_new(base, &o, err, sizeof(err)))) {
        fprintf(stderr, "bench: coord: %s\n", err);
        return -1;
    }
    coord_events ev = {.state = on_state, .cb_data = n};
    coord_set_events(n->c, &ev);
    return 0;
}

static void sim_node_free(sim_node *n) {
    coord_free(n->c);
    free(n->own);
    free(n->slots);
    memset(n, 0, sizeof(*n));
}

/* Runs base until every node is up, or timeout_s. */
static int wait_up(struct event_base *base, sim_node *nodes, int nn, double timeout_s) {
    for (double end = now_s() + timeout_s; now_s() < end;) {
        int up = 0;
        for (int i = 0; i < nn; i++) up += nodes[i].up;
        if (up == nn) return 0;
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        sleep_s(0.001);
    }
    fprintf(stderr, "bench: coord: nodes did not connect to Redis\n");
    return -1;
}

/* Every node acquires its feeds once; runs base until all are answered. */
static int acquire_all(struct event_base *base, sim_node *nodes, int nn, double timeout_s) {
    for (int i = 0; i < nn; i++) pump(&nodes[i]);
    for (double end = now_s() + timeout_s; now_s() < end;) {
        int busy = 0;
        for (int i = 0; i < nn; i++) busy |= nodes[i].done < nodes[i].nfeeds;
        if (!busy) return 0;
        event_base_loop(base, EVLOOP_ONCE);
    }
    fprintf(stderr, "bench: coord: acquires not answered within %.0f s\n", timeout_s);
    return -1;
}

/* --------------------------------------------------------- Redis's side */

typedef struct redis_figures {
    double cpu_s;                 /* used_cpu_user + used_cpu_sys */
    uint64_t calls;               /* every command, inside scripts too */
    uint64_t evalsha;             /* scripts the nodes ran (commands inside them are in calls) */
    uint64_t info;                /* INFO (the bench's own) */
} redis_figures;

static uint64_t stat_calls(const char *info, const char *cmd) {
    char pat[96];
    snprintf(pat, sizeof(pat), "cmdstat_%s:calls=", cmd);
    const char *p = strstr(info, pat);
    return p ? strtoull(p + strlen(pat), NULL, 10) : 0;
}

/* Sums calls= of every cmdstat_ line. */
static uint64_t all_calls(const char *info) {
    uint64_t n = 0;
    for (const char *p = info; (p = strstr(p, ":calls=")); p += 7) n += strtoull(p + 7, NULL, 10);
    return n;
}

static double info_num(const char *info, const char *field) {
    char pat[96];
    snprintf(pat, sizeof(pat), "\n%s:", field);
    const char *p = strstr(info, pat);
    return p ? atof(p + strlen(pat)) : 0;
}

static int redis_read(redisContext *rc, redis_figures *f) {
    memset(f, 0, sizeof(*f));
    redisReply *r = redisCommand(rc, "INFO cpu");
    if (!r || r->type != REDIS_REPLY_STRING) {
        if (r) freeReplyObject(r);
        return -1;
    }
    f->cpu_s = info_num(r->str, "used_cpu_user") + info_num(r->str, "used_cpu_sys");
    freeReplyObject(r);
    r = redisCommand(rc, "INFO commandstats");
    if (!r || r->type != REDIS_REPLY_STRING) {
        if (r) freeReplyObject(r);
        return -1;
    }
    f->calls = all_calls(r->str);
    f->evalsha = stat_calls(r->str, "evalsha");
    f->info = stat_calls(r->str, "info");
    freeReplyObject(r);
    return 0;
}

/* ------------------------------------------------------------- ceilings */

typedef struct ceiling_loop {
    struct event_base *base;
    sim_node *nodes;
    int nn;
    int rc;
    pthread_t th;
} ceiling_loop;

static void *ceiling_main(void *arg) {
    ceiling_loop *l = arg;
    l->rc = acquire_all(l->base, l->nodes, l->nn, 300);
    return NULL;
}

typedef struct ceiling {
    int nodes;
    uint32_t feeds_per_node;
    int repeat;                   /* the feeds exist already: a second subscriber each */
    double secs, rate;            /* subscribes (acquires) answered per second */
    double redis_pct, bench_pct;  /* CPU over the burst */
    double redis_us;              /* Redis CPU per subscribe */
    double cmds_per_sub;          /* commands Redis ran per subscribe, inside scripts too */
    uint64_t errors;
    health h;
} ceiling;

/* nodes simulated nodes on min(nodes, CO_THREADS) loops acquire feeds_per_node
 * feeds each as fast as they are answered, CO_WINDOW in flight per node;
 * with repeat, every feed is first acquired once (not timed). */
static int run_ceiling(int redis_port, pid_t redis_pid, ceiling *c) {
    int nloops = c->nodes < CO_THREADS ? c->nodes : CO_THREADS, rc = -1;
    ceiling_loop loops[CO_THREADS];
    sim_node *nodes = calloc((size_t)c->nodes, sizeof(*nodes));
    redisContext *rc_info = redisConnect("127.0.0.1", redis_port);
    memset(loops, 0, sizeof(loops));
    if (!nodes || !rc_info || rc_info->err) goto out;
    for (int l = 0, first = 0; l < nloops; l++) {
        loops[l].base = event_base_new();
        loops[l].nodes = nodes + first;
        loops[l].nn = c->nodes / nloops + (l < c->nodes % nloops);
        for (int i = 0; i < loops[l].nn; i++)
            if (!loops[l].base || sim_node_start(&loops[l].nodes[i], loops[l].base, redis_port, first + i,
                                                 (uint32_t)(first + i) * c->feeds_per_node, c->feeds_per_node) < 0)
                goto out;
        if (wait_up(loops[l].base, loops[l].nodes, loops[l].nn, 10) < 0) goto out;
        if (c->repeat && acquire_all(loops[l].base, loops[l].nodes, loops[l].nn, 300) < 0) goto out;
        for (int i = 0; c->repeat && i < loops[l].nn; i++) loops[l].nodes[i].next = loops[l].nodes[i].done = 0;
        first += loops[l].nn;
    }
    redis_figures r0, r1;
    procstat s0, s1;
    machine_snapshot m0, m1;
    machine_snap(&m0);
    procstat_read(redis_pid, &s0);
    if (redis_read(rc_info, &r0) < 0) goto out;
    double b0 = self_cpu_s(), t0 = now_s();
    int started = 0;
    rc = 0;
    for (; started < nloops; started++)
        if (pthread_create(&loops[started].th, NULL, ceiling_main, &loops[started]) != 0) {
            rc = -1;
            break;
        }
    for (int l = 0; l < started; l++) {
        pthread_join(loops[l].th, NULL);
        if (loops[l].rc < 0) rc = -1;
    }
    if (rc < 0) goto out;
    c->secs = now_s() - t0;
    c->bench_pct = 100.0 * (self_cpu_s() - b0) / c->secs;
    procstat_read(redis_pid, &s1);
    machine_snap(&m1);
    if (redis_read(rc_info, &r1) < 0) rc = -1;
    uint64_t subs = (uint64_t)c->nodes * c->feeds_per_node;
    c->rate = (double)subs / c->secs;
    c->redis_pct = 100.0 * (s1.cpu_s - s0.cpu_s) / c->secs;
    c->redis_us = (r1.cpu_s - r0.cpu_s) * 1e6 / (double)subs;
    c->cmds_per_sub = (double)(r1.calls - r0.calls - (r1.info - r0.info)) / (double)subs;
    for (int i = 0; i < c->nodes; i++) c->errors += nodes[i].errors;
    machine_use u;
    machine_usage(&m0, &m1, &u);
    health_init(&c->h);
    health_machine(&c->h, &u);
    health_require(&c->h, c->errors == 0, "%llu coordination calls failed", (unsigned long long)c->errors);
out:
    for (int i = 0; nodes && i < c->nodes; i++) sim_node_free(&nodes[i]);
    for (int l = 0; l < nloops; l++)
        if (loops[l].base) event_base_free(loops[l].base);
    if (rc_info) redisFree(rc_info);
    free(nodes);
    return rc;
}

/* --------------------------------------------------------- steady state */

typedef struct steady {
    int nodes;
    uint32_t feeds;               /* every node holds the same feeds: one owner each, the others claim */
    double secs;
    double scripts_per_s;         /* EVALSHA/s from the nodes */
    double calls_per_s;           /* every command Redis ran, inside scripts too */
    double redis_pct;             /* Redis CPU over the window */
    double owned_frac;            /* feeds with an owner among the nodes */
    uint64_t errors, lost;
    health h;
} steady;

typedef struct tick_ctx {
    sim_node *nodes;
    int nn;
} tick_ctx;

static void on_tick(evutil_socket_t fd, short what, void *arg) {
    tick_ctx *t = arg;
    for (int i = 0; i < t->nn; i++) lease_tick(&t->nodes[i]);
}

static int run_steady(int redis_port, pid_t redis_pid, steady *s) {
    int rc = -1;
    struct event_base *base = event_base_new();
    sim_node *nodes = calloc((size_t)s->nodes, sizeof(*nodes));
    redisContext *rc_info = redisConnect("127.0.0.1", redis_port);
    struct event *tick = NULL;
    tick_ctx tc = {nodes, s->nodes};
    if (!base || !nodes || !rc_info || rc_info->err) goto out;
    for (int i = 0; i < s->nodes; i++)
        if (sim_node_start(&nodes[i], base, redis_port, i, 0, s->feeds) < 0) goto out;
    if (wait_up(base, nodes, s->nodes, 10) < 0 || acquire_all(base, nodes, s->nodes, 300) < 0) goto out;
    /* The node's lease tick, then a whole tick period before measuring so
     * the window holds whole periods only. */
    uint64_t every = co_lease_ms() / 3;
    struct timeval tv = {(time_t)(every / 1000), (suseconds_t)(every % 1000) * 1000};
    if (!(tick = event_new(base, -1, EV_PERSIST, on_tick, &tc)) || event_add(tick, &tv) < 0) goto out;
    for (double end = now_s() + (double)every / 1000 * 1.2; now_s() < end;) event_base_loop(base, EVLOOP_ONCE);
    redis_figures r0, r1;
    procstat p0, p1;
    machine_snapshot m0, m1;
    int periods = g_opts.tiny ? 3 : (int)(g_opts.duration_s * 1000 / (double)every + 0.5);
    if (periods < 2) periods = 2;
    machine_snap(&m0);
    procstat_read(redis_pid, &p0);
    if (redis_read(rc_info, &r0) < 0) goto out;
    double t0 = now_s();
    for (double end = t0 + periods * (double)every / 1000; now_s() < end;) event_base_loop(base, EVLOOP_ONCE);
    s->secs = now_s() - t0;
    if (redis_read(rc_info, &r1) < 0) goto out;
    procstat_read(redis_pid, &p1);
    machine_snap(&m1);
    s->scripts_per_s = (double)(r1.evalsha - r0.evalsha) / s->secs;
    s->calls_per_s = (double)(r1.calls - r0.calls - (r1.info - r0.info)) / s->secs;
    s->redis_pct = 100.0 * (p1.cpu_s - p0.cpu_s) / s->secs;
    uint64_t owned = 0;
    for (uint32_t f = 0; f < s->feeds; f++) {
        int o = 0;
        for (int i = 0; i < s->nodes; i++) o |= nodes[i].own[f];
        owned += (uint64_t)o;
    }
    s->owned_frac = s->feeds ? (double)owned / s->feeds : 0;
    for (int i = 0; i < s->nodes; i++) {
        s->errors += nodes[i].errors;
        s->lost += nodes[i].lost;
    }
    machine_use u;
    machine_usage(&m0, &m1, &u);
    health_init(&s->h);
    health_machine(&s->h, &u);
    health_require(&s->h, s->errors == 0, "%llu coordination calls failed", (unsigned long long)s->errors);
    rc = 0;
out:
    if (tick) event_free(tick);
    for (int i = 0; nodes && i < s->nodes; i++) sim_node_free(&nodes[i]);
    if (base) event_base_free(base);
    if (rc_info) redisFree(rc_info);
    free(nodes);
    return rc;
}

/* ------------------------------------------------------------- scenario */

static int coord_tables(void);

static void ceiling_row(tab *t, const char *what, ceiling *c) {
    const char *pl = prev_find("coord", "ceiling", "nodes", (double)c->nodes, "repeat", (double)c->repeat,
                               (const char *)NULL);
    tab_row(t, what, fmt_int(c->nodes), fmt_int((double)c->nodes * c->feeds_per_node),
            fmt_str("%s%s", fmt_int(c->rate), c->h.ok ? "" : " (UNHEALTHY)"), fmt_f("%.0f%%", c->redis_pct),
            fmt_f("%.1f us", c->redis_us), c->redis_us > 0 ? fmt_int(1e6 / c->redis_us) : "",
            fmt_f("%.1f", c->cmds_per_sub), fmt_f("%.0f%%", c->bench_pct), pl ? fmt_int(prev_num(pl, "subscribes_per_s")) : "");
    jrec *j = jr_begin("coord", "ceiling");
    jr_int(j, "nodes", c->nodes);
    jr_int(j, "feeds_per_node", c->feeds_per_node);
    jr_int(j, "repeat", c->repeat);
    jr_int(j, "window_per_node", CO_WINDOW);
    jr_num(j, "duration_s", c->secs);
    jr_num(j, "subscribes_per_s", c->rate);
    jr_num(j, "redis_cpu_pct", c->redis_pct);
    jr_num(j, "redis_cpu_us_per_subscribe", c->redis_us);
    jr_num(j, "redis_commands_per_subscribe", c->cmds_per_sub);
    jr_num(j, "bench_cpu_pct", c->bench_pct);
    jr_int(j, "errors", (long long)c->errors);
    health_json(j, &c->h);
    jr_end(j);
}

int scenario_coord(void) {
    int level = log_level;
    log_level = g_opts.verbose ? LOG_INFO : LOG_WARN; /* coord/ logs each session start */
    int rc = coord_tables();
    log_level = level;
    return rc;
}

static int coord_tables(void) {
    redis_svc rs = {0};
    int failed = 0;
    uint32_t burst = g_opts.tiny ? 500 : 100000;

    /* Subscribes/s: one node, new feeds and existing ones; then as many
     * nodes as it takes to find Redis's own ceiling. */
    static const char *const ccols[] = {"burst", "nodes", "subscribes", "subscribes/s", "Redis CPU",
                                        "Redis CPU per subscribe", "Redis ceiling (1 core)", "Redis commands per subscribe",
                                        "bench CPU", "previous subscribes/s"};
    tab *t = tab_new("coord: subscribes/s through Redis coordination (acquire, as the node sends it per SUBSCRIBE)", 10,
                     ccols);
    struct { int nodes, repeat; const char *what; } cs[] = {
        {1, 0, "new feeds, one node"}, {1, 1, "existing feeds, one node"}, {4, 0, "new feeds, 4 nodes"}};
    health all;
    health_init(&all);
    for (size_t i = 0; i < sizeof(cs) / sizeof(cs[0]); i++) {
        ceiling c = {.nodes = cs[i].nodes, .repeat = cs[i].repeat, .feeds_per_node = burst / (uint32_t)cs[i].nodes};
        if (redis_start(&rs) < 0) return -1;
        vlog("coord: ceiling, %s", cs[i].what);
        if (run_ceiling(rs.port, rs.p.pid, &c) < 0) {
            fprintf(stderr, "bench: coord: %s failed\n", cs[i].what);
            failed++;
        } else {
            ceiling_row(t, cs[i].what, &c);
            if (!c.h.ok) health_require(&all, 0, "%s: %s", cs[i].what, c.h.why);
            if (i == 0 && c.h.ok)
                tab_note(t, "One node: %s subscribes/s through Redis coordination (goal >= 100,000): %s.", fmt_int(c.rate),
                         c.rate >= 100000 ? "met" : "NOT met");
        }
        svc_stop(&rs.p);
    }
    if (!all.ok) health_note(t, "subscribes/s", &all);
    tab_note(t, "A subscribe is one acquire.lua EVALSHA plus the node's two index SADDs, pipelined, %d in flight per "
             "node (no client sockets, no Kafka). Redis ceiling = 1 s / Redis CPU per subscribe: what Redis's one "
             "thread could answer if the nodes kept it busy. The nodes run on %d loop threads of the bench.",
             CO_WINDOW, CO_THREADS);
    prev_note(t, prev_find("coord", "ceiling", (const char *)NULL));
    tab_print(t);

    /* Steady state: nothing subscribes; leases are renewed and claimed. */
    static const char *const scols[] = {"nodes", "feeds per node", "scripts/s", "commands run/s (in scripts too)", "per node-feed per s", "Redis CPU",
                                        "Redis CPU per 1000 node-feeds", "owned", "lost leases", "previous scripts/s"};
    t = tab_new("coord: steady-state Redis load (lease renewals and owner checks, every lease/3 per feed)", 10, scols);
    int node_counts[] = {1, 4}, tiny_nodes[] = {1, 2};
    uint32_t feed_counts[] = {1000, 10000}, tiny_feeds[] = {20, 200};
    double per_nf[4] = {0};
    int k = 0;
    health sall;
    health_init(&sall);
    for (int a = 0; a < 2; a++)
        for (int b = 0; b < 2; b++, k++) {
            steady s = {.nodes = g_opts.tiny ? tiny_nodes[a] : node_counts[a],
                        .feeds = g_opts.tiny ? tiny_feeds[b] : feed_counts[b]};
            if (redis_start(&rs) < 0) return -1;
            vlog("coord: steady, %d nodes x %u feeds", s.nodes, s.feeds);
            if (run_steady(rs.port, rs.p.pid, &s) < 0) {
                fprintf(stderr, "bench: coord: steady state of %d nodes x %u feeds failed\n", s.nodes, s.feeds);
                failed++;
                svc_stop(&rs.p);
                continue;
            }
            svc_stop(&rs.p);
            double nf = (double)s.nodes * s.feeds;
            per_nf[k] = s.scripts_per_s / nf;
            if (!s.h.ok) health_require(&sall, 0, "%d x %u: %s", s.nodes, s.feeds, s.h.why);
            const char *pl = prev_find("coord", "steady", "nodes", (double)s.nodes, "feeds_per_node", (double)s.feeds,
                                       (const char *)NULL);
            tab_row(t, fmt_int(s.nodes), fmt_int(s.feeds), fmt_int(s.scripts_per_s), fmt_int(s.calls_per_s), fmt_f("%.3f", s.scripts_per_s / nf),
                    fmt_f(s.h.ok ? "%.1f%%" : "%.1f%% (UNHEALTHY)", s.redis_pct),
                    fmt_f("%.2f%% of a core", s.redis_pct * 1000 / nf), fmt_f("%.0f%%", 100 * s.owned_frac),
                    fmt_int((double)s.lost), pl ? fmt_int(prev_num(pl, "scripts_per_s")) : "");
            jrec *j = jr_begin("coord", "steady");
            jr_int(j, "nodes", s.nodes);
            jr_int(j, "feeds_per_node", s.feeds);
            jr_int(j, "lease_ms", (long long)co_lease_ms());
            jr_num(j, "duration_s", s.secs);
            jr_num(j, "scripts_per_s", s.scripts_per_s);
            jr_num(j, "commands_run_per_s", s.calls_per_s);
            jr_num(j, "scripts_per_node_feed_s", s.scripts_per_s / nf);
            jr_num(j, "redis_cpu_pct", s.redis_pct);
            jr_num(j, "owned_frac", s.owned_frac);
            jr_int(j, "lost_leases", (long long)s.lost);
            jr_int(j, "errors", (long long)s.errors);
            health_json(j, &s.h);
            jr_end(j);
        }
    /* Does a node's steady load grow with the feeds it holds? Per node-feed
     * constant means linear growth; the goal is a load flat in feeds. */
    if (sall.ok && per_nf[0] > 0 && per_nf[1] > 0)
        tab_note(t, "Steady-state load per node-feed: %.3f scripts/s at the smaller size, %.3f at 10x the feeds: the "
                 "load grows %s with the feeds a node holds (goal: flat): %s.", per_nf[0], per_nf[1],
                 per_nf[1] > 0.5 * per_nf[0] ? "linearly" : "less than linearly",
                 per_nf[1] > 0.5 * per_nf[0] ? "NOT met" : "met");
    else
        health_note(t, "steady state", &sall);
    tab_note(t, "Lease %d ms: every %d ms each node sends one script per feed it holds: renew.lua where it owns the "
             "feed, claim.lua where another node does (broker/cluster.c lease_tick), plus its heartbeat and reaping. "
             "Measured from INFO commandstats and INFO cpu over whole tick periods.", (int)co_lease_ms(),
             (int)co_lease_ms() / 3);
    prev_note(t, prev_find("coord", "steady", (const char *)NULL));
    tab_print(t);
    return failed ? -1 : 0;
}
