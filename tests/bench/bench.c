/* bench.c -- subway-bench: command line, clocks, temp dir, scenario dispatch and exit status. */
#include "tests/bench/bench.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

bench_opts g_opts;

/* --------------------------------------------------------------- clocks */

double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

uint64_t wall_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void sleep_s(double s) {
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {}
}

void vlog(const char *fmt, ...) {
    if (!g_opts.verbose) return;
    va_list ap;
    va_start(ap, fmt);
    static double t0;
    if (t0 == 0) t0 = now_s();
    fprintf(stderr, "bench: [%6.2f] ", now_s() - t0);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
}

/* ------------------------------------------------------------ scenarios */

typedef struct scenario {
    const char *name;
    int (*run)(void);
    const char *what;
} scenario;

static const scenario scenarios[] = {
    {"fanout", scenario_fanout, "one feed, 100 and 1000 subscribers, delivered records/s vs Redis pub/sub"},
    {"latency", scenario_latency, "100 and 1000 subscribers at 1000 records/s: produce-to-client percentiles vs a direct consumer and Redis pub/sub"},
    {"direct", scenario_direct, "1000 subscribers through subway vs direct librdkafka consumers: memory, threads, connections"},
    {"amplification", scenario_amplification, "exact-key feeds on a 12-partition topic: bytes read vs topic bytes"},
    {"connscale", scenario_connscale, "as many connections as the fd limit allows over 1000 feeds, Redis-coordinated"},
    {"relay", scenario_relay, "3 nodes with Redis: subscribers on other nodes vs on the owner"},
    {"coord", scenario_coord, "Redis coordination alone, simulated nodes and feeds: subscribes/s ceilings, steady-state Redis load per feed"},
    {"catchup", scenario_catchup, "a catch-up from 1,000,000 records back joining a feed 1000 live subscribers share: their latency before, during, after"},
};
#define NSCENARIOS (sizeof(scenarios) / sizeof(scenarios[0]))

static void usage(FILE *out) {
    fprintf(out,
            "usage: subway-bench [--bin DIR] [--scenario NAME[,NAME...]|all] [--tiny] [--json FILE|-]\n"
            "                    [--duration S] [--warmup S] [--subs N[,N...]] [--verbose] [--keep]\n"
            "\n"
            "Starts Kafka, subway nodes and redis-server on free loopback ports, runs the\n"
            "scenarios with their alternatives side by side, prints a Markdown table per\n"
            "scenario and appends one JSON line per measurement to --json (default\n"
            "bench-results.jsonl; '-' writes none). Exits non-zero when a scenario could not run.\n"
            "\n"
            "  --bin DIR            where subway and tests/mock_kafka are (default ./bin)\n"
            "  --scenario LIST      comma-separated scenarios, or all (default)\n"
            "  --tiny               a couple of subscribers, ~1 s per measurement (for make test)\n"
            "  --duration S         seconds per measurement (default 6, tiny 1)\n"
            "  --warmup S           seconds before each measurement (default 1, tiny 0.3;\n"
            "                       catchup on Apache Kafka: at least 15)\n"
            "  --previous FILE      published figures printed beside this run's (default\n"
            "                       tests/bench/RESULTS.jsonl, with --kafka apache\n"
            "                       tests/bench/RESULTS-apache.jsonl; '-': none)\n"
            "  --health-wait S      then warm on in 2 s probes while the baseline is unhealthy\n"
            "                       (machine busy, direct consumer slow, ...), at most S seconds\n"
            "                       (default 30, tiny 0: one probe); still unhealthy: no verdict\n"
            "  --subs N,N           fanout subscriber counts (default 100,1000)\n"
            "  --window N           fanout: most records in flight (default 2e6/subscribers,\n"
            "                       1000..8000)\n"
            "  --linger MS          fanout: the producer's linger.ms (default 5)\n"
            "  --lat-rate R         latency and catchup: live records/s (default 1000)\n"
            "  --lat-subs N,N       latency: subscriber counts (default 100,1000)\n"
            "  --direct-consumers N direct: librdkafka consumers actually run (default 100)\n"
            "  --conns N            connscale: connections (default 19000)\n"
            "  --feeds N            connscale: feeds (default 1000)\n"
            "  --catchup-records N  catchup: history records before the catch-up's start\n"
            "                       (default 1000000, tiny 20000)\n"
            "  --catchup-partitions N  catchup: partitions they are spread over (default: 1\n"
            "                       on Apache Kafka; on the mock as many as keep each under\n"
            "                       3.5 MiB, since the mock keeps ~5 MiB per partition)\n"
            "  --catchup-subs N     catchup: live subscribers (default 1000, tiny 20)\n"
            "  --catchup-clients N  catchup: catch-up subscribers, all from the log start\n"
            "                       (default 1)\n"
            "  --redis-server PATH  redis-server binary (default redis-server from PATH)\n"
            "  --kafka mock|apache  Kafka to run against: bin/tests/mock_kafka (librdkafka's\n"
            "                       mock cluster, the default) or one Apache Kafka broker\n"
            "                       started by --kafka-script (fetched on first use)\n"
            "  --kafka-script PATH  kafka-local.sh (default deploy/kafka-local.sh)\n"
            "  --kafka-jvm OPTS     Apache Kafka's JVM flags (default: G1, 20 ms pause goal,\n"
            "                       heap pre-touched; see services.c)\n"
            "  --node-arg ARG       pass ARG to every subway node (repeatable), e.g.\n"
            "                       --node-arg=--kafka-opt=fetch.wait.max.ms=1\n"
            "  --verbose            progress and services' command lines on stderr\n"
            "  --keep               keep the temp dir with the services' logs\n"
            "\nScenarios:\n");
    for (size_t i = 0; i < NSCENARIOS; i++) fprintf(out, "  %-14s %s\n", scenarios[i].name, scenarios[i].what);
}

