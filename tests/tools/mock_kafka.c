/* mock_kafka.c -- a standalone Kafka protocol server for tests, on librdkafka's mock cluster. */

/*
 * Usage: mock_kafka [--brokers N] [--topic NAME:PARTITIONS]... [--ready-file PATH]
 *
 * Starts an in-process librdkafka mock cluster of N brokers listening on
 * loopback ports chosen by the kernel, creates the given topics (replication
 * factor 1), prints "BOOTSTRAP host:port[,host:port...]" on stdout, writes
 * the same address (without the prefix) to the ready file if one was given,
 * and serves until SIGTERM, SIGINT or SIGHUP, then exits 0. It also dies
 * (SIGTERM) with its parent, so a crashed test run leaves no server behind.
 *
 * What the mock does (librdkafka 2.0.x), which tests depend on:
 *  - A topic that was not created here is auto-created as soon as any
 *    client names it in a Metadata request: a producer writing to it, a
 *    consumer (kcat -C) reading it, kcat -L -t NAME, rd_kafka_topic_new()
 *    (which triggers such a request) or rd_kafka_metadata() for it. The
 *    mock ignores allow.auto.create.topics=false (librdkafka logs "AUTOCREATE
 *    ... not supported by broker"). Only an all-topics Metadata request
 *    (rd_kafka_metadata(rk, 1, NULL, ...), kcat -L) names no topic, so a
 *    node that must answer "unknown topic" looks the topic up that way.
 *  - Auto-created topics get the mock's default partition count, 4
 *    (mcluster->defaults.partition_cnt in rdkafka_mock.c; checked with
 *    kcat -L against this build), and replication min(3, brokers).
 *  - Replicas are listed on every broker whatever replication factor is
 *    asked for; leaders are spread over the brokers.
 *  - rdkafka_mock.h says the Admin API's CreateTopics is not supported:
 *    topics come from --topic or from auto-creation.
 *  - Data lives in memory only and is gone when the process exits.
 */

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#define MOCK_MAX_BROKERS 32
#define MOCK_MAX_PARTITIONS 100000

typedef struct mock_topic {
    char *name;                       /* owned, NUL-terminated */
    int partitions;                   /* >= 1 */
} mock_topic;

#define MOCK_API_LIST_OFFSETS 2        /* Kafka protocol ApiKey of ListOffsets */

typedef struct mock_opts {
    int brokers;                      /* broker count, >= 1 */
    mock_topic *topics;               /* owned array of topic_cnt entries */
    size_t topic_cnt;
    const char *ready_file;           /* NULL: none; points into argv */
    int list_offsets_errors;          /* ListOffsets requests answered NOT_LEADER first */
} mock_opts;

static void usage(FILE *out) {
    fprintf(out,
            "usage: mock_kafka [--brokers N] [--topic NAME:PARTITIONS]... [--ready-file PATH]\n"
            "                  [--list-offsets-errors N]\n"
            "\n"
            "A Kafka protocol server on librdkafka's mock cluster, for tests.\n"
            "  --brokers N                 number of brokers (default 1)\n"
            "  --topic NAME:PARTITIONS     create a topic (replication 1); repeatable\n"
            "  --ready-file PATH           write the bootstrap address to PATH once ready\n"
            "                              (written to PATH.tmp, then renamed)\n"
            "  --list-offsets-errors N     answer the first N ListOffsets requests with\n"
            "                              NOT_LEADER_FOR_PARTITION, as a partition whose\n"
            "                              leadership is moving does\n"
            "  -h, --help                  this text\n"
            "Prints \"BOOTSTRAP <addr>\" on stdout once ready; runs until SIGTERM/SIGINT.\n"
            "Topics not created here are auto-created with 4 partitions as soon as\n"
            "a client names them (producing, consuming, metadata for that topic).\n");
}

/* Parses a decimal int in [min, max] from s into *out. Returns 0 or -1. */
static int parse_int(const char *s, int min, int max, int *out) {
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
        return -1;
    *out = (int)v;
    return 0;
}

