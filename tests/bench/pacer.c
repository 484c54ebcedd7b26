/* pacer.c -- a producer thread that keeps the feed as full as delivery drains it (window), or at a fixed rate. */
#include "tests/bench/bench.h"

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pacer {
    pacer_conf conf;
    pthread_t th;
    _Atomic int stop;
    _Atomic uint64_t accounted;   /* least records any subscriber has accounted for */
    _Atomic uint64_t produced;
    redisContext *rc;
    char *value;
    char err[256];
};

/* How many more records may go now. */
static uint64_t pacer_allowed(pacer *pc, double start) {
    uint64_t produced = atomic_load(&pc->produced);
    if (pc->conf.rate > 0) {
        uint64_t due = (uint64_t)((now_s() - start) * pc->conf.rate) + 1;
        return due > produced ? due - produced : 0;
    }
    uint64_t acc = atomic_load(&pc->accounted);
    return acc + pc->conf.window > produced ? acc + pc->conf.window - produced : 0;
}

static int redis_burst(pacer *pc, uint64_t n) {
    size_t chlen = strlen(pc->conf.channel);
    for (uint64_t i = 0; i < n; i++) {
        uint64_t ts = wall_ns();
        memcpy(pc->value, &ts, 8);
        redisAppendCommand(pc->rc, "PUBLISH %b %b", pc->conf.channel, chlen, pc->value, (size_t)g_opts.value_len);
    }
    for (uint64_t i = 0; i < n; i++) {
        void *reply;
        if (redisGetReply(pc->rc, &reply) != REDIS_OK) {
            snprintf(pc->err, sizeof(pc->err), "PUBLISH: %s", pc->rc->errstr);
            return -1;
        }
        freeReplyObject(reply);
    }
    atomic_fetch_add(&pc->produced, n);
    return 0;
}

static void *pacer_main(void *arg) {
    pacer *pc = arg;
    double start = now_s();
    uint64_t burst_max = pc->conf.kp ? 1000 : (uint64_t)(pc->conf.batch > 0 ? pc->conf.batch : 256);
    size_t key_len = pc->conf.key ? strlen(pc->conf.key) : 0;
    while (!atomic_load(&pc->stop)) {
        uint64_t n = pacer_allowed(pc, start);
        if (n > burst_max) n = burst_max;
        if (n == 0) {
            if (pc->conf.kp) kprod_poll(pc->conf.kp);
            sleep_s(pc->conf.rate > 0 ? 0.0002 : 0.00005);
            continue;
        }
        if (pc->conf.kp) {
            for (uint64_t i = 0; i < n; i++) {
                if (kprod_send(pc->conf.kp, pc->conf.key, key_len, -1) < 0) {
                    snprintf(pc->err, sizeof(pc->err), "produce failed");
                    return NULL;
                }
                atomic_fetch_add(&pc->produced, 1);
            }
            kprod_poll(pc->conf.kp);
        } else if (redis_burst(pc, n) < 0) {
            fprintf(stderr, "bench: %s\n", pc->err);
            return NULL;
        }
    }
    return NULL;
}

pacer *pacer_start(const pacer_conf *conf, char *errstr, size_t errlen) {
    pacer *pc = calloc(1, sizeof(*pc));
    if (!pc) {
        snprintf(errstr, errlen, "out of memory");
        return NULL;
    }
    pc->conf = *conf;
    if (!conf->kp) {
        pc->value = calloc(1, (size_t)g_opts.value_len);
        pc->rc = redisConnect("127.0.0.1", conf->redis_port);
        if (!pc->value || !pc->rc || pc->rc->err) {
            snprintf(errstr, errlen, "redis publisher: %s", pc->rc ? pc->rc->errstr : "out of memory");
            if (pc->rc) redisFree(pc->rc);
            free(pc->value);
            free(pc);
            return NULL;
        }
        for (int i = 8; i < g_opts.value_len; i++) pc->value[i] = (char)('a' + i % 26);
    }
    if (pthread_create(&pc->th, NULL, pacer_main, pc) != 0) {
        snprintf(errstr, errlen, "cannot start the producer thread");
        if (pc->rc) redisFree(pc->rc);
        free(pc->value);
        free(pc);
        return NULL;
    }
    return pc;
}

void pacer_set_accounted(pacer *pc, uint64_t min_accounted) {
    atomic_store(&pc->accounted, min_accounted);
}

uint64_t pacer_produced(const pacer *pc) {
    return atomic_load(&pc->produced);
}

uint64_t pacer_stop(pacer *pc) {
    if (!pc) return 0;
    atomic_store(&pc->stop, 1);
    pthread_join(pc->th, NULL);
    uint64_t n = atomic_load(&pc->produced);
    if (pc->rc) redisFree(pc->rc);
    free(pc->value);
    free(pc);
    return n;
}

