/* health.c -- whether a measurement's baseline was sound: other processes' CPU, steal, and each scenario's own limits, with the reasons in words. */
#include "tests/bench/bench.h"

#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Limits of the machine during a window. Two cores carry Kafka, the node,
 * Redis and the bench at once: a quarter of a core taken by someone else is
 * already a different experiment. */
#define OTHER_CORES_MAX 0.25
#define STEAL_CORES_MAX 0.10

static pid_t extra_pids[8];       /* ours though not our descendants (Apache Kafka's JVM: setsid) */

void machine_own_pid(pid_t pid) {
    for (size_t i = 0; i < sizeof(extra_pids) / sizeof(extra_pids[0]); i++)
        if (!extra_pids[i] || extra_pids[i] == pid) {
            extra_pids[i] = pid;
            return;
        }
}

void machine_disown_pid(pid_t pid) {
    for (size_t i = 0; i < sizeof(extra_pids) / sizeof(extra_pids[0]); i++)
        if (extra_pids[i] == pid) extra_pids[i] = 0;
}

typedef struct proc_ent {
    pid_t pid, ppid;
    unsigned long long ticks;
} proc_ent;

static int is_ours(const proc_ent *v, size_t n, size_t i, pid_t self) {
    for (int depth = 0; depth < 32; depth++) {
        pid_t pid = v[i].pid;
        if (pid == self) return 1;
        for (size_t k = 0; k < sizeof(extra_pids) / sizeof(extra_pids[0]); k++)
            if (extra_pids[k] && extra_pids[k] == pid) return 1;
        pid_t up = v[i].ppid;
        if (up <= 1) return 0;
        size_t j = 0;
        while (j < n && v[j].pid != up) j++;
        if (j == n) return 0;
        i = j;
    }
    return 0;
}

void machine_snap(machine_snapshot *s) {
    memset(s, 0, sizeof(*s));
    s->at = now_s();
    FILE *f = fopen("/proc/stat", "r");
    if (f) {
        unsigned long long v[8] = {0};
        if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
                   &v[6], &v[7]) == 8) {
            s->tasks_ticks = v[0] + v[1] + v[2]; /* user, nice, system: what processes ran (irq time apart) */
            s->steal_ticks = v[7];
            s->iowait_ticks = v[4];
        }
        fclose(f);
    }
    /* Every process's CPU, split into ours (this one, its descendants, the
     * processes it registered), kernel threads and the rest. */
    size_t n = 0, cap = 512;
    proc_ent *ents = malloc(cap * sizeof(*ents));
    DIR *d = opendir("/proc");
    struct dirent *e;
    pid_t self = getpid();
    unsigned long long self_children = 0;
    while (ents && d && (e = readdir(d))) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
        proc_ent pe = {.pid = (pid_t)atoi(e->d_name)};
        unsigned long long ct;
        if (procstat_ticks(pe.pid, &pe.ppid, &pe.ticks, &ct) < 0) continue;
        if (pe.pid == self) self_children = ct;
        if (n == cap) {
            proc_ent *g = realloc(ents, 2 * cap * sizeof(*ents));
            if (!g) break;
            ents = g;
            cap *= 2;
        }
        ents[n++] = pe;
    }
    if (d) closedir(d);
    s->ours_ticks = self_children;  /* children already reaped (nodes, child pools) */
    for (size_t i = 0; ents && i < n; i++) {
        if (ents[i].pid == 2 || ents[i].ppid == 2) s->kernel_ticks += ents[i].ticks;
        else if (is_ours(ents, n, i, self)) s->ours_ticks += ents[i].ticks;
    }
    free(ents);
}

