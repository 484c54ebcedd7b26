/* config.c -- the node's options: defaults, command line, config file, --help. */
#include "broker/config.h"
#include "broker/log.h"
#include "broker/xmalloc.h"

#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum opt_kind { OPT_STR, OPT_UINT, OPT_FLAG, OPT_KV, OPT_FILE, OPT_LIST };

typedef struct opt {
    const char *name;
    enum opt_kind kind;
    size_t off;                   /* field in struct config */
    size_t cnt_off;               /* OPT_KV: the count field */
    const char *def;              /* default, as text */
    const char *help;
} opt;

#define F(x) offsetof(config, x)
static const opt opts[] = {
    {"listen", OPT_STR, F(listen), 0, "127.0.0.1:7700", "address clients connect to"},
    {"tls-listen", OPT_STR, F(tls_listen), 0, NULL,
     "also take clients speaking TLS (1.2 or 1.3) on this HOST:PORT, with --tls-cert-file and --tls-key-file"},
    {"tls-cert-file", OPT_STR, F(tls_cert_file), 0, NULL, "PEM certificate (chain) of --tls-listen"},
    {"tls-key-file", OPT_STR, F(tls_key_file), 0, NULL, "PEM private key of --tls-cert-file"},
    {"tls-ca-file", OPT_STR, F(tls_ca_file), 0, NULL, "PEM CA certificates client certificates must chain to"},
    {"tls-verify-client", OPT_STR, F(tls_verify_client), 0, "off",
     "client certificates: off (not asked for), optional (checked when shown), required (no certificate: refused)"},
    {"tls-ktls", OPT_FLAG, F(tls_ktls), 0, NULL,
     "ask OpenSSL for kernel TLS, so records go out with writev from the shared blocks (needs the kernel's tls module)"},
    {"admin", OPT_STR, F(admin), 0, "127.0.0.1:7701", "HTTP admin address (GET /stats, /metrics, /healthz, /readyz, /feeds, /cluster/feeds), or off"},
    {"admin-token-file", OPT_STR, F(admin_token_file), 0, NULL,
     "file holding the bearer token the admin's pages (all but /healthz, /readyz) ask for; needed when --admin is not on loopback"},
    {"auth", OPT_STR, F(auth), 0, "off",
     "off: no tokens; optional: a token's permissions, else --anonymous-acl's; required: every client shows a token"},
    {"auth-hmac-key-file", OPT_LIST, F(auth_hmac_keys), F(auth_hmac_key_cnt), NULL,
     "HS256 secret (the file's bytes, at least 32) tokens may be signed with, repeatable (rotation)"},
    {"auth-public-key-file", OPT_LIST, F(auth_public_keys), F(auth_public_key_cnt), NULL,
     "PEM public key (RSA >= 2048 bits: RS256; EC P-256: ES256) tokens may be signed with, repeatable"},
    {"anonymous-acl", OPT_LIST, F(anonymous_acl), F(anonymous_acl_cnt), NULL,
     "with --auth optional, what a client without a token may do: subscribe:TOPIC/KEY or publish:TOPIC/KEY, repeatable"},
    {"kafka", OPT_STR, F(kafka), 0, NULL, "Kafka bootstrap brokers, e.g. 127.0.0.1:9092"},
    {"dev", OPT_FLAG, F(dev), 0, NULL, "run with an embedded mock Kafka (no services needed)"},
    {"config", OPT_FILE, 0, 0, NULL, "read options from FILE (name = value lines)"},
    {"redis", OPT_STR, F(redis), 0, NULL, "Redis HOST:PORT for cluster coordination (none: single node)"},
    {"redis-password", OPT_STR, F(redis_password), 0, NULL, "password for --redis (AUTH)"},
    {"redis-sentinel", OPT_STR, F(redis_sentinel), 0, NULL,
     "Sentinels HOST:PORT[,HOST:PORT...] to find the coordination Redis through (with --redis-master)"},
    {"redis-master", OPT_STR, F(redis_master), 0, NULL, "the master's name in the Sentinels (--redis-sentinel)"},
    {"lease-ms", OPT_UINT, F(lease_ms), 0, "3000", "feed owner lease; a dead owner is replaced within it"},
    {"node-ttl-ms", OPT_UINT, F(node_ttl_ms), 0, "5000", "a node silent this long is reaped by the others"},
    {"reap-interval-ms", OPT_UINT, F(reap_interval_ms), 0, "1000", "how often a node looks for dead nodes"},
    {"redis-timeout-ms", OPT_UINT, F(redis_timeout_ms), 0, "1500",
     "Redis silent this long (a PING unanswered) counts as down, even with its connection open"},
    {"free-topic", OPT_LIST, F(free_topics), F(free_topic_cnt), NULL, "glob of topics created on first subscription and deleted when unused, repeatable"},
    {"free-topic-partitions", OPT_UINT, F(free_topic_partitions), 0, "1", "partitions of a free topic"},
    {"free-topic-replication", OPT_UINT, F(free_topic_replication), 0, "1", "replication factor of a free topic"},
    {"free-topic-grace-ms", OPT_UINT, F(free_topic_grace_ms), 0, "60000", "delete a free topic this long after its cluster-wide use ended"},
    {"demand-topic", OPT_STR, F(demand_topic), 0, NULL, "also write demand events (feed count 0->1, ->0) to this Kafka topic"},
    {"node-id", OPT_STR, F(node_id), 0, NULL, "node name in WELCOME and /stats (default HOSTNAME-PID)"},
    {"log-level", OPT_STR, F(log_level), 0, "info", "debug, info, warn or error"},
    {"heartbeat-ms", OPT_UINT, F(heartbeat_ms), 0, "5000", "interval of the node's PINGs, announced in WELCOME"},
    {"heartbeat-timeout-ms", OPT_UINT, F(heartbeat_timeout_ms), 0, "0",
     "close a client silent this long (0: 3 x --heartbeat-ms)"},
    {"max-frame", OPT_UINT, F(max_frame), 0, "1048576", "largest frame body accepted, in bytes"},
    {"max-subs", OPT_UINT, F(max_subs), 0, "1024", "subscriptions per connection"},
    {"max-conns", OPT_UINT, F(max_conns), 0, "10000", "client connections per node"},
    {"hello-timeout-ms", OPT_UINT, F(hello_timeout_ms), 0, "5000",
     "close a connection that has not sent HELLO this long after connecting"},
    {"max-key", OPT_UINT, F(max_key), 0, "1024", "longest key in a SUBSCRIBE or PUBLISH, in bytes"},
    {"out-soft-limit", OPT_UINT, F(out_soft_limit), 0, "1048576", "queued output above which records are dropped"},
    {"out-hard-limit", OPT_UINT, F(out_hard_limit), 0, "8388608", "queued output above which a client is closed"},
    {"slow-timeout-ms", OPT_UINT, F(slow_timeout_ms), 0, "10000", "close a client over the soft limit this long"},
    {"max-message", OPT_UINT, F(max_message), 0, "16777216",
     "largest MESSAGE frame sent; a record that does not fit comes as DROPPED 1"},
    {"publish", OPT_STR, F(publish), 0, "acl",
     "acl: clients may PUBLISH where their token (or --anonymous-acl) allows, anywhere with --auth off; off: never (FORBIDDEN)"},
    {"publish-rate", OPT_UINT, F(publish_rate), 0, "10000",
     "PUBLISHes a second per connection (bursts of one second's worth); faster ones wait (0: no limit)"},
    {"publish-bytes-rate", OPT_UINT, F(publish_bytes_rate), 0, "16777216",
     "PUBLISH key+value bytes a second per connection; faster ones wait (0: no limit)"},
    {"max-publish-inflight", OPT_UINT, F(max_publish_inflight), 0, "1024",
     "PUBLISHes per connection awaiting Kafka's ack; more wait for acks"},
    {"publish-timeout-ms", OPT_UINT, F(publish_timeout_ms), 0, "10000",
     "a PUBLISH Kafka has not acknowledged this long is answered with ERROR KAFKA"},
    {"catchup-readers", OPT_UINT, F(catchup_readers), 0, "16",
     "partitions read for catch-ups (SUBSCRIBE with a start) at once; more wait their turn"},
    {"metrics-per-feed", OPT_UINT, F(metrics_per_feed), 0, "0",
     "GET /metrics: series of their own for this many feeds, those with the most subscribers (0: none)"},
    {"linger-ms", OPT_UINT, F(linger_ms), 0, "5000", "keep an unused feed's Kafka partitions this long"},
    {"metadata-refresh-ms", OPT_UINT, F(metadata_refresh_ms), 0, "30000", "how often topics in use are checked for added partitions"},
    {"goaway-grace-ms", OPT_UINT, F(goaway_grace_ms), 0, "1000",
     "after GOAWAY, a client's requests get SHUTTING_DOWN this long before it is closed (at most --drain-timeout-ms)"},
    {"drain-timeout-ms", OPT_UINT, F(drain_timeout_ms), 0, "5000", "on SIGTERM, wait this long for GOAWAYs to flush"},
    {"dev-partitions", OPT_UINT, F(dev_partitions), 0, "4", "partitions of topics the --dev Kafka creates"},
    {"default-partitioner", OPT_STR, F(default_partitioner), 0, "murmur2", "murmur2 (Java client), crc32 (librdkafka consistent_random) or all"},
    {"partitioner", OPT_KV, F(partitioners), F(partitioner_cnt), NULL, "TOPIC=murmur2|crc32|all, repeatable"},
    {"kafka-opt", OPT_KV, F(kafka_opts), F(kafka_opt_cnt), NULL, "librdkafka property KEY=VALUE, repeatable"},
};
#undef F
#define NOPTS (sizeof(opts) / sizeof(opts[0]))

