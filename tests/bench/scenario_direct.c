/* scenario_direct.c -- 1000 subscribers through one node vs one librdkafka consumer per subscriber: memory, threads, connections. */
#include "tests/bench/bench.h"

#include <errno.h>
#include <fcntl.h>
#include <librdkafka/rdkafka.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define DIRECT_TOPIC "bench-direct"
#define DIRECT_KEY "d"
#define DIRECT_RATE 100           /* records/s while measuring: both sides consume for real */
#define CHILD_START_TIMEOUT_S 180.0

typedef struct side {
    int clients;
    long rss_kb, hwm_kb, threads;
    int kafka_conns;
    double cpu_s, secs;
    uint64_t received, expected;
    long base_rss_kb, base_threads;  /* direct: the child before any consumer */
    health h;                     /* the machine during the window */
} side;

/* ------------------------------------------------------------ the child */

/* subway-bench --child consumers BOOTSTRAP TOPIC N: N consumers of TOPIC's
 * partition 0 from its log end, polled round-robin by one thread. Says
 * "base RSS THREADS" first, "ready" once all are assigned; answers
 * "report" with "records TOTAL MIN" and exits on "quit" or EOF. */
int child_consumers(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: subway-bench --child consumers BOOTSTRAP TOPIC N\n");
        return 2;
    }
    const char *bootstrap = argv[1], *topic = argv[2];
    int n = atoi(argv[3]);
    procstat ps;
    procstat_read(getpid(), &ps);
    printf("base %ld %ld\n", ps.rss_kb, ps.threads);
    fflush(stdout);
    rd_kafka_t **rk = calloc((size_t)n, sizeof(*rk));
    uint64_t *got = calloc((size_t)n, sizeof(*got));
    if (!rk || !got) return 1;
    int64_t start = -1;
    for (int i = 0; i < n; i++) {
        char err[512], group[64];
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        snprintf(group, sizeof(group), "subway-bench-direct-%d-%d", (int)getpid(), i);
        /* librdkafka's defaults otherwise, as a naive per-client design would have them. */
        if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, err, sizeof(err)) != RD_KAFKA_CONF_OK ||
            rd_kafka_conf_set(conf, "group.id", group, err, sizeof(err)) != RD_KAFKA_CONF_OK ||
            rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, sizeof(err)) != RD_KAFKA_CONF_OK ||
            rd_kafka_conf_set(conf, "log_level", "3", err, sizeof(err)) != RD_KAFKA_CONF_OK ||
            !(rk[i] = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err)))) {
            fprintf(stderr, "child consumers: consumer %d: %s\n", i, err);
            return 1;
        }
        rd_kafka_poll_set_consumer(rk[i]);
        if (start < 0) {
            int64_t lo, hi;
            rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(rk[i], topic, 0, &lo, &hi, 10000);
            if (e) {
                fprintf(stderr, "child consumers: watermarks: %s\n", rd_kafka_err2str(e));
                return 1;
            }
            start = hi;
        }
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(l, topic, 0)->offset = start;
        rd_kafka_assign(rk[i], l);
        rd_kafka_topic_partition_list_destroy(l);
    }
    printf("ready\n");
    fflush(stdout);
    fcntl(0, F_SETFL, O_NONBLOCK);
    char cmd[256];
    size_t cmd_len = 0;
    for (;;) {
        int any = 0;
        for (int i = 0; i < n; i++) {
            rd_kafka_message_t *m;
            while ((m = rd_kafka_consumer_poll(rk[i], 0)) != NULL) {
                if (!m->err) got[i]++;
                rd_kafka_message_destroy(m);
                any = 1;
            }
        }
        char ch;
        ssize_t r;
        while ((r = read(0, &ch, 1)) == 1) {
            if (ch != '\n') {
                if (cmd_len + 1 < sizeof(cmd)) cmd[cmd_len++] = ch;
                continue;
            }
            cmd[cmd_len] = '\0';
            cmd_len = 0;
            if (strcmp(cmd, "report") == 0) {
                uint64_t total = 0, min = UINT64_MAX;
                for (int i = 0; i < n; i++) {
                    total += got[i];
                    if (got[i] < min) min = got[i];
                }
                printf("records %llu %llu\n", (unsigned long long)total, (unsigned long long)min);
                fflush(stdout);
            } else if (strcmp(cmd, "quit") == 0) {
                r = 0;
                break;
            }
        }
        if (r == 0) break;        /* quit, or the parent went away */
        if (!any) sleep_s(0.001);
    }
    /* Exiting at once, without n orderly destroys (each waits for its
     * broker threads), keeps the scenario quick; the kernel reclaims all. */
    fflush(stdout);
    _exit(0);
}

