/* dev.c -- --dev mode: librdkafka's mock cluster in-process as the node's Kafka. */
#include "broker/dev.h"
#include "broker/xmalloc.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <stdlib.h>

struct dev_kafka {
    rd_kafka_t *rk;               /* owns the mock cluster */
    rd_kafka_mock_cluster_t *mc;
    int partitions;
};

dev_kafka *dev_kafka_new(int partitions, char *errstr, size_t errlen) {
    dev_kafka *d = xcalloc(1, sizeof(*d));
    d->partitions = partitions;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "3", NULL, 0);
    d->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, errlen);
    if (!d->rk) {
        rd_kafka_conf_destroy(conf);
        free(d);
        return NULL;
    }
    d->mc = rd_kafka_mock_cluster_new(d->rk, 1);
    if (!d->mc) {
        snprintf(errstr, errlen, "cannot start librdkafka's mock cluster");
        dev_kafka_free(d);
        return NULL;
    }
    dev_kafka_ensure_topic(d, "demo");
    return d;
}

const char *dev_kafka_bootstrap(const dev_kafka *d) {
    return rd_kafka_mock_cluster_bootstraps(d->mc);
}

void dev_kafka_ensure_topic(dev_kafka *d, const char *topic_name) {
    /* Fails harmlessly with TOPIC_ALREADY_EXISTS for known topics. */
    rd_kafka_mock_topic_create(d->mc, topic_name, d->partitions, 1);
}

void dev_kafka_free(dev_kafka *d) {
    if (!d) return;
    if (d->mc) rd_kafka_mock_cluster_destroy(d->mc);
    if (d->rk) rd_kafka_destroy(d->rk);
    free(d);
}