static const opt *opt_find(const char *name) {
    for (size_t i = 0; i < NOPTS; i++)
        if (strcmp(opts[i].name, name) == 0) return &opts[i];
    return NULL;
}

static int parse_uint(const char *s, uint64_t *out) {
    char *end;
    if (*s == '\0' || *s == '-') return -1;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end != '\0') return -1;
    *out = v;
    return 0;
}

static int opt_set(config *c, const opt *o, const char *value, char *err, size_t errlen) {
    char *base = (char *)c;
    switch (o->kind) {
    case OPT_STR: {
        char **field = (char **)(base + o->off);
        free(*field);
        *field = xstrdup(value);
        return 0;
    }
    case OPT_UINT:
        if (parse_uint(value, (uint64_t *)(base + o->off)) < 0) {
            snprintf(err, errlen, "--%s: '%s' is not a non-negative integer", o->name, value);
            return -1;
        }
        return 0;
    case OPT_FLAG:
        if (strcmp(value, "1") && strcmp(value, "true") && strcmp(value, "yes") &&
            strcmp(value, "0") && strcmp(value, "false") && strcmp(value, "no")) {
            snprintf(err, errlen, "--%s: '%s' is not true or false", o->name, value);
            return -1;
        }
        *(int *)(base + o->off) = value[0] == '1' || value[0] == 't' || value[0] == 'y';
        return 0;
    case OPT_KV: {
        const char *eq = strchr(value, '=');
        if (!eq || eq == value) {
            snprintf(err, errlen, "--%s: '%s' is not NAME=VALUE", o->name, value);
            return -1;
        }
        config_kv **arr = (config_kv **)(base + o->off);
        size_t *cnt = (size_t *)(base + o->cnt_off);
        config_kv *n = *arr = xreallocarray(*arr, *cnt + 1, sizeof(**arr));
        n[*cnt].name = xstrndup(value, (size_t)(eq - value));
        n[*cnt].value = xstrdup(eq + 1);
        (*cnt)++;
        return 0;
    }
    case OPT_FILE:
        return config_parse_file(c, value, err, errlen);
    case OPT_LIST: {
        char ***arr = (char ***)(base + o->off);
        size_t *cnt = (size_t *)(base + o->cnt_off);
        char **n = *arr = xreallocarray(*arr, *cnt + 1, sizeof(**arr));
        n[*cnt] = xstrdup(value);
        (*cnt)++;
        return 0;
    }
    }
    return 0;
}