/* Appends the topic described by "NAME:PARTITIONS" to o. Returns 0, or -1
 * with a message on stderr when spec is malformed. */
static int add_topic(mock_opts *o, const char *spec) {
    const char *colon = strrchr(spec, ':');
    mock_topic *grown;
    int partitions;

    if (colon == NULL || colon == spec) {
        fprintf(stderr, "mock_kafka: --topic wants NAME:PARTITIONS, got '%s'\n", spec);
        return -1;
    }
    if (parse_int(colon + 1, 1, MOCK_MAX_PARTITIONS, &partitions) != 0) {
        fprintf(stderr, "mock_kafka: bad partition count in '%s' (1..%d)\n", spec,
                MOCK_MAX_PARTITIONS);
        return -1;
    }
    grown = realloc(o->topics, (o->topic_cnt + 1) * sizeof(*o->topics));
    if (grown == NULL) {
        fprintf(stderr, "mock_kafka: out of memory\n");
        return -1;
    }
    o->topics = grown;
    o->topics[o->topic_cnt].name = strndup(spec, (size_t)(colon - spec));
    if (o->topics[o->topic_cnt].name == NULL) {
        fprintf(stderr, "mock_kafka: out of memory\n");
        return -1;
    }
    o->topics[o->topic_cnt].partitions = partitions;
    o->topic_cnt++;
    return 0;
}

static void opts_free(mock_opts *o) {
    size_t i;

    for (i = 0; i < o->topic_cnt; i++)
        free(o->topics[i].name);
    free(o->topics);
    o->topics = NULL;
    o->topic_cnt = 0;
}

/* Fills o from argv. Returns 0 to run, 1 after --help, -1 on a usage error
 * (message already printed). */
static int parse_args(mock_opts *o, int argc, char **argv) {
    static const struct option longopts[] = {
        {"brokers", required_argument, NULL, 'b'},
        {"topic", required_argument, NULL, 't'},
        {"ready-file", required_argument, NULL, 'r'},
        {"list-offsets-errors", required_argument, NULL, 'l'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;

    o->brokers = 1;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'b':
            if (parse_int(optarg, 1, MOCK_MAX_BROKERS, &o->brokers) != 0) {
                fprintf(stderr, "mock_kafka: --brokers wants 1..%d, got '%s'\n",
                        MOCK_MAX_BROKERS, optarg);
                return -1;
            }
            break;
        case 't':
            if (add_topic(o, optarg) != 0)
                return -1;
            break;
        case 'r':
            o->ready_file = optarg;
            break;
        case 'l':
            if (parse_int(optarg, 0, 1000, &o->list_offsets_errors) != 0) {
                fprintf(stderr, "mock_kafka: --list-offsets-errors wants 0..1000, got '%s'\n", optarg);
                return -1;
            }
            break;
        case 'h':
            usage(stdout);
            return 1;
        default:
            usage(stderr);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "mock_kafka: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return -1;
    }
    return 0;
}

/* librdkafka's log lines, minus the one warning an empty configuration is
 * bound to raise (no bootstrap.servers: this handle never connects). */
static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
    if (strcmp(fac, "CONFWARN") == 0 && strstr(buf, "bootstrap.servers") != NULL)
        return;
    fprintf(stderr, "mock_kafka: %s: %s\n", fac, buf);
}

/* Writes "addr\n" to path atomically: path.tmp, fsync-free (tests only),
 * then rename over path. Returns 0, or -1 with a message on stderr. */