void machine_usage(const machine_snapshot *a, const machine_snapshot *b, machine_use *u) {
    double hz = (double)sysconf(_SC_CLK_TCK), secs = b->at - a->at;
    memset(u, 0, sizeof(*u));
    if (secs <= 0) return;
    double tasks = (double)(b->tasks_ticks - a->tasks_ticks) / hz;
    double ours = (double)(b->ours_ticks - a->ours_ticks) / hz;
    double kern = (double)(b->kernel_ticks - a->kernel_ticks) / hz;
    u->secs = secs;
    u->ours_cores = ours / secs;
    /* The per-process and the machine-wide clocks tick apart: never below 0. */
    u->other_cores = tasks - ours - kern > 0 ? (tasks - ours - kern) / secs : 0;
    u->steal_cores = (double)(b->steal_ticks - a->steal_ticks) / hz / secs;
    u->iowait_cores = (double)(b->iowait_ticks - a->iowait_ticks) / hz / secs;
}

/* --------------------------------------------------------------- verdicts */

void health_init(health *h) {
    memset(h, 0, sizeof(*h));
    h->ok = 1;
}

void health_require(health *h, int cond, const char *fmt, ...) {
    if (cond) return;
    h->ok = 0;
    size_t len = strlen(h->why);
    if (len + 3 >= sizeof(h->why)) return;
    if (len) {
        memcpy(h->why + len, "; ", 3);
        len += 2;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(h->why + len, sizeof(h->why) - len, fmt, ap);
    va_end(ap);
}

void health_machine(health *h, const machine_use *u) {
    h->use = *u;
    health_require(h, u->other_cores <= OTHER_CORES_MAX,
                   "other processes used %.2f cores of %ld (limit %.2f): the machine is busy", u->other_cores,
                   sysconf(_SC_NPROCESSORS_ONLN), OTHER_CORES_MAX);
    health_require(h, u->steal_cores <= STEAL_CORES_MAX, "the hypervisor stole %.2f cores (limit %.2f)",
                   u->steal_cores, STEAL_CORES_MAX);
}

void health_ratio(health *h, const char *who, uint64_t got, uint64_t want) {
    double r = want ? (double)got / (double)want : 0;
    health_require(h, want > 0 && r >= 0.999 && r <= 1.001, "%s received/expected %.4f (%llu of %llu; limit 1 +- 0.001)",
                   who, r, (unsigned long long)got, (unsigned long long)want);
}

/* The direct consumer's p50 and p99 above which its Kafka is too slow to
 * compare against, on a broker that answers a waiting fetch at once (the
 * mock holds every fetch for fetch.wait.max.ms): a few ms, and a p99 low
 * enough that a goal of p99 < 5 ms is within the machine's reach. */
#define DIRECT_P50_MS 5.0
#define DIRECT_P99_MS 10.0

void health_direct(health *h, const hist *hd, int fetch_wait) {
    double wait = g_opts.kafka_apache ? 0 : fetch_wait;
    if (hd->n == 0) {
        health_require(h, 0, "the direct consumer got no record produced in the window: %s lags", kafka_name());
        return;
    }
    double p50 = (double)hist_pct(hd, 50) / 1e6, p99 = (double)hist_pct(hd, 99) / 1e6;
    health_require(h, p50 <= wait + DIRECT_P50_MS && p99 <= wait + DIRECT_P99_MS,
                   "direct consumer p50 %.2f ms, p99 %.2f ms (limits %.0f and %.0f ms): %s is slow", p50, p99,
                   wait + DIRECT_P50_MS, wait + DIRECT_P99_MS, kafka_name());
}

void health_json(jrec *j, const health *h) {
    jr_int(j, "healthy", h->ok);
    if (!h->ok) jr_str(j, "unhealthy_why", h->why);
    jr_num(j, "other_cores", h->use.other_cores);
    jr_num(j, "steal_cores", h->use.steal_cores);
    jr_num(j, "iowait_cores", h->use.iowait_cores);
    jr_num(j, "bench_tree_cores", h->use.ours_cores);
}

void health_note(tab *t, const char *what, const health *h) {
    if (h->ok)
        tab_note(t, "%s: baseline healthy (other processes %.2f cores, steal %.2f).", what, h->use.other_cores,
                 h->use.steal_cores);
    else
        tab_note(t, "%s: NO VERDICT, the baseline was unhealthy: %s.", what, h->why);
}