static int wanted(const char *name) {
    if (strcmp(g_opts.scenarios, "all") == 0) return 1;
    size_t n = strlen(name);
    for (const char *p = g_opts.scenarios; *p;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == n && strncmp(p, name, n) == 0) return 1;
        p += len + (comma ? 1 : 0);
    }
    return 0;
}

static void cleanup(void);

/* Interrupted (Ctrl-C, timeout): clean up as at exit, then die of the
 * signal. Apache Kafka's data is in /dev/shm, which nothing else frees. */
static void on_signal(int sig) {
    cleanup();
    signal(sig, SIG_DFL);
    raise(sig);
}

static void cleanup(void) {
    svc_stop_all();
    if (!g_opts.keep && g_opts.tmpdir[0]) {
        char cmd[400];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_opts.tmpdir);
        if (system(cmd) != 0) {}
    }
    if (g_opts.tmpdir[0]) {
        /* Apache Kafka's data, in memory (services.c), whatever --keep says. */
        char cmd[400];
        snprintf(cmd, sizeof(cmd), "rm -rf /dev/shm/'%s'-kafka-*", strrchr(g_opts.tmpdir, '/') + 1);
        if (system(cmd) != 0) {}
    }
}

static int parse_list(const char *s, int *out, int max) {
    int n = 0;
    while (*s && n < max) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 1) return -1;
        out[n++] = (int)v;
        s = *end == ',' ? end + 1 : end;
        if (*end && *end != ',') return -1;
    }
    return n;
}

static void print_machine(void) {
    char model[256] = "?", line[512];
    FILE *f = fopen("/proc/cpuinfo", "r");
    while (f && fgets(line, sizeof(line), f))
        if (strncmp(line, "model name", 10) == 0) {
            char *c = strchr(line, ':');
            if (c) snprintf(model, sizeof(model), "%s", c + 2);
            model[strcspn(model, "\n")] = '\0';
            break;
        }
    if (f) fclose(f);
    long mem_kb = 0;
    f = fopen("/proc/meminfo", "r");
    while (f && fgets(line, sizeof(line), f))
        if (strncmp(line, "MemTotal:", 9) == 0) mem_kb = strtol(line + 9, NULL, 10);
    if (f) fclose(f);
    char load[64] = "?";
    f = fopen("/proc/loadavg", "r");
    if (f && fgets(load, sizeof(load), f)) load[strcspn(load, "\n")] = '\0';
    if (f) fclose(f);
    printf("subway-bench: %ld CPUs (%s), %s RAM, load average %s; %s; %.1f s per measurement; Kafka: %s\n",
           sysconf(_SC_NPROCESSORS_ONLN), model, fmt_kb(mem_kb), load, g_opts.tiny ? "tiny" : "full",
           g_opts.duration_s, kafka_name());
}

