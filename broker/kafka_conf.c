/* kafka_conf.c -- librdkafka configuration shared by the node's consumer and producer. */
#include "broker/kafka_conf.h"

#include <stdio.h>

#include "broker/log.h"

static void kafka_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
    /* syslog levels: 0-3 errors, 4 warning, 5-6 info, 7 debug */
    int lvl = level <= 3 ? LOG_ERROR : level == 4 ? LOG_WARN : level <= 6 ? LOG_INFO : LOG_DEBUG;
    log_msg(lvl, "kafka %s: %s: %s", rd_kafka_name(rk), fac, buf);
}

int kafka_conf_set(rd_kafka_conf_t *conf, const char *name, const char *value, char *errstr, size_t errlen) {
    char e[256];
    if (rd_kafka_conf_set(conf, name, value, e, sizeof(e)) != RD_KAFKA_CONF_OK) {
        snprintf(errstr, errlen, "Kafka property %s=%s: %s", name, value, e);
        return -1;
    }
    return 0;
}

rd_kafka_conf_t *kafka_conf_new(broker *b, char *errstr, size_t errlen) {
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char id[160];
    snprintf(id, sizeof(id), "subway-%s", b->node_id);
    if (kafka_conf_set(conf, "bootstrap.servers", b->kafka_bootstrap, errstr, errlen) < 0 ||
        kafka_conf_set(conf, "client.id", id, errstr, errlen) < 0) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_conf_set_log_cb(conf, kafka_log_cb);
    return conf;
}

int kafka_conf_apply_user(broker *b, rd_kafka_conf_t *conf, char *errstr, size_t errlen) {
    for (size_t i = 0; i < b->cfg->kafka_opt_cnt; i++)
        if (kafka_conf_set(conf, b->cfg->kafka_opts[i].name, b->cfg->kafka_opts[i].value, errstr, errlen) < 0)
            return -1;
    return 0;
}
