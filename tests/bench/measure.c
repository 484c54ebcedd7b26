/* measure.c -- what every scenario does: subscribe a pool, drive it against a producer until its baseline is healthy, pick keys. */
#include "tests/bench/bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>

#include "broker/partitioner.h"

#define SETUP_TIMEOUT_S 60.0
#define STALL_S 5.0

int pool_setup(pool *p, int port, const char *what) {
    double t = now_s();
    pool_connect(p, port, NULL);
    if (pool_wait_connected(p, SETUP_TIMEOUT_S) < 0) {
        fprintf(stderr, "bench: %s: %zu of %zu connections welcomed (%s)\n", what, pool_connected(p),
                pool_count(p), pool_err(p));
        return -1;
    }
    pool_subscribe(p);
    if (pool_wait_subscribed(p, SETUP_TIMEOUT_S) < 0) {
        fprintf(stderr, "bench: %s: %zu of %zu connections subscribed (%s)\n", what, pool_subscribed(p),
                pool_count(p), pool_err(p));
        return -1;
    }
    vlog("%s: %zu connections subscribed in %.2f s", what, pool_count(p), now_s() - t);
    return 0;
}

int drive(pool *p, pacer *pc, double secs) {
    double end = now_s() + secs, last_change = now_s();
    uint64_t last_acc = pool_min_accounted(p);
    while (now_s() < end) {
        pool_run(p, 1);
        uint64_t acc = pool_min_accounted(p);
        if (pc) pacer_set_accounted(pc, acc);
        if (acc != last_acc || (pc && pacer_produced(pc) <= acc)) {
            last_acc = acc;
            last_change = now_s();
        } else if (now_s() - last_change > STALL_S) {
            fprintf(stderr, "bench: delivery stalled at %llu records (produced %llu): %s\n",
                    (unsigned long long)acc, (unsigned long long)(pc ? pacer_produced(pc) : 0), pool_err(p));
            return -1;
        }
    }
    return 0;
}

double health_probe_s(void) { return g_opts.tiny ? 0.1 : 2.0; }

int warm_until_healthy(pool *p, pacer *pc, const baseline_probe *bp, health *h, double *warmed_s) {
    double t0 = now_s(), budget = g_opts.health_wait_s;
    if (bp && bp->max_s > 0 && bp->max_s < budget) budget = bp->max_s;
    int probes = 0;
    for (;;) {
        machine_snapshot a, b;
        machine_use u;
        if (bp && bp->begin) bp->begin(bp->arg);
        machine_snap(&a);
        if (p ? drive(p, pc, health_probe_s()) < 0 : (sleep_s(health_probe_s()), 0)) return -1;
        machine_snap(&b);
        machine_usage(&a, &b, &u);
        health_init(h);
        health_machine(h, &u);
        if (bp && bp->judge) bp->judge(bp->arg, h);
        probes++;
        if (h->ok || now_s() - t0 >= budget) break;
        vlog("baseline not healthy yet (%s); warming on", h->why);
    }
    *warmed_s = now_s() - t0;
    if (!h->ok) vlog("baseline still unhealthy after %.1f s (%d probes): %s", *warmed_s, probes, h->why);
    return 0;
}

double self_cpu_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           (double)ru.ru_stime.tv_usec / 1e6;
}

void keys_per_partition(int nparts, int per, char (*keys)[32]) {
    int *got = calloc((size_t)nparts, sizeof(*got));
    int found = 0;
    for (int n = 0; found < nparts * per && got; n++) {
        char k[32];
        int len = snprintf(k, sizeof(k), "k-%d", n);
        int32_t part = partitioner_partition(PARTITIONER_MURMUR2, k, (size_t)len, nparts);
        if (part < 0 || got[part] >= per) continue;
        snprintf(keys[part * per + got[part]], 32, "%s", k);
        got[part]++;
        found++;
    }
    free(got);
}
