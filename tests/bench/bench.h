/* bench.h -- subway-bench: options, services, subscriber pools, producers and results shared by the scenarios. */
#ifndef SUBWAY_BENCH_H
#define SUBWAY_BENCH_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ---------------------------------------------------------------- options */

typedef struct bench_opts {
    const char *bin;              /* directory holding subway and tests/mock_kafka */
    const char *scenarios;        /* comma-separated names, or "all" */
    const char *json_path;        /* JSON lines file; NULL: none (stdout only) */
    const char *prev_path;        /* published figures to print beside ours; NULL: none */
    const char *redis_server;     /* redis-server binary */
    int kafka_apache;             /* --kafka apache: a real broker from deploy/kafka-local.sh */
    const char *kafka_script;     /* deploy/kafka-local.sh */
    const char *kafka_jvm;        /* Apache Kafka's collector and compiler flags (NULL: the bench's) */
    int tiny;                     /* a couple of subscribers, ~1 s per measurement */
    double duration_s;            /* per measurement */
    double warmup_s;              /* before each measurement */
    double health_wait_s;         /* most extra warm-up while the baseline is unhealthy */
    int verbose;
    int keep;                     /* keep the temp dir with the services' logs */
    /* scenario sizes (0: scenario default) */
    int fanout_subs[4];           /* fanout subscriber counts */
    int nfanout_subs;
    int fan_window;               /* fanout: most records in flight (0: scenario default) */
    const char *fan_linger;       /* fanout: producer linger.ms */
    int lat_subs[4];              /* latency: subscriber counts */
    int nlat_subs;
    int lat_rate;                 /* latency: records/s */
    int direct_subs;              /* direct: subway subscribers */
    int direct_consumers;         /* direct: librdkafka consumers actually run */
    int direct_target;            /* direct: consumers extrapolated to */
    int scale_conns;              /* connscale: connections */
    int scale_feeds;              /* connscale: feeds */
    int relay_subs;               /* relay: subscribers */
    int amp_partitions;           /* amplification: partitions of the topic */
    long cu_records;              /* catchup: history records before the catch-up's start */
    int cu_partitions;            /* catchup: partitions of the topic (0: scenario default) */
    int cu_subs;                  /* catchup: live subscribers */
    int cu_clients;               /* catchup: catch-up subscribers */
    int value_len;                /* record value bytes (>= 8) */
    const char *node_args[16];    /* --node-arg: extra arguments for every node */
    int nnode_args;
    char tmpdir[256];             /* services' logs and scratch */
    char self[512];               /* this binary, for child processes */
} bench_opts;

extern bench_opts g_opts;

/* Seconds of CLOCK_MONOTONIC, and CLOCK_REALTIME nanoseconds (the records'
 * production stamps). */
double now_s(void);
uint64_t wall_ns(void);
void sleep_s(double s);