int config_defaults(config *c) {
    char err[64];
    memset(c, 0, sizeof(*c));
    for (size_t i = 0; i < NOPTS; i++)
        if (opts[i].def && opt_set(c, &opts[i], opts[i].def, err, sizeof(err)) < 0) return -1;
    return 0;
}

int config_parse_args(config *c, int argc, char **argv, char *err, size_t errlen) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            config_usage();
            return 1;
        }
        if (strcmp(a, "--version") == 0) {
            printf("subway %s\n", SUBWAY_VERSION);
            return 1;
        }
        if (strncmp(a, "--", 2) != 0) {
            snprintf(err, errlen, "unexpected argument '%s' (see --help)", a);
            return -1;
        }
        char name[64];
        const char *eq = strchr(a + 2, '=');
        size_t nlen = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
        if (nlen >= sizeof(name)) nlen = sizeof(name) - 1;
        memcpy(name, a + 2, nlen);
        name[nlen] = '\0';
        const opt *o = opt_find(name);
        if (!o) {
            snprintf(err, errlen, "unknown option '--%s' (see --help)", name);
            return -1;
        }
        const char *value;
        if (eq)
            value = eq + 1;
        else if (o->kind == OPT_FLAG)
            value = "1";
        else if (i + 1 < argc)
            value = argv[++i];
        else {
            snprintf(err, errlen, "option '--%s' needs a value", name);
            return -1;
        }
        if (opt_set(c, o, value, err, errlen) < 0) return -1;
    }
    return 0;
}