int main(int argc, char **argv) {
    static const struct option longopts[] = {
        {"bin", required_argument, NULL, 'b'},
        {"scenario", required_argument, NULL, 's'},
        {"tiny", no_argument, NULL, 't'},
        {"json", required_argument, NULL, 'j'},
        {"duration", required_argument, NULL, 'd'},
        {"warmup", required_argument, NULL, 'w'},
        {"health-wait", required_argument, NULL, 'X'},
        {"previous", required_argument, NULL, 'Y'},
        {"subs", required_argument, NULL, 'n'},
        {"window", required_argument, NULL, 'W'},
        {"linger", required_argument, NULL, 'G'},
        {"lat-rate", required_argument, NULL, 'r'},
        {"lat-subs", required_argument, NULL, 'L'},
        {"direct-consumers", required_argument, NULL, 'D'},
        {"conns", required_argument, NULL, 'C'},
        {"feeds", required_argument, NULL, 'F'},
        {"catchup-records", required_argument, NULL, 'H'},
        {"catchup-partitions", required_argument, NULL, 'P'},
        {"catchup-subs", required_argument, NULL, 'U'},
        {"catchup-clients", required_argument, NULL, 'c'},
        {"redis-server", required_argument, NULL, 'R'},
        {"kafka", required_argument, NULL, 'K'},
        {"kafka-script", required_argument, NULL, 'S'},
        {"kafka-jvm", required_argument, NULL, 'J'},
        {"node-arg", required_argument, NULL, 'A'},
        {"verbose", no_argument, NULL, 'v'},
        {"keep", no_argument, NULL, 'k'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    if (argc > 2 && strcmp(argv[1], "--child") == 0) {
        signal(SIGPIPE, SIG_IGN);
        if (strcmp(argv[2], "consumers") == 0) return child_consumers(argc - 2, argv + 2);
        if (strcmp(argv[2], "pool") == 0) return child_pool(argc - 2, argv + 2);
        fprintf(stderr, "subway-bench: unknown child kind %s\n", argv[2]);
        return 2;
    }

    g_opts.bin = "bin";
    g_opts.scenarios = "all";
    g_opts.json_path = "bench-results.jsonl";
    g_opts.redis_server = "redis-server";
    g_opts.kafka_script = "deploy/kafka-local.sh";
    g_opts.duration_s = -1;
    g_opts.warmup_s = -1;
    g_opts.health_wait_s = -1;
    g_opts.value_len = 100;
    g_opts.fan_linger = "5";
    double lat_rate = 0;
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'b': g_opts.bin = optarg; break;
        case 's': g_opts.scenarios = optarg; break;
        case 't': g_opts.tiny = 1; break;
        case 'j': g_opts.json_path = strcmp(optarg, "-") == 0 ? NULL : optarg; break;
        case 'd': g_opts.duration_s = atof(optarg); break;
        case 'w': g_opts.warmup_s = atof(optarg); break;
        case 'X': g_opts.health_wait_s = atof(optarg); break;
        case 'Y': g_opts.prev_path = strcmp(optarg, "-") == 0 ? "" : optarg; break;
        case 'n':
            g_opts.nfanout_subs = parse_list(optarg, g_opts.fanout_subs, 4);
            if (g_opts.nfanout_subs < 1) {
                fprintf(stderr, "subway-bench: --subs wants N[,N...]\n");
                return 2;
            }
            break;
        case 'W': g_opts.fan_window = atoi(optarg); break;
        case 'G': g_opts.fan_linger = optarg; break;
        case 'r': lat_rate = atof(optarg); break;
        case 'L':
            g_opts.nlat_subs = parse_list(optarg, g_opts.lat_subs, 4);
            if (g_opts.nlat_subs < 1) {
                fprintf(stderr, "subway-bench: --lat-subs wants N[,N...]\n");
                return 2;
            }
            break;
        case 'D': g_opts.direct_consumers = atoi(optarg); break;
        case 'C': g_opts.scale_conns = atoi(optarg); break;
        case 'F': g_opts.scale_feeds = atoi(optarg); break;
        case 'H': g_opts.cu_records = atol(optarg); break;
        case 'P': g_opts.cu_partitions = atoi(optarg); break;
        case 'U': g_opts.cu_subs = atoi(optarg); break;
        case 'c': g_opts.cu_clients = atoi(optarg); break;
        case 'R': g_opts.redis_server = optarg; break;
        case 'K':
            if (strcmp(optarg, "apache") != 0 && strcmp(optarg, "mock") != 0) {
                fprintf(stderr, "subway-bench: --kafka wants mock or apache\n");
                return 2;
            }
            g_opts.kafka_apache = strcmp(optarg, "apache") == 0;
            break;
        case 'S': g_opts.kafka_script = optarg; break;
        case 'J': g_opts.kafka_jvm = optarg; break;
        case 'A':
            if (g_opts.nnode_args >= 16) {
                fprintf(stderr, "subway-bench: at most 16 --node-arg\n");
                return 2;
            }
            g_opts.node_args[g_opts.nnode_args++] = optarg;
            break;
        case 'v': g_opts.verbose = 1; break;
        case 'k': g_opts.keep = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "subway-bench: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    for (const char *p = g_opts.scenarios; strcmp(g_opts.scenarios, "all") != 0 && *p;) {
        size_t len = strcspn(p, ",");
        int ok = 0;
        for (size_t i = 0; i < NSCENARIOS; i++)
            if (strlen(scenarios[i].name) == len && strncmp(p, scenarios[i].name, len) == 0) ok = 1;
        if (!ok) {
            fprintf(stderr, "subway-bench: unknown scenario '%.*s' (see --help)\n", (int)len, p);
            return 2;
        }
        p += len + (p[len] == ',');
    }

    /* Sizes: the full run, or a couple of subscribers for make test. */
    int tiny = g_opts.tiny;
    if (g_opts.duration_s <= 0) g_opts.duration_s = tiny ? 1.0 : 6.0;
    if (g_opts.warmup_s < 0) g_opts.warmup_s = tiny ? 0.3 : 1.0;
    if (g_opts.health_wait_s < 0) g_opts.health_wait_s = tiny ? 0.0 : 30.0;
    if (g_opts.nfanout_subs == 0) {
        g_opts.fanout_subs[0] = tiny ? 2 : 100;
        g_opts.fanout_subs[1] = tiny ? 3 : 1000;
        g_opts.nfanout_subs = 2;
    }
    if (g_opts.nlat_subs == 0) {
        g_opts.lat_subs[g_opts.nlat_subs++] = tiny ? 2 : 100;
        if (!tiny) g_opts.lat_subs[g_opts.nlat_subs++] = 1000;
    }
    g_opts.lat_rate = lat_rate > 0 ? (int)lat_rate : tiny ? 200 : 1000;
    g_opts.direct_subs = tiny ? 2 : 1000;
    if (g_opts.direct_consumers <= 0) g_opts.direct_consumers = tiny ? 2 : 100;
    g_opts.direct_target = tiny ? 2 : 1000;
    if (g_opts.scale_conns <= 0) g_opts.scale_conns = tiny ? 20 : 19000;
    if (g_opts.scale_feeds <= 0) g_opts.scale_feeds = tiny ? 5 : 1000;
    g_opts.relay_subs = tiny ? 2 : 1000;
    g_opts.amp_partitions = 12;
    if (g_opts.cu_records <= 0) g_opts.cu_records = tiny ? 20000 : 1000000;
    if (g_opts.cu_subs <= 0) g_opts.cu_subs = tiny ? 20 : 1000;
    if (g_opts.cu_clients <= 0) g_opts.cu_clients = 1;

    ssize_t sl = readlink("/proc/self/exe", g_opts.self, sizeof(g_opts.self) - 1);
    if (sl <= 0) {
        fprintf(stderr, "subway-bench: cannot find my own binary\n");
        return 2;
    }
    g_opts.self[sl] = '\0';
    snprintf(g_opts.tmpdir, sizeof(g_opts.tmpdir), "/tmp/subway-bench-XXXXXX");
    if (!mkdtemp(g_opts.tmpdir)) {
        perror("mkdtemp");
        return 2;
    }
    if (g_opts.keep) fprintf(stderr, "subway-bench: logs in %s\n", g_opts.tmpdir);
    atexit(cleanup);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);
    /* Every socket of the bench is an fd: take the whole hard limit. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (report_open(g_opts.json_path) < 0) return 2;
    if (!g_opts.prev_path)
        g_opts.prev_path = g_opts.kafka_apache ? "tests/bench/RESULTS-apache.jsonl" : "tests/bench/RESULTS.jsonl";
    if (g_opts.prev_path[0] && prev_open(g_opts.prev_path) < 0) return 2;

    setvbuf(stdout, NULL, _IOLBF, 0);
    print_machine();
    int failed = 0, ran = 0;
    double t0 = now_s();
    for (size_t i = 0; i < NSCENARIOS; i++) {
        if (!wanted(scenarios[i].name)) continue;
        double ts = now_s();
        ran++;
        vlog("scenario %s", scenarios[i].name);
        int rc = scenarios[i].run();
        svc_stop_all();
        if (rc != 0) {
            failed++;
            fprintf(stderr, "subway-bench: scenario %s FAILED\n", scenarios[i].name);
        }
        printf("\n(%s: %.1f s)\n", scenarios[i].name, now_s() - ts);
        fflush(stdout);
    }
    printf("\nsubway-bench: %d scenario(s) run, %d failed, %.1f s%s%s\n", ran, failed, now_s() - t0,
           g_opts.json_path ? "; results appended to " : "", g_opts.json_path ? g_opts.json_path : "");
    report_close();
    prev_close();
    return failed ? 1 : 0;
}
