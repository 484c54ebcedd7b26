/* services.c -- starting and stopping mock_kafka, subway nodes and redis-server on free loopback ports. */
#include "tests/bench/bench.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define SVC_MAX 64
#define START_TIMEOUT_S 15.0
#define KAFKA_BENCH_HEAP "-Xms1g -Xmx1g"
#define KAFKA_WARM_TOPIC "bench-warmup"
#define KAFKA_WARM_RATE 1000      /* records/s while the JIT compiles the broker: the latency scenario's rate */
#define KAFKA_WARM_MIN_S 12.0
#define KAFKA_WARM_MAX_S 90.0
#define KAFKA_BENCH_JVM "-XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 -XX:+AlwaysPreTouch"
#define KAFKA_BENCH_DATA_ROOT "/dev/shm"   /* tmpfs, when there is one */

static svc *running[SVC_MAX];     /* every started service, for svc_stop_all() */
static int used_ports[4096];
static int nused_ports;

/* ------------------------------------------------------------- helpers */

/* Records port as handed out; 0 when it was already. */
static int port_take(int port) {
    for (int i = 0; i < nused_ports; i++)
        if (used_ports[i] == port) return 0;
    if (nused_ports < (int)(sizeof(used_ports) / sizeof(used_ports[0]))) used_ports[nused_ports++] = port;
    return 1;
}

int svc_free_port(void) {
    for (int attempt = 0; attempt < 100; attempt++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) return -1;
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t len = sizeof(a);
        if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
            close(fd);
            return -1;
        }
        close(fd);
        int port = ntohs(a.sin_port);
        if (port_take(port)) return port;
    }
    return -1;
}

/* 1 when nothing holds port on loopback (a bind succeeds). */
static int port_bindable(int port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return 0;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int ok = bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    close(fd);
    return ok;
}

/* A free port P whose P + 1 is free too (a Kafka node's client and
 * controller ports), neither returned before. */
static int svc_free_port_pair(void) {
    for (int attempt = 0; attempt < 100; attempt++) {
        int p = svc_free_port();
        if (p < 0) return -1;
        if (p < 65535 && port_bindable(p + 1) && port_take(p + 1)) return p;
    }
    return -1;
}

static void track(svc *s) {
    for (int i = 0; i < SVC_MAX; i++)
        if (!running[i]) {
            running[i] = s;
            return;
        }
}

static void untrack(svc *s) {
    for (int i = 0; i < SVC_MAX; i++)
        if (running[i] == s) running[i] = NULL;
}

/* Forks and execs argv with stdout and stderr into s->log; the child dies
 * with us. Returns 0 or -1. */
static int spawn(svc *s, const char *name, char *const argv[]) {
    snprintf(s->name, sizeof(s->name), "%s", name);
    snprintf(s->log, sizeof(s->log), "%s/%s.log", g_opts.tmpdir, name);
    if (g_opts.verbose) {
        fprintf(stderr, "bench: starting %s:", name);
        for (int i = 0; argv[i]; i++) fprintf(stderr, " %s", argv[i]);
        fprintf(stderr, "\n");
    }
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "bench: fork: %s\n", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(s->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        int nul = open("/dev/null", O_RDONLY);
        if (nul >= 0) dup2(nul, 0);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        execvp(argv[0], argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    s->pid = pid;
    track(s);
    return 0;
}

/* 1 while the service runs; 0 (and a message) once it exited. */
static int alive(svc *s) {
    int st;
    if (s->pid <= 0) return 0;
    if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
        fprintf(stderr, "bench: %s exited (%s %d); its log: %s\n", s->name,
                WIFEXITED(st) ? "status" : "signal", WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st), s->log);
        s->pid = 0;
        untrack(s);
        return 0;
    }
    return 1;
}

void svc_stop(svc *s) {
    if (!s || s->pid <= 0) return;
    kill(s->pid, SIGTERM);
    double deadline = now_s() + 5.0;
    int st;
    while (waitpid(s->pid, &st, WNOHANG) == 0) {
        if (now_s() > deadline) {
            kill(s->pid, SIGKILL);
            waitpid(s->pid, &st, 0);
            break;
        }
        sleep_s(0.01);
    }
    s->pid = 0;
    untrack(s);
}