static char *trim(char *s) {
    while (*s == ' ' || *s == '\t') s++;
    char *e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r')) *--e = '\0';
    return s;
}

int config_parse_file(config *c, const char *path, char *err, size_t errlen) {
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "cannot read config file %s: %s", path, strerror(errno));
        return -1;
    }
    char line[4096], sub[512];
    int lineno = 0, rc = 0;
    while (rc == 0 && fgets(line, sizeof(line), f)) {
        lineno++;
        char *s = trim(line);
        if (*s == '\0' || *s == '#') continue;
        char *eq = strchr(s, '=');
        const char *name = s, *value = "1";
        if (eq) {
            *eq = '\0';
            name = trim(s);
            value = trim(eq + 1);
        }
        const opt *o = opt_find(name);
        if (!o || o->kind == OPT_FILE) {
            snprintf(err, errlen, "%s:%d: unknown option '%s'", path, lineno, name);
            rc = -1;
        } else if (!eq && o->kind != OPT_FLAG) {
            snprintf(err, errlen, "%s:%d: '%s' needs '= value'", path, lineno, name);
            rc = -1;
        } else if (opt_set(c, o, value, sub, sizeof(sub)) < 0) {
            snprintf(err, errlen, "%s:%d: %s", path, lineno, sub);
            rc = -1;
        }
    }
    fclose(f);
    return rc;
}

static int partitioner_known(const char *p) {
    return strcmp(p, "murmur2") == 0 || strcmp(p, "crc32") == 0 || strcmp(p, "all") == 0;
}

int config_cluster(const config *c) {
    return c->redis || c->redis_sentinel;
}

uint64_t config_heartbeat_timeout_ms(const config *c) {
    return c->heartbeat_timeout_ms ? c->heartbeat_timeout_ms : 3 * c->heartbeat_ms;
}