/* ----------------------------------------------------------- measuring */

/* Produces DIRECT_RATE records/s for the warm-up and the window, running
 * p (may be NULL) meanwhile; pid's CPU over the window into s. */
static int direct_window(const kafka_svc *k, pool *p, pid_t pid, side *s, uint64_t *produced) {
    char err[512];
    kprod *kp = kprod_new(k->bootstrap, DIRECT_TOPIC, "5", err, sizeof(err));
    if (!kp) {
        fprintf(stderr, "bench: direct: %s\n", err);
        return -1;
    }
    pacer_conf pcf = {.kp = kp, .topic = DIRECT_TOPIC, .key = DIRECT_KEY, .rate = DIRECT_RATE};
    pacer *pc = pacer_start(&pcf, err, sizeof(err));
    if (!pc) {
        fprintf(stderr, "bench: %s\n", err);
        kprod_free(kp);
        return -1;
    }
    int rc = 0;
    procstat a, b;
    if (p) rc = drive(p, pc, g_opts.warmup_s);
    else sleep_s(g_opts.warmup_s);
    machine_snapshot m0, m1;
    machine_use u;
    machine_snap(&m0);
    procstat_read(pid, &a);
    double t0 = now_s();
    if (p && rc == 0) rc = drive(p, pc, g_opts.duration_s);
    else if (!p) sleep_s(g_opts.duration_s);
    s->secs = now_s() - t0;
    procstat_read(pid, &b);
    machine_snap(&m1);
    machine_usage(&m0, &m1, &u);
    health_init(&s->h);
    health_machine(&s->h, &u);
    *produced = pacer_stop(pc);
    kprod_free(kp);
    s->cpu_s = b.cpu_s - a.cpu_s;
    s->rss_kb = b.rss_kb;
    s->hwm_kb = b.hwm_kb;
    s->threads = b.threads;
    return rc;
}

static int direct_subway(const kafka_svc *k, side *s) {
    node_svc n;
    pool *p = NULL;
    int rc = -1;
    uint64_t produced = 0;
    s->clients = g_opts.direct_subs;
    if (node_start(&n, k, NULL, NULL, NULL) < 0) return -1;
    if (!(p = pool_new(POOL_SUBWAY, (size_t)s->clients))) goto out;
    for (int i = 0; i < s->clients; i++) pool_set_feed(p, (size_t)i, DIRECT_TOPIC, DIRECT_KEY);
    if (pool_setup(p, n.port, "direct/subway") < 0) goto out;
    if (direct_window(k, p, n.p.pid, s, &produced) < 0) goto out;
    s->kafka_conns = procstat_tcp_conns(n.p.pid, k->ports, k->nports);
    pool_run_for(p, 0.5);         /* the last records */
    s->received = pool_total(p);
    s->expected = produced * (uint64_t)s->clients;
    rc = s->received > 0 ? 0 : -1;
out:
    pool_free(p);
    svc_stop(&n.p);
    return rc;
}

static int direct_consumers(const kafka_svc *k, side *s) {
    char count[16], line[256];
    int to = -1, from = -1, rc = -1;
    uint64_t produced = 0;
    s->clients = g_opts.direct_consumers;
    snprintf(count, sizeof(count), "%d", s->clients);
    char *argv[] = {"subway-bench", "--child", "consumers", (char *)k->bootstrap, DIRECT_TOPIC, count, NULL};
    pid_t pid = spawn_self(argv, &to, &from);
    if (pid < 0) return -1;
    if (read_line(from, line, sizeof(line), 10) < 0 ||
        sscanf(line, "base %ld %ld", &s->base_rss_kb, &s->base_threads) != 2) {
        fprintf(stderr, "bench: direct: the consumers' process did not start\n");
        goto out;
    }
    if (read_line(from, line, sizeof(line), CHILD_START_TIMEOUT_S) < 0 || strcmp(line, "ready") != 0) {
        fprintf(stderr, "bench: direct: %d consumers did not start in %.0f s\n", s->clients, CHILD_START_TIMEOUT_S);
        goto out;
    }
    if (direct_window(k, NULL, pid, s, &produced) < 0) goto out;
    s->kafka_conns = procstat_tcp_conns(pid, k->ports, k->nports);
    sleep_s(0.5);
    unsigned long long total = 0, min = 0;
    if (write(to, "report\n", 7) != 7 || read_line(from, line, sizeof(line), 10) < 0 ||
        sscanf(line, "records %llu %llu", &total, &min) != 2) {
        fprintf(stderr, "bench: direct: no report from the consumers\n");
        goto out;
    }
    s->received = total;
    s->expected = produced * (uint64_t)s->clients;
    rc = total > 0 ? 0 : -1;
out:
    if (to >= 0 && write(to, "quit\n", 5) < 0) {}
    double deadline = now_s() + 5;
    while (waitpid(pid, NULL, WNOHANG) == 0 && now_s() < deadline) sleep_s(0.01);
    if (kill(pid, SIGKILL) == 0) waitpid(pid, NULL, 0);
    if (to >= 0) close(to);
    if (from >= 0) close(from);
    return rc;
}