void svc_stop_all(void) {
    for (int i = 0; i < SVC_MAX; i++)
        if (running[i] && running[i]->pid > 0) {
            kill(running[i]->pid, SIGKILL);
            waitpid(running[i]->pid, NULL, 0);
            running[i]->pid = 0;
            running[i] = NULL;
        }
}

/* ----------------------------------------------------------------- HTTP */

static int connect_loopback(int port, double timeout_s) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct timeval tv = {(time_t)timeout_s, (suseconds_t)((timeout_s - (double)(time_t)timeout_s) * 1e6)};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int http_get(int port, const char *path, char *buf, size_t size) {
    int fd = connect_loopback(port, 5.0);
    if (fd < 0) return -1;
    char req[512];
    int n = snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);
    if (write(fd, req, (size_t)n) != n) {
        close(fd);
        return -1;
    }
    size_t len = 0;
    ssize_t r;
    while (len + 1 < size && (r = read(fd, buf + len, size - 1 - len)) > 0) len += (size_t)r;
    close(fd);
    buf[len] = '\0';
    char *body = strstr(buf, "\r\n\r\n");
    if (!body || strncmp(buf, "HTTP/1.", 7) != 0 || strncmp(buf + 9, "200", 3) != 0) return -1;
    body += 4;
    size_t blen = len - (size_t)(body - buf);
    memmove(buf, body, blen + 1);
    return (int)blen;
}

long long json_num(const char *json, const char *name) {
    char pat[128];
    snprintf(pat, sizeof(pat), "\"%s\":", name);
    const char *p = strstr(json, pat);
    if (!p) return -1;
    return strtoll(p + strlen(pat), NULL, 10);
}

long long node_counter(const node_svc *n, const char *name) {
    size_t size = 16u << 20;
    char *buf = malloc(size);
    if (!buf) return -1;
    long long v = -1;
    if (http_get(n->admin_port, "/stats", buf, size) >= 0) {
        const char *c = strstr(buf, "\"counters\":");
        if (c) v = json_num(c, name);
        else v = json_num(buf, name);
    }
    free(buf);
    return v;
}

/* ---------------------------------------------------------------- Kafka */

/* Records "host:port,host:port" as k's bootstrap and broker ports. */
static void kafka_set_bootstrap(kafka_svc *k, const char *bootstrap) {
    snprintf(k->bootstrap, sizeof(k->bootstrap), "%s", bootstrap);
    k->bootstrap[strcspn(k->bootstrap, "\r\n")] = '\0';
    char tmp[256];
    snprintf(tmp, sizeof(tmp), "%s", k->bootstrap);
    char *save = NULL;
    for (char *t = strtok_r(tmp, ",", &save); t && k->nports < 8; t = strtok_r(NULL, ",", &save)) {
        char *c = strrchr(t, ':');
        if (c) k->ports[k->nports++] = atoi(c + 1);
    }
}


/* A fresh JVM compiles its hot paths for the first tens of seconds of load
 * (measured on 2 cores: a direct consumer's p99 of 100-500 ms for the first
 * ~30 s, and its p50 above 5 ms for ~15 s), and the compiler threads take
 * the cores the broker needs. Produce at a steady rate, consumed at both
 * fetch waits the scenarios use, until a probe window finds the consumer
 * healthy, at least KAFKA_WARM_MIN_S and at most KAFKA_WARM_MAX_S. */