/* Prints when --verbose. */
void vlog(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* -------------------------------------------------------------- histogram */

/* Log-linear histogram of nanosecond values: exact below 2^HIST_SUB_BITS,
 * then 2^(HIST_SUB_BITS-1) linear slices per power of two, so a value is
 * known to within 1/64 (1.6%). Not thread safe: one per thread, merge after. */
#define HIST_SUB_BITS 7
#define HIST_EXP_MAX 42           /* values up to 2^42 ns (73 minutes) */
#define HIST_BUCKETS ((HIST_EXP_MAX - HIST_SUB_BITS + 1) << HIST_SUB_BITS)

typedef struct hist {
    uint64_t counts[HIST_BUCKETS];
    uint64_t n;
    uint64_t min, max;            /* exact */
} hist;

void hist_reset(hist *h);
void hist_add(hist *h, uint64_t v);
/* Adds every sample of src to dst. */
void hist_merge(hist *dst, const hist *src);
/* The value at percentile q (0..100): the upper edge of the bucket holding
 * it, clamped to the exact max. 0 when empty. */
uint64_t hist_pct(const hist *h, double q);

/* ------------------------------------------------------------ /proc reads */

typedef struct procstat {
    double cpu_s;                 /* utime + stime */
    long rss_kb;                  /* VmRSS */
    long hwm_kb;                  /* VmHWM: peak RSS */
    long threads;
} procstat;

/* pid's parent, CPU ticks (utime + stime) and its reaped children's ticks
 * (cutime + cstime); any pointer may be NULL. Returns 0, or -1 when gone. */
int procstat_ticks(pid_t pid, pid_t *ppid, unsigned long long *ticks, unsigned long long *child_ticks);
/* Fills *ps for pid. Returns 0, or -1 when the process is gone. */
int procstat_read(pid_t pid, procstat *ps);

/* Counts pid's established TCP sockets whose remote port is one of ports[]
 * (loopback), read from /proc/PID/fd and /proc/net/tcp{,6}. -1 on error. */
int procstat_tcp_conns(pid_t pid, const int *ports, int nports);

/* ----------------------------------------------------------- machine load */

/* CPU counters of the whole machine and of this bench's processes (this
 * one, its descendants, and the ones registered with machine_own_pid()). */
typedef struct machine_snapshot {
    double at;                    /* now_s() */
    unsigned long long tasks_ticks;   /* /proc/stat user + nice + system */
    unsigned long long steal_ticks, iowait_ticks;
    unsigned long long ours_ticks;    /* utime + stime of ours, reaped children included */
    unsigned long long kernel_ticks;  /* kernel threads (ksoftirqd and co.), not counted as others */
} machine_snapshot;

/* What happened between two snapshots, in cores (1.0: one core busy). */
typedef struct machine_use {
    double secs;
    double ours_cores;            /* the bench and every service it started */
    double other_cores;           /* everyone else: other engineers' test suites */
    double steal_cores, iowait_cores;
} machine_use;

/* A process of the bench that is not its descendant (Apache Kafka's JVM,
 * started with setsid); disown it when stopped. */
void machine_own_pid(pid_t pid);
void machine_disown_pid(pid_t pid);
void machine_snap(machine_snapshot *s);
void machine_usage(const machine_snapshot *a, const machine_snapshot *b, machine_use *u);

/* Whether a measurement's baseline was sound, and if not why, in words. */
typedef struct health {
    int ok;
    char why[600];                /* "; "-separated reasons */
    machine_use use;              /* of the window judged */
} health;

void health_init(health *h);
/* Not ok when cond is false; the reason is added to why. */
void health_require(health *h, int cond, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The machine was quiet enough: others and steal under their limits. */
void health_machine(health *h, const machine_use *u);
/* The direct consumer (fetch.wait.max.ms fetch_wait) had a p50 of at most
 * 5 ms and a p99 of at most 10 ms (the mock: plus its fetch wait); else
 * Kafka itself, or the machine, is slow. */
void health_direct(health *h, const hist *hd, int fetch_wait);
/* got/want within 1 +- 0.001. */
void health_ratio(health *h, const char *who, uint64_t got, uint64_t want);

/* --------------------------------------------------------------- services */

/* A started process. It must stay at one address while it runs: the
 * list that svc_stop_all() kills on exit points at it. */
typedef struct svc {
    pid_t pid;                    /* 0: not running */
    char name[32];
    char log[300];                /* its stdout+stderr */
} svc;

typedef struct kafka_svc {
    svc p;                        /* mock_kafka (pid 0 for Apache Kafka) */
    char bootstrap[256];
    int ports[8];                 /* brokers' ports */
    int nports;
    char apache_dir[300];         /* Apache Kafka: kafka-local.sh --dir; "" for the mock */
    char gc_log[300];             /* Apache Kafka: its JVM's GC log */
    double warm_s;                /* Apache Kafka: warm-up until a direct consumer was healthy */
    health warm_health;           /* and the last warm-up probe's verdict */
} kafka_svc;

typedef struct node_svc {
    svc p;
    int port;                     /* client listener */
    int admin_port;               /* GET /stats */
    char node_id[64];
} node_svc;

typedef struct redis_svc {
    svc p;
    int port;
} redis_svc;

/* A free loopback TCP port (bound once, then released; never returned twice). */
int svc_free_port(void);

/* Starts bin/tests/mock_kafka (or, with --kafka apache, one Apache Kafka
 * broker by deploy/kafka-local.sh) with topics "NAME:PARTITIONS"
 * (NULL-terminated). Returns 0 once the topics can be used, else -1
 * (message printed). */
int kafka_start(kafka_svc *k, const char *const *topics);
/* Stops what kafka_start() started. Accepts a stopped one. */
void kafka_stop(kafka_svc *k);
/* "librdkafka's mock Kafka" or "Apache Kafka", for notes. */
const char *kafka_name(void);
/* Apache Kafka's GC pauses so far (from its JVM's log): their sum, the
 * longest, how many. Returns 0, or -1 for the mock or an unreadable log. */
int kafka_gc_pauses(const kafka_svc *k, double *total_ms, double *max_ms, long *count);
/* The broker's process (mock_kafka, or Apache Kafka's JVM), or 0. */
pid_t kafka_pid(const kafka_svc *k);

/* Starts bin/subway on k with the bench's limits, plus extra args
 * (NULL-terminated, may be NULL). Returns 0 once /healthz answers. */
int node_start(node_svc *n, const kafka_svc *k, const char *redis_addr, const char *node_id,
               const char *const *extra);

/* Starts redis-server --save '' on a free port. Returns 0 once it answers PING. */
int redis_start(redis_svc *r);

/* SIGTERM, then SIGKILL after a grace period; reaps. Accepts a stopped svc. */
void svc_stop(svc *s);
/* Kills every service still running (for exit paths and signals). */
void svc_stop_all(void);

/* GET path from 127.0.0.1:port into buf (body only, NUL-terminated).
 * Returns the body length or -1. */
int http_get(int port, const char *path, char *buf, size_t size);

/* The number after "name": in a JSON text (first occurrence), or -1. */
long long json_num(const char *json, const char *name);

/* The node's /stats counter called name (records_in, bytes_in, ...), or -1. */
long long node_counter(const node_svc *n, const char *name);

/* Spawns this binary with argv (argv[0] ignored) as a child with pipes on
 * its stdin and stdout. Returns the pid, or -1. */
pid_t spawn_self(char *const argv[], int *to_child, int *from_child);

/* Reads one line from fd into buf within timeout_s. Returns its length, or -1. */
int read_line(int fd, char *buf, size_t size, double timeout_s);

/* ------------------------------------------------------ subscriber pools */

/* N subscriber connections in one epoll set, speaking subway's protocol or
 * Redis's RESP, counting the records they receive and, when asked, their
 * produce-to-receive latency (the first 8 value bytes are CLOCK_REALTIME ns). */
typedef enum pool_kind { POOL_SUBWAY, POOL_REDIS } pool_kind;

typedef struct pool pool;

/* Returns a pool of n unconnected connections, or NULL. */
pool *pool_new(pool_kind kind, size_t n);
void pool_free(pool *p);

/* Sets what connection i subscribes to: a subway topic and key (key NULL:
 * every key), or a Redis channel (key ignored). The strings are copied. */
int pool_set_feed(pool *p, size_t i, const char *topic, const char *key);

/* Connection i subscribes with a start (PROTOCOL.md 5.8): mode a
 * proto_start_mode other than POSITIONS, arg its argument. */
void pool_set_start(pool *p, size_t i, uint64_t mode, int64_t arg);

/* Connection i checks every record's offset against the ones before it,
 * per partition, and keeps what its LIVE frame says. Returns 0 or -1. */
int pool_track(pool *p, size_t i);

/* What a tracked connection saw of one partition. */
typedef struct pool_part {
    int64_t first;                /* first offset received (-1: none) */
    int64_t next;                 /* the offset after the greatest received (-1: none) */
    int64_t live;                 /* its position in LIVE (-1: not listed, or no LIVE yet) */
    int64_t next_at_live;         /* next when LIVE came (-1: none) */
    uint64_t records;             /* received */
} pool_part;

typedef struct pool_tracked {
    pool_part *parts;             /* indexed by partition number, nparts of them */
    uint32_t nparts;
    uint64_t records, before_live;
    uint64_t gaps;                /* offsets skipped: records missing between two received */
    uint64_t repeats;             /* records at or below an offset already received */
    double first_at, live_at;     /* now_s() of the first record and of LIVE (0: not yet) */
} pool_tracked;

/* Connection i's checks, or NULL when it is not tracked. */
const pool_tracked *pool_tracked_get(const pool *p, size_t i);

/* Connection i goes to 127.0.0.1:port instead of the pool's port. */
void pool_set_port(pool *p, size_t i, int port);

/* Starts connecting every connection to 127.0.0.1:port, from source address
 * src_ip (NULL: any). Returns 0 or -1. */
int pool_connect(pool *p, int port, const char *src_ip);

/* Runs the pool until every connection is welcomed (subway) or connected
 * (Redis), or timeout_s. Returns 0 when all are, else -1. */
int pool_wait_connected(pool *p, double timeout_s);

/* Sends the SUBSCRIBE of every connection (of connections [from, to))
 * that is welcomed and has not subscribed yet. */
void pool_subscribe(pool *p);
void pool_subscribe_range(pool *p, size_t from, size_t to);

/* Runs the pool until every connection is subscribed, or timeout_s.
 * Returns 0 when all are. */
int pool_wait_subscribed(pool *p, double timeout_s);
/* The same until at least n connections are subscribed. */
int pool_wait_subscribed_n(pool *p, size_t n, double timeout_s);

/* One epoll round of at most timeout_ms. Returns events handled or -1. */
int pool_run(pool *p, int timeout_ms);

/* Runs the pool for s seconds. */
void pool_run_for(pool *p, double s);

/* Records (MESSAGE frames / Redis messages) received: total, least over the
 * connections, and the least counting DROPPED records too (what pacing uses). */
uint64_t pool_total(const pool *p);
uint64_t pool_min(const pool *p);
uint64_t pool_min_accounted(const pool *p);
uint64_t pool_dropped(const pool *p);
size_t pool_count(const pool *p);
size_t pool_connected(const pool *p);
size_t pool_subscribed(const pool *p);
size_t pool_failed(const pool *p);
/* Subscriptions that got their LIVE frame (every one, on a version-2
 * connection; without a start, right after SUBSCRIBED). */
size_t pool_live(const pool *p);
/* First SUBSCRIBE sent and last SUBSCRIBED received (now_s() clock). */
double pool_sub_first(const pool *p);
double pool_sub_last(const pool *p);
/* Latency on: from now on, records produced from now on (by their stamp)
 * are counted (pool_windowed) and their latency kept (pool_hist); records
 * produced before, a warm-up's backlog, are not. Resets both. */
void pool_latency(pool *p, int on);
/* Closes the window: records stamped at or after to_ns (wall ns) no longer count. */
void pool_latency_until(pool *p, uint64_t to_ns);
/* Records received that were produced inside the window. */
uint64_t pool_windowed(const pool *p);
/* The least and the greatest per-connection mean latency since the last
 * pool_latency(): how far apart one node write pass puts the subscribers. */
void pool_lat_spread(const pool *p, uint64_t *lo, uint64_t *hi);
hist *pool_hist(pool *p);
const char *pool_err(const pool *p);
/* Closes every connection with a reset (no TIME_WAIT). */
void pool_close(pool *p);

/* ------------------------------------------------------------- producers */

/* A librdkafka producer writing records of g_opts.value_len bytes whose
 * first 8 bytes are the CLOCK_REALTIME ns of the produce call. */
typedef struct kprod kprod;

/* linger_ms as librdkafka takes it ("1", "0.5"). Returns NULL with errstr. */
/* Creates topics "NAME:PARTITIONS" with the Admin API, each with the topic
 * configs "name=value" (NULL-terminated; configs may be NULL), and waits
 * until every partition has a leader. Returns 0, or -1 with errstr set. */
int kafka_create_topics(const char *bootstrap, const char *const *topics, const char *const *configs, char *errstr,
                        size_t errlen);

kprod *kprod_new(const char *bootstrap, const char *topic, const char *linger_ms, char *errstr, size_t errlen);
/* Produces one record with key (NULL: none); partition -1: the partitioner's choice.
 * Returns 0, or -1 after the queue stayed full for a second. */
int kprod_send(kprod *p, const void *key, size_t key_len, int32_t partition);
/* Serves delivery reports. */
void kprod_poll(kprod *p);
/* The log start and end offsets of the producer's topic's partition. Returns 0 or -1. */
int kprod_watermarks(kprod *p, int32_t partition, int64_t *lo, int64_t *hi);
/* Waits for every record to be acknowledged, up to timeout_s. Returns 0 when all were. */
int kprod_flush(kprod *p, double timeout_s);
/* Records handed to librdkafka, acknowledged by Kafka, failed. */
uint64_t kprod_sent(const kprod *p);
uint64_t kprod_acked(const kprod *p);
uint64_t kprod_failed(const kprod *p);
void kprod_free(kprod *p);

/* What a pacer thread produces into: Kafka through a kprod, or Redis
 * PUBLISH through one pipelining hiredis context. */
typedef struct pacer pacer;

typedef struct pacer_conf {
    kprod *kp;                    /* Kafka (not owned), or NULL */
    const char *topic;
    const char *key;              /* Kafka key, NULL: none */
    int redis_port;               /* Redis when kp == NULL */
    const char *channel;
    uint64_t window;              /* window mode: keep produced - accounted <= window */
    double rate;                  /* rate mode (> 0): records per second */
    int batch;                    /* Redis pipeline depth */
} pacer_conf;

/* Starts a thread producing per conf. The receiver publishes its progress
 * with pacer_set_accounted(). Returns NULL with errstr. */
pacer *pacer_start(const pacer_conf *conf, char *errstr, size_t errlen);
void pacer_set_accounted(pacer *pc, uint64_t min_accounted);
uint64_t pacer_produced(const pacer *pc);
/* Stops and joins the thread; returns records produced. Frees pc. */
uint64_t pacer_stop(pacer *pc);

/* A direct librdkafka consumer of topic's partitions [0, nparts), assigned
 * at their log end, fetch.wait.max.ms as given, measuring latency in its own
 * thread. */
typedef struct kcons kcons;
kcons *kcons_start(const char *bootstrap, const char *topic, int nparts, int fetch_wait_ms, char *errstr,
                   size_t errlen);
uint64_t kcons_records(kcons *c);
uint64_t kcons_bytes(kcons *c);
/* Copies and resets the latency histogram. */
void kcons_take_hist(kcons *c, hist *out);
/* From now on only records stamped in [from_ns, to_ns) (wall ns) go into the
 * histogram and kcons_windowed(); resets both. from_ns 0: every record. */
void kcons_window(kcons *c, uint64_t from_ns, uint64_t to_ns);
/* Closes the window at to_ns, keeping what it holds. */
void kcons_window_until(kcons *c, uint64_t to_ns);
uint64_t kcons_windowed(kcons *c);
void kcons_stop(kcons *c);

/* ---------------------------------------------------------------- measure */

/* Connects, welcomes and subscribes every connection of p (default port
 * port). Returns 0, or -1 after printing why (what names the pool). */
int pool_setup(pool *p, int port, const char *what);

/* Runs p for secs while feeding pc (may be NULL) the least accounted count.
 * Returns -1 when delivery stalled for 5 s with records outstanding. */
int drive(pool *p, pacer *pc, double secs);

/* What a scenario checks of its baseline in each probe window: begin()
 * starts the probe's own figures, judge() adds its reasons to h (the
 * machine's are already in). Either may be NULL. */
typedef struct baseline_probe {
    void (*begin)(void *arg);
    void (*judge)(void *arg, health *h);
    void *arg;
    double max_s;                 /* most extra warm-up; 0: --health-wait */
} baseline_probe;

/* Seconds of one probe window (2 s; tiny 0.1 s). */
double health_probe_s(void);

/* After the warm-up: drives p against pc (p NULL: just waits) in probe
 * windows until the machine and bp find the baseline healthy, or
 * --health-wait seconds (at most bp->max_s, when set) are spent. h holds
 * the last probe's verdict, *warmed_s the time spent. Returns -1 when
 * delivery stalled. */
int warm_until_healthy(pool *p, pacer *pc, const baseline_probe *bp, health *h, double *warmed_s);

/* This process's CPU seconds (every thread). */
double self_cpu_s(void);

/* Picks 'per' keys "k-N" for each of nparts partitions (murmur2), into
 * keys[nparts * per][32], partition-major. */
void keys_per_partition(int nparts, int per, char (*keys)[32]);

/* ----------------------------------------------------------------- report */

/* One JSON line: jr_begin(), fields, jr_end() writes it with the run's
 * common fields (time, machine, tiny). */
typedef struct jrec jrec;
jrec *jr_begin(const char *scenario, const char *measurement);
void jr_str(jrec *j, const char *k, const char *v);
void jr_int(jrec *j, const char *k, long long v);
void jr_num(jrec *j, const char *k, double v);
void jr_hist(jrec *j, const char *prefix, const hist *h);   /* p50/p99/p99.9/max in us, n */
void jr_proc(jrec *j, const char *prefix, const procstat *before, const procstat *after);
void jr_end(jrec *j);
int report_open(const char *path);
void report_close(void);
/* "healthy", the reasons and the machine's figures into a JSON line. */
struct health;
void health_json(jrec *j, const struct health *h);

/* Markdown tables: tab_new(title, column names...), rows of cells, print. */
typedef struct tab tab;
tab *tab_new(const char *title, int ncols, const char *const *cols);
void tab_row(tab *t, ...);        /* ncols strings */
void tab_note(tab *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void tab_print(tab *t);           /* prints and frees */
/* Formatting helpers into rotating static buffers. */
const char *fmt_int(double v);    /* 1234567 -> "1,234,567" */
const char *fmt_f(const char *fmt, double v);
const char *fmt_str(const char *fmt, ...) __attribute__((format(printf, 1, 2))); /* up to 63 chars */
const char *fmt_us(uint64_t ns);  /* "123 us", "4.56 ms" */
const char *fmt_kb(long kb);      /* "12.3 MiB" */
/* "WHAT: baseline healthy (...)" or "WHAT: NO VERDICT, the baseline was unhealthy: WHY." */
void health_note(tab *t, const char *what, const struct health *h);

/* ---------------------------------------------------- previous figures */

/* Loads the published run's JSON lines (missing file: none). Returns 0 or -1. */
int prev_open(const char *path);
void prev_close(void);
/* The last published line of scenario and measurement on the same Kafka,
 * full size, not marked unhealthy, whose numeric fields match: pairs of (const char *key, double
 * value), then NULL. NULL when there is none. */
const char *prev_find(const char *scenario, const char *measurement, ...);
/* The same with a string field equal to str_val and one numeric pair. */
const char *prev_find_str(const char *scenario, const char *measurement, const char *str_key, const char *str_val,
                          const char *num_key, double num_val);
/* A field of such a line: a number (NAN when absent or line is NULL), or a
 * string ("" likewise; a rotating static buffer). */
double prev_num(const char *line, const char *key);
const char *prev_str(const char *line, const char *key);
/* A table note naming the published run compared with (or saying there is none). */
void prev_note(tab *t, const char *line);

/* -------------------------------------------------------------- scenarios */

/* Each returns 0 when it ran (whatever the numbers), -1 when it could not
 * (a service did not start, no records arrived, ...). */
int scenario_fanout(void);
int scenario_latency(void);
int scenario_direct(void);
int scenario_amplification(void);
int scenario_connscale(void);
int scenario_relay(void);
int scenario_catchup(void);
int scenario_coord(void);

/* Child process entry points (subway-bench --child KIND ...). */
int child_consumers(int argc, char **argv);
int child_pool(int argc, char **argv);

#endif