static int write_ready_file(const char *path, const char *addr) {
    char tmp[PATH_MAX];
    FILE *f;
    int n;

    n = snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    if (n < 0 || (size_t)n >= sizeof(tmp)) {
        fprintf(stderr, "mock_kafka: ready file path too long\n");
        return -1;
    }
    f = fopen(tmp, "w");
    if (f == NULL) {
        fprintf(stderr, "mock_kafka: %s: %s\n", tmp, strerror(errno));
        return -1;
    }
    if (fprintf(f, "%s\n", addr) < 0 || fclose(f) != 0) {
        fprintf(stderr, "mock_kafka: %s: write failed: %s\n", tmp, strerror(errno));
        unlink(tmp);
        return -1;
    }
    if (rename(tmp, path) != 0) {
        fprintf(stderr, "mock_kafka: rename %s -> %s: %s\n", tmp, path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv) {
    mock_opts opts = {0};
    char errstr[512];
    rd_kafka_conf_t *conf;
    rd_kafka_t *rk = NULL;
    rd_kafka_mock_cluster_t *mc = NULL;
    const char *bootstraps;
    sigset_t stop_sigs;
    size_t i;
    int sig, rc = 1, r;

    r = parse_args(&opts, argc, argv);
    if (r != 0) {
        opts_free(&opts);
        return r > 0 ? 0 : 2;
    }

    /* Block the stop signals before librdkafka starts its threads, so they
     * inherit the mask and the signals are only ever taken by sigwait()
     * below. A write to a closed client socket must not kill us either. */
    sigemptyset(&stop_sigs);
    sigaddset(&stop_sigs, SIGTERM);
    sigaddset(&stop_sigs, SIGINT);
    sigaddset(&stop_sigs, SIGHUP);
    if (pthread_sigmask(SIG_BLOCK, &stop_sigs, NULL) != 0) {
        fprintf(stderr, "mock_kafka: cannot block signals\n");
        goto out;
    }
    signal(SIGPIPE, SIG_IGN);
#ifdef __linux__
    /* A test runner that dies without cleaning up takes us with it. */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
#endif

    /* The mock cluster needs a client handle for its bookkeeping; an empty
     * producer configuration (no bootstrap.servers) is enough. */
    conf = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(conf, log_cb);
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (rk == NULL) {
        rd_kafka_conf_destroy(conf);
        fprintf(stderr, "mock_kafka: rd_kafka_new: %s\n", errstr);
        goto out;
    }
    mc = rd_kafka_mock_cluster_new(rk, opts.brokers);
    if (mc == NULL) {
        fprintf(stderr, "mock_kafka: cannot create a mock cluster of %d brokers\n",
                opts.brokers);
        goto out;
    }
    for (i = 0; i < opts.topic_cnt; i++) {
        rd_kafka_resp_err_t err = rd_kafka_mock_topic_create(mc, opts.topics[i].name,
                                                             opts.topics[i].partitions, 1);
        if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            fprintf(stderr, "mock_kafka: create topic %s: %s\n", opts.topics[i].name,
                    rd_kafka_err2str(err));
            goto out;
        }
    }

    if (opts.list_offsets_errors > 0) {
        rd_kafka_resp_err_t errs[1000];
        for (i = 0; i < (size_t)opts.list_offsets_errors; i++)
            errs[i] = RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION;
        rd_kafka_mock_push_request_errors_array(mc, MOCK_API_LIST_OFFSETS, (size_t)opts.list_offsets_errors, errs);
    }

    bootstraps = rd_kafka_mock_cluster_bootstraps(mc);
    if (opts.ready_file != NULL && write_ready_file(opts.ready_file, bootstraps) != 0)
        goto out;
    printf("BOOTSTRAP %s\n", bootstraps);
    fflush(stdout);

    for (;;) {
        if (sigwait(&stop_sigs, &sig) != 0) {
            fprintf(stderr, "mock_kafka: sigwait failed\n");
            goto out;
        }
        if (sig == SIGTERM || sig == SIGINT || sig == SIGHUP)
            break;
    }
    rc = 0;

out:
    if (mc != NULL)
        rd_kafka_mock_cluster_destroy(mc);
    if (rk != NULL)
        rd_kafka_destroy(rk);
    opts_free(&opts);
    return rc;
}