static int kafka_warm_up(kafka_svc *k) {
    char err[512];
    int rc = -1;
    kprod *kp = NULL;
    kcons *kc = NULL, *kc1 = NULL;
    pacer *pc = NULL;
    hist *h = malloc(sizeof(*h));
    double t0 = now_s(), least = g_opts.tiny ? 1.0 : KAFKA_WARM_MIN_S, most = g_opts.tiny ? 1.0 : KAFKA_WARM_MAX_S;
    if (!h || !(kc = kcons_start(k->bootstrap, KAFKA_WARM_TOPIC, 1, 10, err, sizeof(err))) ||
        !(kc1 = kcons_start(k->bootstrap, KAFKA_WARM_TOPIC, 1, 1, err, sizeof(err))) ||
        !(kp = kprod_new(k->bootstrap, KAFKA_WARM_TOPIC, "0", err, sizeof(err)))) {
        fprintf(stderr, "bench: Apache Kafka warm-up: %s\n", h ? err : "out of memory");
        goto out;
    }
    pacer_conf pcf = {.kp = kp, .topic = KAFKA_WARM_TOPIC, .rate = KAFKA_WARM_RATE};
    if (!(pc = pacer_start(&pcf, err, sizeof(err)))) {
        fprintf(stderr, "bench: Apache Kafka warm-up: %s\n", err);
        goto out;
    }
    vlog("warming Apache Kafka up: %.0f to %.0f s, until a direct consumer is healthy", least, most);
    sleep_s(least - health_probe_s() > 0 ? least - health_probe_s() : 0);
    for (;;) {
        machine_snapshot a, b;
        machine_use u;
        machine_snap(&a);
        kcons_window(kc, wall_ns(), UINT64_MAX);
        sleep_s(health_probe_s());
        kcons_take_hist(kc, h);
        machine_snap(&b);
        machine_usage(&a, &b, &u);
        health_init(&k->warm_health);
        health_machine(&k->warm_health, &u);
        health_direct(&k->warm_health, h, 10);
        if (k->warm_health.ok || now_s() - t0 >= most) break;
        vlog("Apache Kafka warm-up, %.0f s (%llu records, %llu samples): %s", now_s() - t0,
             (unsigned long long)kcons_records(kc), (unsigned long long)h->n, k->warm_health.why);
    }
    k->warm_s = now_s() - t0;
    vlog("Apache Kafka warmed up for %.1f s: %s", k->warm_s, k->warm_health.ok ? "healthy" : k->warm_health.why);
    rc = kcons_records(kc) > 0 ? 0 : -1;
    if (rc < 0) fprintf(stderr, "bench: Apache Kafka warm-up: nothing consumed\n");
out:
    pacer_stop(pc);
    kcons_stop(kc);
    kcons_stop(kc1);
    kprod_free(kp);
    free(h);
    return rc;
}

/* One Apache Kafka broker (KRaft) in the temp dir, stopped by kafka_stop()
 * or, should the bench die, by the script's --watch-pid. */