/* "RSS, CPU" of a published line, or "". */
static const char *direct_prev(const char *line) {
    if (!line) return "";
    double secs = prev_num(line, "duration_s");
    return fmt_str("%s, %.1f%%", fmt_kb((long)prev_num(line, "rss_kb")),
                   secs > 0 ? 100 * prev_num(line, "cpu_s") / secs : 0);
}

int scenario_direct(void) {
    static const char *const topics[] = {DIRECT_TOPIC ":1", NULL};
    static const char *const cols[] = {"design", "clients", "RSS", "peak RSS", "threads", "Kafka TCP conns",
                                       "CPU", "received/expected", "previous RSS, CPU"};
    kafka_svc k;
    side sw = {0}, dc = {0};
    int rc = 0;
    if (kafka_start(&k, topics) < 0) return -1;
    vlog("direct: subway with %d subscribers", g_opts.direct_subs);
    if (direct_subway(&k, &sw) < 0) rc = -1;
    vlog("direct: %d librdkafka consumers", g_opts.direct_consumers);
    if (direct_consumers(&k, &dc) < 0) rc = -1;
    kafka_stop(&k);

    /* What N consumers would take, from the measured per-consumer cost. */
    int target = g_opts.direct_target;
    double per_rss = dc.clients ? (double)(dc.rss_kb - dc.base_rss_kb) / dc.clients : 0;
    double per_thr = dc.clients ? (double)(dc.threads - dc.base_threads) / dc.clients : 0;
    double per_conn = dc.clients ? (double)dc.kafka_conns / dc.clients : 0;
    double per_cpu = dc.clients && dc.secs > 0 ? dc.cpu_s / dc.secs / dc.clients : 0;
    long x_rss = dc.base_rss_kb + (long)(per_rss * target);
    long x_thr = dc.base_threads + (long)(per_thr * target + 0.5);
    long x_conn = (long)(per_conn * target + 0.5);
    double x_cpu = per_cpu * target;

    tab *t = tab_new("direct: subscribers through one node vs one librdkafka consumer each", 9, cols);
    const char *ps = prev_find("direct", "subway", "clients", (double)sw.clients, (const char *)NULL);
    const char *pd = prev_find("direct", "consumers", "clients", (double)dc.clients, (const char *)NULL);
    if (sw.secs > 0)
        tab_row(t, "subway node", fmt_int(sw.clients), fmt_kb(sw.rss_kb), fmt_kb(sw.hwm_kb), fmt_int((double)sw.threads),
                fmt_int(sw.kafka_conns), fmt_f("%.1f%%", 100 * sw.cpu_s / sw.secs),
                fmt_f("%.4f", sw.expected ? (double)sw.received / (double)sw.expected : 0), direct_prev(ps));
    if (dc.secs > 0) {
        tab_row(t, "direct consumers (measured)", fmt_int(dc.clients), fmt_kb(dc.rss_kb), fmt_kb(dc.hwm_kb),
                fmt_int((double)dc.threads), fmt_int(dc.kafka_conns), fmt_f("%.1f%%", 100 * dc.cpu_s / dc.secs),
                fmt_f("%.4f", dc.expected ? (double)dc.received / (double)dc.expected : 0), direct_prev(pd));
        if (target != dc.clients)
            tab_row(t, "direct consumers (EXTRAPOLATED, linear)", fmt_int(target), fmt_kb(x_rss), "", fmt_int((double)x_thr),
                    fmt_int((double)x_conn), fmt_f("%.1f%%", 100 * x_cpu), "", "");
    }
    health hl;
    health_init(&hl);
    if (!sw.h.ok) health_require(&hl, 0, "subway's window: %s", sw.h.why);
    if (!dc.h.ok) health_require(&hl, 0, "the consumers' window: %s", dc.h.why);
    if (!hl.ok) health_note(t, "CPU comparison", &hl);
    if (sw.secs > 0 && dc.secs > 0) {
        char cpu[64] = "n/a (node CPU below the clock tick)";
        if (!hl.ok) snprintf(cpu, sizeof(cpu), "no verdict (machine busy)");
        else if (sw.cpu_s > 0.02) snprintf(cpu, sizeof(cpu), "%.1fx", x_cpu / (sw.cpu_s / sw.secs));
        tab_note(t, "Direct/subway at %d clients: memory %.1fx, threads %.1fx, Kafka connections %.1fx, CPU %s%s.",
                 target, (double)x_rss / (double)(sw.rss_kb ? sw.rss_kb : 1),
                 (double)x_thr / (double)(sw.threads ? sw.threads : 1),
                 (double)x_conn / (double)(sw.kafka_conns ? sw.kafka_conns : 1), cpu,
                 target != dc.clients ? " (direct side extrapolated)" : "");
        tab_note(t, "Per direct consumer: %.0f KiB RSS, %.1f threads, %.1f Kafka connections (child process base: %s, %ld threads).",
                 per_rss, per_thr, per_conn, fmt_kb(dc.base_rss_kb), dc.base_threads);
    }
    tab_note(t, "Both consume %d records/s of %d bytes during the window. Subway side: the node only (its clients "
             "are plain sockets, not counted). Direct side: a child process holding every consumer (librdkafka "
             "defaults, group.id each, partition assigned by hand), %s with 1 broker.",
             DIRECT_RATE, g_opts.value_len, kafka_name());
    prev_note(t, ps);
    tab_print(t);

    jrec *j = jr_begin("direct", "subway");
    jr_int(j, "clients", sw.clients);
    jr_int(j, "rss_kb", sw.rss_kb);
    jr_int(j, "peak_rss_kb", sw.hwm_kb);
    jr_int(j, "threads", sw.threads);
    jr_int(j, "kafka_conns", sw.kafka_conns);
    jr_num(j, "cpu_s", sw.cpu_s);
    jr_num(j, "duration_s", sw.secs);
    jr_int(j, "received", (long long)sw.received);
    jr_int(j, "expected", (long long)sw.expected);
    jr_int(j, "rate", DIRECT_RATE);
    health_json(j, &sw.h);
    jr_end(j);
    j = jr_begin("direct", "consumers");
    jr_int(j, "clients", dc.clients);
    jr_int(j, "rss_kb", dc.rss_kb);
    jr_int(j, "peak_rss_kb", dc.hwm_kb);
    jr_int(j, "threads", dc.threads);
    jr_int(j, "kafka_conns", dc.kafka_conns);
    jr_num(j, "cpu_s", dc.cpu_s);
    jr_num(j, "duration_s", dc.secs);
    jr_int(j, "received", (long long)dc.received);
    jr_int(j, "expected", (long long)dc.expected);
    jr_int(j, "base_rss_kb", dc.base_rss_kb);
    jr_int(j, "base_threads", dc.base_threads);
    jr_int(j, "rate", DIRECT_RATE);
    health_json(j, &dc.h);
    jr_end(j);
    j = jr_begin("direct", "consumers_extrapolated");
    jr_int(j, "clients", target);
    jr_int(j, "from_clients", dc.clients);
    jr_int(j, "rss_kb", x_rss);
    jr_int(j, "threads", x_thr);
    jr_int(j, "kafka_conns", x_conn);
    jr_num(j, "cpu_cores", x_cpu);
    jr_num(j, "rss_ratio_vs_subway", sw.rss_kb ? (double)x_rss / (double)sw.rss_kb : 0);
    jr_num(j, "threads_ratio_vs_subway", sw.threads ? (double)x_thr / (double)sw.threads : 0);
    jr_num(j, "conns_ratio_vs_subway", sw.kafka_conns ? (double)x_conn / (double)sw.kafka_conns : 0);
    jr_end(j);
    return rc;
}
