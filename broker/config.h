/* config.h -- the node's options: defaults, command line, config file, --help. */
#ifndef SUBWAY_CONFIG_H
#define SUBWAY_CONFIG_H

#include <stddef.h>
#include <stdint.h>

/* The largest --max-key accepted: keys are names, and a feed's name (with
 * its key) goes into every Redis key and channel of the feed. */
#define CONFIG_MAX_KEY_LIMIT 65536u

/* A repeatable NAME=VALUE option (--partitioner, --kafka-opt). */
typedef struct config_kv {
    char *name;
    char *value;
} config_kv;

typedef struct config {
    char *listen;                 /* HOST:PORT for clients */
    char *tls_listen;             /* HOST:PORT for clients speaking TLS, NULL for none */
    char *tls_cert_file;          /* PEM certificate chain of the TLS listener */
    char *tls_key_file;           /* its PEM private key */
    char *tls_ca_file;            /* PEM CAs client certificates are checked against */
    char *tls_verify_client;      /* "off", "optional" or "required" */
    int tls_ktls;                 /* ask OpenSSL for kernel TLS */
    char *admin;                  /* HOST:PORT for the HTTP admin, or "off" */
    char *admin_token_file;       /* bearer token for its pages, NULL for none */
    char *kafka;                  /* bootstrap brokers; NULL with dev */
    int dev;                      /* embedded mock Kafka */
    char *node_id;
    char *log_level;
    uint64_t heartbeat_ms;
    uint64_t heartbeat_timeout_ms; /* 0: 3 x heartbeat_ms (config_heartbeat_timeout_ms) */
    uint64_t max_frame;
    uint64_t max_subs;            /* per connection */
    uint64_t catchup_readers;     /* partitions read for catch-ups at once */
    uint64_t metrics_per_feed;    /* feeds with their own series in GET /metrics (0: none) */
    uint64_t publish_timeout_ms;  /* librdkafka's message.timeout.ms for PUBLISH */
    uint64_t max_message;         /* largest MESSAGE frame body sent */
    uint64_t max_conns;
    uint64_t hello_timeout_ms;    /* a connection must send HELLO within this */
    char *publish;                /* "acl" (or "on") or "off" */
    char *auth;                   /* "off", "optional" or "required" */
    char **auth_hmac_keys;        /* --auth-hmac-key-file */
    size_t auth_hmac_key_cnt;
    char **auth_public_keys;      /* --auth-public-key-file */
    size_t auth_public_key_cnt;
    char **anonymous_acl;         /* subscribe:PATTERN / publish:PATTERN */
    size_t anonymous_acl_cnt;
    uint64_t publish_rate;        /* PUBLISHes a second per connection; 0: unlimited */
    uint64_t publish_bytes_rate;  /* their key + value bytes a second; 0: unlimited */
    uint64_t max_publish_inflight; /* PUBLISHes awaiting Kafka per connection */
    uint64_t max_key;
    uint64_t out_soft_limit;
    uint64_t out_hard_limit;
    uint64_t slow_timeout_ms;
    uint64_t linger_ms;
    uint64_t metadata_refresh_ms; /* how often topics in use are checked for new partitions */
    uint64_t drain_timeout_ms;    /* SIGTERM: how long to flush GOAWAY */
    uint64_t goaway_grace_ms;     /* after GOAWAY: requests answered SHUTTING_DOWN this long, then closed */
    uint64_t dev_partitions;      /* partitions of topics the dev Kafka creates */
    char *redis;                  /* HOST:PORT of the coordination Redis, NULL for single node */
    char *redis_password;
    char *redis_sentinel;         /* Sentinels HOST:PORT,... (instead of redis), NULL for none */
    char *redis_master;           /* the master's name in them */
    uint64_t lease_ms;            /* feed owner lease */
    uint64_t node_ttl_ms;         /* node liveness key TTL */
    uint64_t reap_interval_ms;    /* how often dead nodes are looked for */
    uint64_t redis_timeout_ms;    /* a Redis that answers no PING this long is down */
    char **free_topics;           /* glob patterns of topics created on demand */
    size_t free_topic_cnt;
    uint64_t free_topic_partitions;
    uint64_t free_topic_replication;
    uint64_t free_topic_grace_ms; /* delete this long after the last feed of it went */
    char *demand_topic;           /* Kafka topic for demand events, NULL for none */
    char *default_partitioner;
    config_kv *partitioners;      /* TOPIC=murmur2|crc32|all */
    size_t partitioner_cnt;
    config_kv *kafka_opts;        /* librdkafka properties */
    size_t kafka_opt_cnt;
} config;

/* Fills c with the defaults. Returns 0, or -1 on out of memory. */
int config_defaults(config *c);

/* Applies argv (argv[0] skipped) on top of c; --config FILE is read where it
 * appears, so later flags override it. Returns 0, 1 when --help/--version was
 * printed (caller exits 0), or -1 with a message in err. */
int config_parse_args(config *c, int argc, char **argv, char *err, size_t errlen);

/* Reads "name = value" lines (option names without "--", # comments).
 * Returns 0 or -1 with a message naming the file and line in err. */
int config_parse_file(config *c, const char *path, char *err, size_t errlen);

/* 1 when the node runs in a cluster (--redis or --redis-sentinel). */
int config_cluster(const config *c);

/* --heartbeat-timeout-ms, or 3 x --heartbeat-ms when it is 0 (the default). */
uint64_t config_heartbeat_timeout_ms(const config *c);

/* Checks the combination (Kafka source given, limits sane). Returns 0 or -1. */
int config_validate(const config *c, char *err, size_t errlen);

/* 1 when the topic matches a --free-topic pattern. */
int config_is_free_topic(const config *c, const char *topic);

/* Prints the usage with every option and its default to stdout. */
void config_usage(void);

/* Frees everything c owns (not c itself); accepts a zeroed config. */
void config_free(config *c);

#endif