static int kafka_start_apache(kafka_svc *k, const char *const *topics) {
    char cmd[2400], line[512], err[512];
    int port = svc_free_port_pair();
    if (port < 0) return -1;
    /* The log and metadata in memory: a broker on the shared disk stalls
     * whenever someone else's writes fill the page cache (Kafka's appends
     * then wait for writeback), and KRaft fsyncs its metadata log. */
    struct stat st_shm;
    if (stat(KAFKA_BENCH_DATA_ROOT, &st_shm) == 0 && S_ISDIR(st_shm.st_mode) && access(KAFKA_BENCH_DATA_ROOT, W_OK) == 0)
        snprintf(k->apache_dir, sizeof(k->apache_dir), KAFKA_BENCH_DATA_ROOT "/%s-kafka-%d", strrchr(g_opts.tmpdir, '/') + 1,
                 port);
    else
        snprintf(k->apache_dir, sizeof(k->apache_dir), "%s/kafka-%d", g_opts.tmpdir, port);
    snprintf(k->p.log, sizeof(k->p.log), "%s/kafka-%d.log", g_opts.tmpdir, port);
    snprintf(k->gc_log, sizeof(k->gc_log), "%s/kafka-%d-gc.log", g_opts.tmpdir, port);
    /* A broker as Kafka's own start script runs it (G1, C2), not the
     * quick-starting one the tests use; its GC pauses logged, so a slow
     * baseline can be told from a collector's pauses. */
    snprintf(cmd, sizeof(cmd),
             "KAFKA_HEAP='" KAFKA_BENCH_HEAP "' KAFKA_JVM='%s -Xlog:gc:file=%s' "
             "bash '%s' start --dir '%s' --port %d --watch-pid %d >'%s' 2>&1 && cat '%s'",
             g_opts.kafka_jvm ? g_opts.kafka_jvm : KAFKA_BENCH_JVM, k->gc_log, g_opts.kafka_script, k->apache_dir, port, (int)getpid(), k->p.log, k->p.log);
    vlog("starting Apache Kafka: %s", cmd);
    FILE *f = popen(cmd, "r");
    if (!f) return -1;
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, "BOOTSTRAP ", 10) == 0) kafka_set_bootstrap(k, line + 10);
    int st = pclose(f);
    if (st != 0 || !k->bootstrap[0]) {
        fprintf(stderr, "bench: Apache Kafka did not start; the end of its log (%s):\n", k->p.log);
        snprintf(cmd, sizeof(cmd), "tail -n 15 '%s' >&2", k->p.log);
        if (system(cmd) != 0) fprintf(stderr, "bench: (cannot read it)\n");
        kafka_stop(k);
        return -1;
    }
    const char *all[34];
    int n = 0;
    for (; topics && topics[n] && n < 32; n++) all[n] = topics[n];
    all[n++] = KAFKA_WARM_TOPIC ":1";
    all[n] = NULL;
    if (kafka_create_topics(k->bootstrap, all, NULL, err, sizeof(err)) < 0) {
        fprintf(stderr, "bench: Apache Kafka at %s: %s\n", k->bootstrap, err);
        kafka_stop(k);
        return -1;
    }
    machine_own_pid(kafka_pid(k));
    if (kafka_warm_up(k) < 0) {
        kafka_stop(k);
        return -1;
    }
    vlog("Apache Kafka at %s", k->bootstrap);
    return 0;
}

void kafka_stop(kafka_svc *k) {
    if (!k->apache_dir[0]) {
        svc_stop(&k->p);
        return;
    }
    char cmd[1400];
    machine_disown_pid(kafka_pid(k));
    snprintf(cmd, sizeof(cmd), "bash '%s' stop --dir '%s' >>'%s' 2>&1", g_opts.kafka_script, k->apache_dir, k->p.log);
    if (system(cmd) != 0) fprintf(stderr, "bench: stopping Apache Kafka failed; see %s\n", k->p.log);
    if (strncmp(k->apache_dir, KAFKA_BENCH_DATA_ROOT "/", strlen(KAFKA_BENCH_DATA_ROOT) + 1) == 0) {
        /* Memory, not the temp dir: never kept, whatever --keep says. */
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", k->apache_dir);
        if (system(cmd) != 0) fprintf(stderr, "bench: cannot remove %s\n", k->apache_dir);
    }
    k->apache_dir[0] = '\0';
}

int kafka_gc_pauses(const kafka_svc *k, double *total_ms, double *max_ms, long *count) {
    *total_ms = *max_ms = 0;
    *count = 0;
    if (!k->apache_dir[0] || !k->gc_log[0]) return -1;
    FILE *f = fopen(k->gc_log, "r");
    if (!f) return -1;
    char line[512];
    /* "[12.345s][info][gc] GC(7) Pause Young (Normal) (G1 Evacuation Pause) 60M->9M(1024M) 4.123ms" */
    while (fgets(line, sizeof(line), f)) {
        if (!strstr(line, " Pause ")) continue;
        char *ms = strstr(line, "ms");
        char *sp = ms;
        while (sp && sp > line && sp[-1] != ' ') sp--;
        if (!ms || !sp) continue;
        double v = atof(sp);
        *total_ms += v;
        if (v > *max_ms) *max_ms = v;
        (*count)++;
    }
    fclose(f);
    return 0;
}

const char *kafka_name(void) {
    return g_opts.kafka_apache ? "Apache Kafka" : "librdkafka's mock Kafka";
}

