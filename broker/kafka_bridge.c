/* kafka_bridge.c -- the one bridge from a librdkafka queue to the libevent loop, so nothing waits on Kafka in the loop. */
#include "broker/kafka_bridge.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker/xmalloc.h"

struct kafka_bridge {
    rd_kafka_queue_t *q;          /* not owned */
    int fd[2];                    /* librdkafka writes fd[1] when q turns non-empty */
    struct event *ev;
    kafka_bridge_cb *cb;
    void *cb_data;
};

static void readable(evutil_socket_t fd, short what, void *arg) {
    kafka_bridge *kb = arg;
    char buf[64];
    while (read(fd, buf, sizeof(buf)) > 0) {}
    kb->cb(kb->cb_data);
}

kafka_bridge *kafka_bridge_new(struct event_base *base, rd_kafka_queue_t *q, kafka_bridge_cb *cb, void *cb_data,
                               char *errstr, size_t errlen) {
    kafka_bridge *kb = xcalloc(1, sizeof(*kb));
    kb->fd[0] = kb->fd[1] = -1;
    kb->cb = cb;
    kb->cb_data = cb_data;
    if (pipe2(kb->fd, O_NONBLOCK | O_CLOEXEC) < 0) {
        snprintf(errstr, errlen, "pipe: %s", strerror(errno));
        kafka_bridge_free(kb);
        return NULL;
    }
    kb->ev = event_new(base, kb->fd[0], EV_READ | EV_PERSIST, readable, kb);
    if (!kb->ev || event_add(kb->ev, NULL) < 0) {
        snprintf(errstr, errlen, "cannot watch a Kafka queue");
        kafka_bridge_free(kb);
        return NULL;
    }
    kb->q = q;
    rd_kafka_queue_io_event_enable(q, kb->fd[1], "1", 1);
    return kb;
}

int kafka_bridge_set_priority(kafka_bridge *kb, int prio) {
    return event_priority_set(kb->ev, prio);
}

void kafka_bridge_again(kafka_bridge *kb) {
    event_active(kb->ev, EV_READ, 0);
}

void kafka_bridge_free(kafka_bridge *kb) {
    if (!kb) return;
    if (kb->q) rd_kafka_queue_io_event_enable(kb->q, -1, NULL, 0);
    if (kb->ev) event_free(kb->ev);
    for (int i = 0; i < 2; i++)
        if (kb->fd[i] >= 0) close(kb->fd[i]);
    free(kb);
}