int config_validate(const config *c, char *err, size_t errlen) {
    if (!c->dev && (!c->kafka || !*c->kafka)) {
        snprintf(err, errlen,
                 "no Kafka to read from: pass --kafka BROKERS (e.g. --kafka 127.0.0.1:9092), "
                 "or --dev for an embedded mock Kafka");
        return -1;
    }
    if (c->dev && c->kafka) {
        snprintf(err, errlen, "--dev and --kafka exclude each other: --dev embeds its own Kafka");
        return -1;
    }
    if (log_level_parse(c->log_level) < 0) {
        snprintf(err, errlen, "--log-level: '%s' is not debug, info, warn or error", c->log_level);
        return -1;
    }
    if (c->heartbeat_ms < 10 || config_heartbeat_timeout_ms(c) <= c->heartbeat_ms) {
        snprintf(err, errlen, "--heartbeat-ms must be >= 10 and below --heartbeat-timeout-ms");
        return -1;
    }
    if (c->max_frame < 64 || c->max_frame > (64u << 20)) {
        snprintf(err, errlen, "--max-frame must be between 64 and 67108864");
        return -1;
    }
    if (c->max_key > CONFIG_MAX_KEY_LIMIT) {
        snprintf(err, errlen, "--max-key must be at most %u bytes (got %llu)", CONFIG_MAX_KEY_LIMIT,
                 (unsigned long long)c->max_key);
        return -1;
    }
    if (c->max_message < 1024) {
        snprintf(err, errlen, "--max-message must be at least 1024 bytes");
        return -1;
    }
    if (c->publish_timeout_ms < 1 || c->publish_timeout_ms > 3600000) {
        snprintf(err, errlen, "--publish-timeout-ms must be 1..3600000");
        return -1;
    }
    if (c->hello_timeout_ms < 1) {
        snprintf(err, errlen, "--hello-timeout-ms must be at least 1");
        return -1;
    }
    if (strcmp(c->publish, "acl") && strcmp(c->publish, "on") && strcmp(c->publish, "off")) {
        snprintf(err, errlen, "--publish: '%s' is not acl or off", c->publish);
        return -1;
    }
    if (strcmp(c->auth, "off") && strcmp(c->auth, "optional") && strcmp(c->auth, "required")) {
        snprintf(err, errlen, "--auth: '%s' is not off, optional or required", c->auth);
        return -1;
    }
    if (strcmp(c->tls_verify_client, "off") && strcmp(c->tls_verify_client, "optional") &&
        strcmp(c->tls_verify_client, "required")) {
        snprintf(err, errlen, "--tls-verify-client: '%s' is not off, optional or required", c->tls_verify_client);
        return -1;
    }
    if (c->tls_listen && (!c->tls_cert_file || !c->tls_key_file)) {
        snprintf(err, errlen, "--tls-listen needs --tls-cert-file and --tls-key-file");
        return -1;
    }
    if (!c->tls_listen && (c->tls_cert_file || c->tls_key_file || c->tls_ca_file || c->tls_ktls)) {
        snprintf(err, errlen, "--tls-cert-file, --tls-key-file, --tls-ca-file and --tls-ktls need --tls-listen");
        return -1;
    }
    if (strcmp(c->tls_verify_client, "off") && !c->tls_ca_file) {
        snprintf(err, errlen, "--tls-verify-client %s needs --tls-ca-file to check certificates against",
                 c->tls_verify_client);
        return -1;
    }
    if (c->max_publish_inflight < 1 || c->publish_rate > 1000000000 || c->publish_bytes_rate > (1ull << 40)) {
        snprintf(err, errlen, "--max-publish-inflight must be >= 1, --publish-rate <= 1e9, --publish-bytes-rate <= 2^40");
        return -1;
    }
    if (c->catchup_readers < 1) {
        snprintf(err, errlen, "--catchup-readers must be at least 1");
        return -1;
    }
    if (c->max_subs < 1 || c->max_conns < 1 || c->max_key < 1 || c->max_key > c->max_frame) {
        snprintf(err, errlen, "--max-subs, --max-conns and --max-key must be >= 1 (max-key <= max-frame)");
        return -1;
    }
    if (c->out_hard_limit < c->out_soft_limit || c->out_soft_limit < 1) {
        snprintf(err, errlen, "--out-hard-limit must be >= --out-soft-limit >= 1");
        return -1;
    }
    if (c->redis_sentinel && (c->redis || !c->redis_master)) {
        snprintf(err, errlen, "--redis-sentinel needs --redis-master NAME, and replaces --redis");
        return -1;
    }
    if (c->redis_master && !c->redis_sentinel) {
        snprintf(err, errlen, "--redis-master needs --redis-sentinel");
        return -1;
    }
    if (config_cluster(c) && (c->lease_ms < 30 || c->node_ttl_ms < 30 || c->reap_interval_ms < 10 ||
                     c->redis_timeout_ms < 10)) {
        snprintf(err, errlen, "--lease-ms and --node-ttl-ms must be >= 30, --reap-interval-ms and "
                              "--redis-timeout-ms >= 10");
        return -1;
    }
    if (c->free_topic_cnt && (c->free_topic_partitions < 1 || c->free_topic_replication < 1)) {
        snprintf(err, errlen, "--free-topic-partitions and --free-topic-replication must be >= 1");
        return -1;
    }
    if (c->dev_partitions < 1 || c->dev_partitions > 1000) {
        snprintf(err, errlen, "--dev-partitions must be between 1 and 1000");
        return -1;
    }
    if (!partitioner_known(c->default_partitioner)) {
        snprintf(err, errlen, "--default-partitioner: '%s' is not murmur2, crc32 or all", c->default_partitioner);
        return -1;
    }
    for (size_t i = 0; i < c->partitioner_cnt; i++)
        if (!partitioner_known(c->partitioners[i].value)) {
            snprintf(err, errlen, "--partitioner %s: '%s' is not murmur2, crc32 or all",
                     c->partitioners[i].name, c->partitioners[i].value);
            return -1;
        }
    return 0;
}