pid_t kafka_pid(const kafka_svc *k) {
    if (!k->apache_dir[0]) return k->p.pid;
    char path[400];
    long pid = 0;
    snprintf(path, sizeof(path), "%s/node-1.pid", k->apache_dir);
    FILE *f = fopen(path, "r");
    if (f) {
        if (fscanf(f, "%ld", &pid) != 1) pid = 0;
        fclose(f);
    }
    return (pid_t)pid;
}

int kafka_start(kafka_svc *k, const char *const *topics) {
    memset(k, 0, sizeof(*k));
    if (g_opts.kafka_apache) {
        /* Once more on other ports: a port can be taken between the check
         * and the broker's bind. */
        for (int attempt = 0; attempt < 2; attempt++) {
            if (kafka_start_apache(k, topics) == 0) return 0;
            memset(k, 0, sizeof(*k));
        }
        return -1;
    }
    char *argv[64];
    int n = 0;
    char path[600], ready[300];
    static char topic_args[32][300];
    snprintf(path, sizeof(path), "%s/tests/mock_kafka", g_opts.bin);
    snprintf(ready, sizeof(ready), "%s/kafka-%d.ready", g_opts.tmpdir, svc_free_port());
    argv[n++] = path;
    for (int i = 0; topics && topics[i] && i < 30; i++) {
        snprintf(topic_args[i], sizeof(topic_args[i]), "%s", topics[i]);
        argv[n++] = "--topic";
        argv[n++] = topic_args[i];
    }
    argv[n++] = "--ready-file";
    argv[n++] = ready;
    argv[n] = NULL;
    if (spawn(&k->p, "mock_kafka", argv) < 0) return -1;
    double deadline = now_s() + START_TIMEOUT_S;
    while (now_s() < deadline) {
        FILE *f = fopen(ready, "r");
        if (f) {
            int ok = fgets(k->bootstrap, sizeof(k->bootstrap), f) != NULL;
            fclose(f);
            unlink(ready);
            if (!ok) break;
            char line[256];
            snprintf(line, sizeof(line), "%s", k->bootstrap);
            kafka_set_bootstrap(k, line);
            vlog("mock_kafka at %s", k->bootstrap);
            return 0;
        }
        if (!alive(&k->p)) return -1;
        sleep_s(0.01);
    }
    fprintf(stderr, "bench: mock_kafka did not become ready; its log: %s\n", k->p.log);
    svc_stop(&k->p);
    return -1;
}

/* ----------------------------------------------------------------- node */

int node_start(node_svc *n, const kafka_svc *k, const char *redis_addr, const char *node_id,
               const char *const *extra) {
    static int seq;
    char path[600], listen[64], admin[64], id[64], log_name[80];
    char *argv[80];
    int a = 0;
    memset(n, 0, sizeof(*n));
    n->port = svc_free_port();
    n->admin_port = svc_free_port();
    if (n->port < 0 || n->admin_port < 0) return -1;
    snprintf(path, sizeof(path), "%s/subway", g_opts.bin);
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", n->port);
    snprintf(admin, sizeof(admin), "127.0.0.1:%d", n->admin_port);
    if (node_id)
        snprintf(id, sizeof(id), "%s", node_id);
    else
        snprintf(id, sizeof(id), "bench-%d", ++seq);
    snprintf(n->node_id, sizeof(n->node_id), "%s", id);
    argv[a++] = path;
    argv[a++] = "--kafka";
    argv[a++] = (char *)k->bootstrap;
    argv[a++] = "--listen";
    argv[a++] = listen;
    argv[a++] = "--admin";
    argv[a++] = admin;
    argv[a++] = "--node-id";
    argv[a++] = id;
    /* Limits big enough that the bench measures speed, not refusals: the
     * pacing keeps each client's backlog far below the soft limit. */
    argv[a++] = "--max-conns";
    argv[a++] = "30000";
    argv[a++] = "--out-soft-limit";
    argv[a++] = "33554432";
    argv[a++] = "--out-hard-limit";
    argv[a++] = "134217728";
    argv[a++] = "--slow-timeout-ms";
    argv[a++] = "60000";
    argv[a++] = "--heartbeat-timeout-ms";
    argv[a++] = "60000";
    argv[a++] = "--log-level";
    argv[a++] = g_opts.verbose ? "info" : "warn";
    if (redis_addr) {
        argv[a++] = "--redis";
        argv[a++] = (char *)redis_addr;
    }
    for (int i = 0; extra && extra[i] && a < 60; i++) argv[a++] = (char *)extra[i];
    for (int i = 0; i < g_opts.nnode_args && a < 78; i++) argv[a++] = (char *)g_opts.node_args[i];
    argv[a] = NULL;
    snprintf(log_name, sizeof(log_name), "node-%s", id);
    if (spawn(&n->p, log_name, argv) < 0) return -1;
    double deadline = now_s() + START_TIMEOUT_S;
    char buf[256];
    while (now_s() < deadline) {
        if (!alive(&n->p)) return -1;
        if (http_get(n->admin_port, "/healthz", buf, sizeof(buf)) >= 0 && strncmp(buf, "ok", 2) == 0) {
            vlog("node %s on :%d (admin :%d), pid %d", id, n->port, n->admin_port, (int)n->p.pid);
            return 0;
        }
        sleep_s(0.02);
    }
    fprintf(stderr, "bench: node %s did not become ready; its log: %s\n", id, n->p.log);
    svc_stop(&n->p);
    return -1;
}

