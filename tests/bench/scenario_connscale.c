/* scenario_connscale.c -- as many subscribing connections as the node's fd limit allows, over 1000 feeds, Redis-coordinated. */
#include "tests/bench/bench.h"

#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "broker/partitioner.h"

#define SCALE_TOPIC "bench-scale"
#define SCALE_PARTS 12
#define SCALE_PER_CHILD 5000      /* connections per child process (each has its own fd limit) */
#define SCALE_MAX_CHILDREN 16
#define SCALE_FD_MARGIN 64        /* node fds kept free for Kafka, Redis, admin */
#define SCALE_RECORDS_PER_FEED 2
#define SCALE_TIMEOUT_S 60.0
#define SCALE_STUCK_S 10.0        /* no SUBSCRIBED for this long: report what there is */
#define PREV_S(v) fmt_f("%.2f s", v)

/* ------------------------------------------------------------ the child */

/* subway-bench --child pool PORT SRC_IP CONNS TOPIC FEEDS FIRST: CONNS
 * connections from SRC_IP, connection i following TOPIC/f-((FIRST+i) % FEEDS).
 * Says "connected OK FAILED" once all are welcomed; then serves commands:
 * "subscribe" (answer: "subscribed OK FAILED T_FIRST T_LAST" in CLOCK_MONOTONIC
 * seconds), "latency" (start measuring; answer: "latency"), "count" (answer: "count TOTAL MIN
 * P50_NS P99_NS MAX_NS"), "quit". */
int child_pool(int argc, char **argv) {
    if (argc != 7) {
        fprintf(stderr, "usage: subway-bench --child pool PORT SRC_IP CONNS TOPIC FEEDS FIRST\n");
        return 2;
    }
    int port = atoi(argv[1]);
    const char *src = argv[2], *topic = argv[4];
    int conns = atoi(argv[3]), feeds = atoi(argv[5]), first = atoi(argv[6]);
    pool *p = pool_new(POOL_SUBWAY, (size_t)conns);
    if (!p) return 1;
    for (int i = 0; i < conns; i++) {
        char key[32];
        snprintf(key, sizeof(key), "f-%d", (first + i) % feeds);
        pool_set_feed(p, (size_t)i, topic, key);
    }
    pool_connect(p, port, src);
    pool_wait_connected(p, SCALE_TIMEOUT_S);
    printf("connected %zu %zu %s\n", pool_connected(p), pool_failed(p), pool_err(p));
    fflush(stdout);
    fcntl(0, F_SETFL, O_NONBLOCK);
    char cmd[128];
    size_t len = 0;
    int subscribing = 0;
    size_t last_subscribed = 0;
    double last_progress = 0;
    for (;;) {
        pool_run(p, 5);
        if (subscribing && pool_subscribed(p) != last_subscribed) {
            last_subscribed = pool_subscribed(p);
            last_progress = now_s();
        }
        /* Done when all are answered, or none was for a while. */
        if (subscribing && (pool_subscribed(p) + pool_failed(p) >= pool_count(p) ||
                            now_s() - last_progress > SCALE_STUCK_S)) {
            subscribing = 0;
            printf("subscribed %zu %zu %.6f %.6f %s\n", pool_subscribed(p), pool_failed(p), pool_sub_first(p),
                   pool_sub_last(p), pool_err(p));
            fflush(stdout);
        }
        char ch;
        ssize_t r;
        while ((r = read(0, &ch, 1)) == 1) {
            if (ch != '\n') {
                if (len + 1 < sizeof(cmd)) cmd[len++] = ch;
                continue;
            }
            cmd[len] = '\0';
            len = 0;
            if (strcmp(cmd, "subscribe") == 0) {
                pool_subscribe(p);
                subscribing = 1;
                last_progress = now_s();
            } else if (strcmp(cmd, "latency") == 0) {
                pool_latency(p, 1);   /* records stamped from now on count: say so before any is produced */
                printf("latency\n");
                fflush(stdout);
            } else if (strcmp(cmd, "count") == 0) {
                hist *h = pool_hist(p);
                printf("count %llu %llu %llu %llu %llu\n", (unsigned long long)pool_total(p),
                       (unsigned long long)pool_min(p), (unsigned long long)hist_pct(h, 50),
                       (unsigned long long)hist_pct(h, 99), (unsigned long long)hist_pct(h, 100));
                fflush(stdout);
            } else if (strcmp(cmd, "quit") == 0) {
                r = 0;
                break;
            }
        }
        if (r == 0) break;
    }
    pool_free(p);
    return 0;
}

