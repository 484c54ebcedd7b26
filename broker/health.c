/* health.c -- whether this node is fit to serve new clients (Kafka answering, coordination current, not draining), for /readyz and the logs. */
#include "broker/health.h"

#include <event2/event.h>
#include <stdio.h>
#include <string.h>

#include "broker/config.h"
#include "broker/log.h"
#include "broker/timeval.h"
#include "broker/upstream.h"
#include "coord/coord.h"

/* health_ev: asks again, unless the last question is still out (a Kafka
 * that does not answer takes the probe's whole timeout). */
static void probe_cb(evutil_socket_t fd, short what, void *arg) {
    broker *b = arg;
    if (b->probe_inflight || !b->up) return;
    b->probe_inflight = 1;
    upstream_probe(b->up);
}

int health_start(broker *b) {
    struct timeval tv = ms_timeval(HEALTH_PROBE_MS);
    b->health_ev = event_new(b->base, -1, EV_PERSIST, probe_cb, b);
    if (!b->health_ev || event_add(b->health_ev, &tv) < 0) return -1;
    probe_cb(-1, 0, b);
    return 0;
}

void health_stop(broker *b) {
    if (b->health_ev) event_free(b->health_ev);
    b->health_ev = NULL;
}

void health_on_probe(broker *b, const char *errstr) {
    b->probe_inflight = 0;
    int up = errstr == NULL;
    if (up && b->kafka_state != 1)
        log_info("kafka: reachable (%s) from node %s", b->kafka_bootstrap, b->node_id);
    else if (!up && (b->kafka_state != 0 || strcmp(b->kafka_err, errstr) != 0))
        log_warn("kafka: unreachable (%s) from node %s: %s; not ready", b->kafka_bootstrap, b->node_id, errstr);
    b->kafka_state = up;
    snprintf(b->kafka_err, sizeof(b->kafka_err), "%s", up ? "" : errstr);
}

int health_kafka_up(const broker *b) {
    return b->kafka_state == 1;
}

int health_ready(const broker *b, char *why, size_t len) {
    size_t n = 0;
    why[0] = '\0';
#define WHY(...) n += (size_t)snprintf(why + (n < len ? n : len), n < len ? len - n : 0, __VA_ARGS__)
    if (b->kafka_state < 0)
        WHY("%skafka: not asked yet", n ? "; " : "");
    else if (!b->kafka_state)
        WHY("%skafka: unreachable: %s", n ? "; " : "", b->kafka_err);
    if (config_cluster(b->cfg) && !coord_up(b->coord))
        WHY("%sredis: not connected under a current registration", n ? "; " : "");
    if (b->draining) WHY("%sdraining", n ? "; " : "");
#undef WHY
    return n == 0;
}