/* ---------------------------------------------------------------- Redis */

int redis_start(redis_svc *r) {
    char port[16];
    memset(r, 0, sizeof(*r));
    r->port = svc_free_port();
    if (r->port < 0) return -1;
    snprintf(port, sizeof(port), "%d", r->port);
    char *argv[] = {(char *)g_opts.redis_server, "--port", port, "--bind", "127.0.0.1", "--save", "",
                    "--appendonly", "no", "--protected-mode", "no",
                    /* subscribers are paced by the bench, never cut off */
                    "--client-output-buffer-limit", "pubsub 0 0 0", "--maxclients", "30000",
                    "--daemonize", "no", "--logfile", "", NULL};
    if (spawn(&r->p, "redis", argv) < 0) return -1;
    double deadline = now_s() + START_TIMEOUT_S;
    while (now_s() < deadline) {
        if (!alive(&r->p)) return -1;
        int fd = connect_loopback(r->port, 1.0);
        if (fd >= 0) {
            char buf[64];
            ssize_t n = -1;
            if (write(fd, "PING\r\n", 6) == 6) n = read(fd, buf, sizeof(buf) - 1);
            close(fd);
            if (n >= 5 && memcmp(buf, "+PONG", 5) == 0) {
                vlog("redis on :%d, pid %d", r->port, (int)r->p.pid);
                return 0;
            }
        }
        sleep_s(0.02);
    }
    fprintf(stderr, "bench: redis-server did not become ready; its log: %s\n", r->p.log);
    svc_stop(&r->p);
    return -1;
}

/* ------------------------------------------------------ child processes */

pid_t spawn_self(char *const argv[], int *to_child, int *from_child) {
    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC) < 0) return -1;
    if (pipe2(out, O_CLOEXEC) < 0) {
        close(in[0]);
        close(in[1]);
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(in[0], 0);
        dup2(out[1], 1);
        execv(g_opts.self, argv);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    *to_child = in[1];
    *from_child = out[0];
    return pid;
}

int read_line(int fd, char *buf, size_t size, double timeout_s) {
    size_t len = 0;
    double deadline = now_s() + timeout_s;
    while (len + 1 < size) {
        int left = (int)((deadline - now_s()) * 1000);
        if (left <= 0) return -1;
        struct pollfd pfd = {fd, POLLIN, 0};
        int r = poll(&pfd, 1, left);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        char ch;
        ssize_t n = read(fd, &ch, 1);
        if (n <= 0) return -1;
        if (ch == '\n') break;
        buf[len++] = ch;
    }
    buf[len] = '\0';
    return (int)len;
}