/* ----------------------------------------------------------- the parent */

/* The node's RSS once it stops moving (two reads 0.5 s apart within
 * 64 KiB), or after 5 s; at once in tiny runs. */
static void settled_rss(pid_t pid, procstat *ps) {
    procstat_read(pid, ps);
    if (g_opts.tiny) return;      /* toy sizes: the figures mean nothing, only that the steps run */
    for (double end = now_s() + 5; now_s() < end;) {
        procstat prev = *ps;
        sleep_s(0.5);
        procstat_read(pid, ps);
        if (labs(ps->rss_kb - prev.rss_kb) <= 64) break;
    }
}

/* Memory the node holds before the measured connections: Kafka's share
 * (every partition assigned, nothing produced), then every feed created
 * once, by a pool of one connection per feed. */
typedef struct primer {
    pool *p;
    int kafka_feeds;              /* connections [0, kafka_feeds): one feed per partition */
    procstat conns, kafka, feeds; /* settled RSS after each step */
} primer;

static int primer_run(primer *pr, const node_svc *n, int feeds) {
    if (!(pr->p = pool_new(POOL_SUBWAY, (size_t)feeds))) return -1;
    int first = 0, rest = feeds - 1, seen[SCALE_PARTS] = {0};
    char key[32];
    /* Feeds on a partition no earlier feed reads go first. */
    for (int f = 0; f < feeds; f++) {
        int len = snprintf(key, sizeof(key), "f-%d", f);
        int32_t part = partitioner_partition(PARTITIONER_MURMUR2, key, (size_t)len, SCALE_PARTS);
        int slot = part >= 0 && !seen[part] ? first++ : rest--;
        if (part >= 0) seen[part] = 1;
        pool_set_feed(pr->p, (size_t)slot, SCALE_TOPIC, key);
    }
    pr->kafka_feeds = first;
    pool_connect(pr->p, n->port, "127.0.0.9");
    if (pool_wait_connected(pr->p, SCALE_TIMEOUT_S) < 0) return -1;
    settled_rss(n->p.pid, &pr->conns);
    pool_subscribe_range(pr->p, 0, (size_t)first);
    if (pool_wait_subscribed_n(pr->p, (size_t)first, SCALE_TIMEOUT_S) < 0) return -1;
    settled_rss(n->p.pid, &pr->kafka);
    pool_subscribe_range(pr->p, (size_t)first, (size_t)feeds);
    if (pool_wait_subscribed(pr->p, SCALE_TIMEOUT_S) < 0) return -1;
    settled_rss(n->p.pid, &pr->feeds);
    return 0;
}

typedef struct child {
    pid_t pid;
    int to, from;
    int conns;
} child;