int config_is_free_topic(const config *c, const char *topic) {
    for (size_t i = 0; i < c->free_topic_cnt; i++)
        if (fnmatch(c->free_topics[i], topic, 0) == 0) return 1;
    return 0;
}

void config_usage(void) {
    printf("usage: subway (--kafka BROKERS | --dev) [options]\n\n"
           "A subway node: clients subscribe to topic/key feeds over TCP and share\n"
           "one upstream Kafka consumer per feed.\n\noptions (default in brackets):\n");
    for (size_t i = 0; i < NOPTS; i++) {
        const opt *o = &opts[i];
        char left[64];
        const char *arg = o->kind == OPT_UINT ? " N" : o->kind == OPT_FLAG ? "" : o->kind == OPT_KV ? " K=V" : o->kind == OPT_FILE ? " FILE" : o->kind == OPT_LIST ? " GLOB" : " VALUE";
        snprintf(left, sizeof(left), "--%s%s", o->name, arg);
        printf("  %-28s %s", left, o->help);
        if (o->def) printf(" [%s]", o->def);
        printf("\n");
    }
    printf("  %-28s %s\n  %-28s %s\n", "-h, --help", "this text", "--version", "print the version");
    printf("\nA config file takes the same names without '--', one 'name = value' per line.\n");
}

void config_free(config *c) {
    if (!c) return;
    for (size_t i = 0; i < NOPTS; i++)
        if (opts[i].kind == OPT_STR) {
            char **field = (char **)((char *)c + opts[i].off);
            free(*field);
            *field = NULL;
        }
    for (size_t i = 0; i < c->partitioner_cnt; i++) {
        free(c->partitioners[i].name);
        free(c->partitioners[i].value);
    }
    for (size_t i = 0; i < c->kafka_opt_cnt; i++) {
        free(c->kafka_opts[i].name);
        free(c->kafka_opts[i].value);
    }
    char ***lists[] = {&c->free_topics, &c->auth_hmac_keys, &c->auth_public_keys, &c->anonymous_acl};
    size_t *counts[] = {&c->free_topic_cnt, &c->auth_hmac_key_cnt, &c->auth_public_key_cnt, &c->anonymous_acl_cnt};
    for (size_t l = 0; l < sizeof(lists) / sizeof(lists[0]); l++) {
        for (size_t i = 0; i < *counts[l]; i++) free((*lists[l])[i]);
        free(*lists[l]);
        *lists[l] = NULL;
        *counts[l] = 0;
    }
    free(c->partitioners);
    free(c->kafka_opts);
    c->partitioners = c->kafka_opts = NULL;
    c->partitioner_cnt = c->kafka_opt_cnt = 0;
}