static long count_fds(pid_t pid) {
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
    DIR *d = opendir(path);
    if (!d) return -1;
    long n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

/* The soft "Max open files" of pid. */
static long fd_limit(pid_t pid) {
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/limits", (int)pid);
    FILE *f = fopen(path, "r");
    long v = -1;
    while (f && fgets(line, sizeof(line), f))
        if (strncmp(line, "Max open files", 14) == 0) v = strtol(line + 14, NULL, 10);
    if (f) fclose(f);
    return v;
}

static void send_all(child *c, int n, const char *cmd) {
    for (int i = 0; i < n; i++)
        if (write(c[i].to, cmd, strlen(cmd)) < 0) {}
}

/* Asks every child to count; sums. Returns 0 or -1. */
static int count_all(child *c, int n, uint64_t *total, uint64_t *min, uint64_t *p50, uint64_t *p99, uint64_t *max) {
    char line[256];
    *total = 0;
    *min = UINT64_MAX;
    *p50 = *p99 = *max = 0;
    send_all(c, n, "count\n");
    for (int i = 0; i < n; i++) {
        unsigned long long t, m, a, b, x;
        if (read_line(c[i].from, line, sizeof(line), 10) < 0 ||
            sscanf(line, "count %llu %llu %llu %llu %llu", &t, &m, &a, &b, &x) != 5)
            return -1;
        *total += t;
        if (m < *min) *min = m;
        if (a > *p50) *p50 = a;   /* the worst child's */
        if (b > *p99) *p99 = b;
        if (x > *max) *max = x;
    }
    return 0;
}

int scenario_connscale(void) {
    char topic_spec[64], redis_addr[64];
    snprintf(topic_spec, sizeof(topic_spec), "%s:%d", SCALE_TOPIC, SCALE_PARTS);
    const char *const topics[] = {topic_spec, NULL};
    kafka_svc k;
    redis_svc rs = {0};
    node_svc n = {0};
    child ch[SCALE_MAX_CHILDREN];
    primer pr = {0};
    int nch = 0, rc = -1, feeds = g_opts.scale_feeds;
    memset(ch, 0, sizeof(ch));

    if (kafka_start(&k, topics) < 0) return -1;
    if (redis_start(&rs) < 0) goto out;
    snprintf(redis_addr, sizeof(redis_addr), "127.0.0.1:%d", rs.port);
    if (node_start(&n, &k, redis_addr, NULL, NULL) < 0) goto out;
    sleep_s(0.5);
    procstat idle, conn_ps, sub_ps, end_ps;
    procstat_read(n.p.pid, &idle);
    long limit = fd_limit(n.p.pid), used = count_fds(n.p.pid);
    int conns = g_opts.scale_conns;
    if (limit > 0 && used >= 0 && conns > limit - used - feeds - SCALE_FD_MARGIN)
        conns = (int)(limit - used - feeds - SCALE_FD_MARGIN);
    if (primer_run(&pr, &n, feeds) < 0) {
        fprintf(stderr, "bench: connscale: priming the node with its %d feeds failed (%s)\n", feeds,
                pr.p ? pool_err(pr.p) : "out of memory");
        goto out;
    }
    vlog("connscale: node fd limit %ld, %ld in use: %d connections", limit, used, conns);

    /* Children, each with its own source address so no port range runs out. */
    for (int left = conns, first = 0; left > 0 && nch < SCALE_MAX_CHILDREN; nch++) {
        int c = left > SCALE_PER_CHILD ? SCALE_PER_CHILD : left;
        char port[16], src[32], cnt[16], fd[16], fst[16];
        snprintf(port, sizeof(port), "%d", n.port);
        snprintf(src, sizeof(src), "127.0.0.%d", 10 + nch);
        snprintf(cnt, sizeof(cnt), "%d", c);
        snprintf(fd, sizeof(fd), "%d", feeds);
        snprintf(fst, sizeof(fst), "%d", first);
        char *argv[] = {"subway-bench", "--child", "pool", port, src, cnt, SCALE_TOPIC, fd, fst, NULL};
        ch[nch].pid = spawn_self(argv, &ch[nch].to, &ch[nch].from);
        ch[nch].conns = c;
        if (ch[nch].pid < 0) goto out;
        left -= c;
        first += c;
    }
    double t0 = now_s();
    size_t connected = 0, failed = 0;
    char line[512];
    for (int i = 0; i < nch; i++) {
        size_t ok = 0, bad = 0;
        if (read_line(ch[i].from, line, sizeof(line), SCALE_TIMEOUT_S) < 0 || sscanf(line, "connected %zu %zu", &ok, &bad) != 2) {
            fprintf(stderr, "bench: connscale: child %d did not connect\n", i);
            goto out;
        }
        if (bad) fprintf(stderr, "bench: connscale: child %d: %s\n", i, line);
        connected += ok;
        failed += bad;
    }
    double connect_s = now_s() - t0;
    settled_rss(n.p.pid, &conn_ps);

    machine_snapshot m0, m1;
    machine_snap(&m0);
    send_all(ch, nch, "subscribe\n");
    size_t subscribed = 0;
    double first_t = 1e300, last_t = 0;
    for (int i = 0; i < nch; i++) {
        size_t ok = 0, bad = 0;
        double a, b;
        if (read_line(ch[i].from, line, sizeof(line), SCALE_TIMEOUT_S + 10) < 0 ||
            sscanf(line, "subscribed %zu %zu %lf %lf", &ok, &bad, &a, &b) != 4) {
            fprintf(stderr, "bench: connscale: child %d did not subscribe\n", i);
            goto out;
        }
        if (bad) fprintf(stderr, "bench: connscale: child %d: %s\n", i, line);
        subscribed += ok;
        failed += bad;
        if (a < first_t) first_t = a;
        if (b > last_t) last_t = b;
    }
    if (subscribed + failed < connected) {
        /* Some SUBSCRIBEs were never answered: keep the node's view. */
        char path[400];
        size_t size = 64u << 20;
        char *buf = malloc(size);
        snprintf(path, sizeof(path), "%s/connscale-stats.json", g_opts.tmpdir);
        FILE *f = fopen(path, "w");
        int len = buf ? http_get(n.admin_port, "/stats", buf, size) : -1;
        if (f && len > 0) fwrite(buf, 1, (size_t)len, f);
        if (f) fclose(f);
        free(buf);
        fprintf(stderr, "bench: connscale: WARNING: %zu SUBSCRIBEs unanswered after %.0f s without progress; "
                "node stats in %s%s\n", connected - subscribed - failed, SCALE_STUCK_S, path,
                g_opts.keep ? "" : " (removed at exit; run with --keep to keep it)");
    }
    machine_snap(&m1);
    machine_use use;
    machine_usage(&m0, &m1, &use);
    health hl;
    health_init(&hl);
    health_machine(&hl, &use);
    double sub_s = last_t > first_t ? last_t - first_t : 0;
    double subs_per_s = sub_s > 0 ? (double)subscribed / sub_s : 0;
    settled_rss(n.p.pid, &sub_ps);
    long long node_conns = node_counter(&n, "conns_accepted");

    /* Fan-out at this scale: a few records for every feed, produced once
     * every child measures (a record stamped before would not count). */
    send_all(ch, nch, "latency\n");
    for (int i = 0; i < nch; i++)
        if (read_line(ch[i].from, line, sizeof(line), 10) < 0 || strcmp(line, "latency") != 0) {
            fprintf(stderr, "bench: connscale: child %d did not start measuring\n", i);
            goto out;
        }
    char err[512];
    kprod *kp = kprod_new(k.bootstrap, SCALE_TOPIC, "5", err, sizeof(err));
    if (!kp) {
        fprintf(stderr, "bench: connscale: %s\n", err);
        goto out;
    }
    for (int r = 0; r < SCALE_RECORDS_PER_FEED; r++)
        for (int f = 0; f < feeds; f++) {
            char key[32];
            snprintf(key, sizeof(key), "f-%d", f);
            kprod_send(kp, key, strlen(key), -1);
        }
    kprod_flush(kp, 30);
    kprod_free(kp);
    /* Every connection asked for its feed, so every one should get its records. */
    uint64_t want = (uint64_t)connected * SCALE_RECORDS_PER_FEED, total = 0, min = 0, p50 = 0, p99 = 0, max = 0;
    double deadline = now_s() + (subscribed < connected ? 5 : 30);
    while (now_s() < deadline) {
        pool_run(pr.p, 0);
        if (count_all(ch, nch, &total, &min, &p50, &p99, &max) < 0) goto out;
        if (total >= want) break;
        sleep_s(0.2);
    }
    procstat_read(n.p.pid, &end_ps);

    /* Per connection: above the node with every feed already there and
     * Kafka assigned, so neither the feeds nor librdkafka's buffers count. */
    double per_conn = connected ? (double)(conn_ps.rss_kb - pr.feeds.rss_kb) * 1024.0 / (double)connected : 0;
    double per_sub = subscribed ? (double)(sub_ps.rss_kb - pr.feeds.rss_kb) * 1024.0 / (double)subscribed : 0;
    double kafka_kb = (double)(pr.kafka.rss_kb - pr.conns.rss_kb);
    int more_feeds = feeds - pr.kafka_feeds;
    double per_feed = more_feeds > 0 ? (double)(pr.feeds.rss_kb - pr.kafka.rss_kb) * 1024.0 / more_feeds : 0;
    char title[200];
    snprintf(title, sizeof(title), "connscale: %d connections over %d feeds (%d-partition topic), node with --redis",
             conns, feeds, SCALE_PARTS);
    static const char *const cols4[] = {"measure", "value", "goal", "previous"};
    const char *pl = prev_find("connscale", "subway+redis", "feeds", (double)feeds, (const char *)NULL);
#define PREV(key, fmtf) (pl && !isnan(prev_num(pl, key)) ? fmtf(prev_num(pl, key)) : "")
#define PREV_B(v) fmt_f("%.0f B", v)
#define PREV_KB(v) fmt_kb((long)(v))
    tab *t = tab_new(title, 4, cols4);
    tab_row(t, "connections subscribed / tried", fmt_f("%.0f", (double)subscribed), fmt_int(conns), PREV("subscribed", fmt_int));
    if (subscribed + failed < connected)
        tab_row(t, "SUBSCRIBEs never answered", fmt_int((double)(connected - subscribed - failed)), "0", "");
    tab_row(t, "node fd limit / fds before connecting", fmt_f("%.0f", (double)limit), fmt_int((double)used), "");
    tab_row(t, "connect + HELLO, all connections", fmt_f("%.2f s", connect_s), "", PREV("connect_s", PREV_S));
    tab_row(t, "subscribes/s (first SUBSCRIBE to last SUBSCRIBED)", fmt_int(subs_per_s),
            hl.ok ? ">= 20,000" : "no verdict: machine busy", PREV("subscribes_per_s", fmt_int));
    tab_row(t, "node RSS idle", fmt_kb(idle.rss_kb), "", PREV("node_idle_rss_kb", PREV_KB));
    tab_row(t, "Kafka's share: every partition assigned, nothing produced", fmt_kb((long)kafka_kb), "",
            PREV("node_kafka_kb", PREV_KB));
    tab_row(t, "node RSS per feed (the other feeds, one subscriber each)", fmt_f("%.0f B", per_feed), "",
            PREV("rss_bytes_per_feed", PREV_B));
    tab_row(t, "node RSS before the connections (every feed there)", fmt_kb(pr.feeds.rss_kb), "", "");
    tab_row(t, "node RSS connected (welcomed, no subscription)", fmt_kb(conn_ps.rss_kb), "",
            PREV("node_connected_rss_kb", PREV_KB));
    tab_row(t, "node RSS subscribed", fmt_kb(sub_ps.rss_kb), "", PREV("node_subscribed_rss_kb", PREV_KB));
    tab_row(t, "node RSS per connection, connected", fmt_f("%.0f B", per_conn), "",
            PREV("rss_bytes_per_conn_connected", PREV_B));
    tab_row(t, "node RSS per connection, subscribed", fmt_f("%.0f B", per_sub), "<= 4096 B",
            PREV("rss_bytes_per_conn_subscribed", PREV_B));
    tab_row(t, "node peak RSS", fmt_kb(end_ps.hwm_kb), "", PREV("node_peak_rss_kb", PREV_KB));
    tab_row(t, "fan-out: records received / expected", fmt_f("%.4f", want ? (double)total / (double)want : 0), "1.0000", "");
    tab_row(t, "fan-out: least records on one subscribed connection", fmt_int((double)min), fmt_int(SCALE_RECORDS_PER_FEED), "");
    char lat[128];
    snprintf(lat, sizeof(lat), "%s / %s / %s", fmt_us(p50), fmt_us(p99), fmt_us(max));
    tab_row(t, "fan-out: produce -> client p50 / p99 / max (worst child)", lat, "", "");
    tab_note(t, "Memory in steps, each read once the node's RSS settles, nothing produced meanwhile: idle; %d primer "
             "connections; %d of them subscribe, one feed per partition (Kafka's share: librdkafka's assignment "
             "and fetch buffers); the other %d subscribe (a feed each); then the %zu measured connections connect and "
             "subscribe to those feeds. So per connection is the node's own cost of a connection and a subscription.",
             feeds, pr.kafka_feeds, more_feeds, connected);
    tab_note(t, "Fan-out: %d records per feed produced at once (%d in all); %d child processes hold the client sockets.",
             SCALE_RECORDS_PER_FEED, SCALE_RECORDS_PER_FEED * feeds, nch);
    tab_note(t, "%zu connections failed; node counted %lld accepted (the primer's %d included).", failed, node_conns,
             feeds);
    health_note(t, "subscribe phase", &hl);
    prev_note(t, pl);
    if (pl && isnan(prev_num(pl, "node_kafka_kb")))
        tab_note(t, "The previous per-connection figures were taken above idle, Kafka's and the feeds' memory "
                 "included.");
    tab_print(t);

    jrec *j = jr_begin("connscale", "subway+redis");
    jr_int(j, "connections", conns);
    jr_int(j, "connected", (long long)connected);
    jr_int(j, "subscribed", (long long)subscribed);
    jr_int(j, "failed", (long long)failed);
    jr_int(j, "feeds", feeds);
    jr_int(j, "partitions", SCALE_PARTS);
    jr_int(j, "node_fd_limit", limit);
    jr_int(j, "children", nch);
    jr_num(j, "connect_s", connect_s);
    jr_num(j, "subscribe_s", sub_s);
    jr_num(j, "subscribes_per_s", subs_per_s);
    jr_int(j, "node_idle_rss_kb", idle.rss_kb);
    jr_int(j, "node_connected_rss_kb", conn_ps.rss_kb);
    jr_int(j, "node_subscribed_rss_kb", sub_ps.rss_kb);
    jr_int(j, "node_peak_rss_kb", end_ps.hwm_kb);
    jr_num(j, "rss_bytes_per_conn_connected", per_conn);
    jr_num(j, "rss_bytes_per_conn_subscribed", per_sub);
    jr_num(j, "node_kafka_kb", kafka_kb);
    jr_num(j, "rss_bytes_per_feed", per_feed);
    jr_int(j, "node_primed_rss_kb", pr.feeds.rss_kb);
    jr_str(j, "per_conn_base", "every feed subscribed once, Kafka assigned");
    health_json(j, &hl);
    jr_int(j, "fanout_expected", (long long)want);
    jr_int(j, "fanout_received", (long long)total);
    jr_num(j, "fanout_p50_us", (double)p50 / 1000);
    jr_num(j, "fanout_p99_us", (double)p99 / 1000);
    jr_num(j, "fanout_max_us", (double)max / 1000);
    jr_end(j);
    rc = subscribed > 0 && total > 0 ? 0 : -1;
out:
    send_all(ch, nch, "quit\n");
    for (int i = 0; i < nch; i++) {
        double deadline2 = now_s() + 5;
        while (waitpid(ch[i].pid, NULL, WNOHANG) == 0 && now_s() < deadline2) sleep_s(0.01);
        if (kill(ch[i].pid, SIGKILL) == 0) waitpid(ch[i].pid, NULL, 0);
        close(ch[i].to);
        close(ch[i].from);
    }
    pool_free(pr.p);
    svc_stop(&n.p);
    svc_stop(&rs.p);
    kafka_stop(&k);
    return rc;
}
