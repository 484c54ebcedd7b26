/* cli.c -- subway-cli: subscribe to feeds and print their records, or publish records, through libsubway. */
#include "subway.h"
#include "cli_split.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifndef SUBWAY_VERSION
#define SUBWAY_VERSION "dev"
#endif

#define DEFAULT_ADDR "127.0.0.1:7700"
#define DEFAULT_TIMEOUT_MS 10000
#define DEFAULT_FORMAT "%k\\t%s\\n"
/* Records published from stdin awaiting PUBACK; bounds memory and the
 * node's per-connection backlog while still keeping the pipe full. */
#define MAX_INFLIGHT 1000
/* How often the loops wake to notice signals and timeouts. */
#define TICK_MS 200
/* sub's reconnect backoff: the first ceiling and its limit. */
#define RESUME_BASE_MS 200
#define RESUME_MAX_MS 10000

#define EXIT_OK 0                    /* done: count reached, all acked, or signalled */
#define EXIT_FAIL 1                  /* the node refused a request, or bad input */
#define EXIT_USAGE 2                 /* bad command line */
#define EXIT_CONN 3                  /* connect failed, connection lost, GOAWAY, timeout */

static volatile sig_atomic_t signals_seen;

static void on_signal(int sig) {
    (void)sig;
    signals_seen++;
}

static void usage(FILE *out) {
    fprintf(out,
"usage: subway-cli [-s HOST:PORT] [-t MS] sub TOPIC KEY [TOPIC KEY ...] [-o START] [-c COUNT]\n"
"                  [-f FORMAT] [-v] [--no-resume] [--split-by-key DIR [--header LINE]]\n"
"       subway-cli [-s HOST:PORT] [-t MS] pub TOPIC KEY VALUE|-\n"
"       subway-cli [-s HOST:PORT] [-t MS] pub --no-key TOPIC VALUE|-\n"
"\n"
"Talks to a subway node over its TCP protocol.\n"
"\n"
"  sub    Subscribe to every TOPIC KEY pair on one connection and print each\n"
"         record as it arrives (stdout is flushed after every record).\n"
"         KEY * means every key of the topic. When the connection is lost or\n"
"         the node goes away (GOAWAY), sub reconnects to the same address\n"
"         (backoff %d ms doubling to %d ms, with jitter) and resumes every\n"
"         feed where it stopped, so no record Kafka still holds is missed;\n"
"         it says so on stderr. --no-resume exits instead (status 3).\n"
"  pub    Publish VALUE under KEY to TOPIC and print \"PARTITION OFFSET\" once\n"
"         the node acknowledges it. With VALUE -, publish each line of stdin\n"
"         (without its newline) as one record, pipelined with at most %d\n"
"         unacknowledged, printing one \"PARTITION OFFSET\" line per record in\n"
"         input order. With --no-key, omit KEY: records get a nil key and Kafka\n"
"         picks the partition (a KEY argument of \"\" is an empty, not nil, key).\n"
"\n"
"Options (anywhere on the line; put -- before arguments that start with -):\n"
"  -s, --server HOST:PORT  node address (default: $SUBWAY_ADDR, else %s)\n"
"  -t, --timeout MS        connect/handshake and per-reply timeout (default %d)\n"
"      --token TOKEN       show this token (a JWT) to the node (default: $SUBWAY_TOKEN)\n"
"      --token-file FILE   the same, read from FILE's first line (keeps it out of ps)\n"
"      --tls               speak TLS to the node's --tls-listen port (default: on when\n"
"                          $SUBWAY_TLS is 1); the node's certificate must name the\n"
"                          host of -s (or --server-name) and chain to --ca\n"
"      --ca FILE           PEM CAs to check the node with (default: the system's)\n"
"      --cert FILE         PEM client certificate, for --tls-verify-client nodes\n"
"      --key FILE          its private key (default: in --cert's file)\n"
"      --server-name NAME  the name the node's certificate must carry\n"
"                          (--ca, --cert, --key and --server-name imply --tls)\n"
"  -o, --offset START      sub: where every feed starts, as kcat's -o (needs a\n"
"                          protocol-2 node):\n"
"                            end           new records only (the default)\n"
"                            beginning     each partition's oldest record\n"
"                            OFFSET        that offset in every partition\n"
"                            -N            the last N records of each partition\n"
"                            s@TS          the first record at or after TS\n"
"                                          (ms since the epoch)\n"
"                            P:O[,P:O...]  partition P from offset O (the next\n"
"                                          record wanted); others: new records\n"
"  -c, --count N           sub: exit 0 after N records in total\n"
"  -f, --format FMT        sub: record format (default '%s'):\n"
"                            %%t topic  %%p partition  %%o offset  %%T timestamp ms\n"
"                            %%k key  %%s value  %%K key size  %%S value size\n"
"                            (sizes are -1 for nil)  %%h headers as name=value,...\n"
"                            (a nil header value prints the name alone)\n"
"                            %%%% a percent sign; \\n \\t \\r \\\\ escapes\n"
"  -v, --verbose           sub: report SUBSCRIBED replies, LIVE, DROPPED, GOAWAY\n"
"                          and reconnect attempts on stderr\n"
"      --no-resume         sub: exit on connection loss or GOAWAY, as pub does\n"
"      --split-by-key DIR  sub: append each record to DIR/NAME instead of stdout\n"
"                          (format default '%%s\\n'), flushed per record; NAME is\n"
"                          the key with every byte but A-Z a-z 0-9 _ - and a\n"
"                          non-leading . written %%XX (so no /, .., NUL or control\n"
"                          byte), %%empty for \"\", %%nil for no key, a hash past\n"
"                          200 bytes; DIR is created if missing\n"
"      --header LINE       sub --split-by-key: first line of every file created\n"
"      --no-key            pub: publish with a nil key (see above)\n"
"  -h, --help              this text\n"
"      --version           print the version\n"
"\n"
"Exit status:\n"
"  0  sub: COUNT records printed, or SIGINT/SIGTERM; pub: every record acked\n"
"     (on SIGINT/SIGTERM pub stops reading stdin and waits for the acks owed;\n"
"     a second signal exits at once with 1)\n"
"  1  the node refused a request (the reason is printed), or bad input; sub: a\n"
"     feed the node refused to resume after a reconnect\n"
"  2  usage error\n"
"  3  could not connect, timeout; pub, and sub --no-resume: connection lost,\n"
"     node going away (GOAWAY)\n",
            RESUME_BASE_MS, RESUME_MAX_MS, MAX_INFLIGHT, DEFAULT_ADDR, DEFAULT_TIMEOUT_MS,
            DEFAULT_FORMAT);
}

/* One TOPIC KEY pair of `sub`. */
typedef struct sub_spec {
    const char *topic;
    const char *key_arg;             /* as typed, for messages */
    bool every_key;                  /* KEY was * */
    bool acked;                      /* SUBSCRIBED arrived */
    uint64_t feed;                   /* the feed id, once acked */
    struct cli *app;
} sub_spec;

/* One stdin record of `pub -` between PUBLISH and printing its ack. */
typedef struct pub_slot {
    bool done;
    int err;
    char *errstr;                    /* owned; set when err != 0 */
    uint32_t partition;
    uint64_t offset;
    int64_t sent_ms;
    uint64_t line;                   /* input line number, for messages */
} pub_slot;

typedef struct cli {
    const char *addr;
    const char *token;               /* --token, --token-file or $SUBWAY_TOKEN; NULL: none */
    bool tls;                        /* --tls, or $SUBWAY_TLS=1 */
    subway_tls tls_opts;             /* --ca, --cert, --key, --server-name */
    int timeout_ms;
    long long count;                 /* 0 = no limit */
    const char *format;
    bool verbose;
    bool no_key;
    bool no_resume;
    subway_start start;              /* -o, for every feed */
    subway_position *start_pos;      /* owned: -o P:O,... */
    subway_client *c;
    bool finished;                   /* stop the loop; callbacks stay quiet after */
    int exit_code;
    long long received;
    sub_spec *subs;
    size_t nsubs;
    size_t acked;
    int64_t ack_deadline;            /* all SUBSCRIBED by then, or exit; -1 = none */
    const char *split_dir;           /* --split-by-key; NULL: records go to stdout */
    const char *header;              /* --header */
    cli_split *split;                /* owned; files per key (cli_split.c) */
} cli;

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Reports the first failure (later ones are consequences) and stops. */
static void cli_fail(cli *a, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void cli_fail(cli *a, int code, const char *fmt, ...) {
    if (a->finished) return;
    a->finished = true;
    a->exit_code = code;
    va_list ap;
    va_start(ap, fmt);
    fputs("subway-cli: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* Exit status for a request that failed with err. */
static int exit_for(int err) {
    switch (err) {
    case SUBWAY_E_IO: case SUBWAY_E_EOF: case SUBWAY_E_PROTOCOL: case SUBWAY_E_TIMEOUT:
    case SUBWAY_E_CLOSED: case SUBWAY_E_GOAWAY:
        return EXIT_CONN;
    }
    return EXIT_FAIL;
}

/* ================================================================ format */

/* Checks fmt; returns NULL, or a static description of what is wrong. */
static const char *format_check(const char *fmt) {
    for (const char *p = fmt; *p; p++) {
        if (*p == '%') {
            if (p[1] == '\0' || !strchr("tpoTkKsSh%", p[1])) return "unknown %-token";
            p++;
        } else if (*p == '\\') {
            if (p[1] == '\0' || !strchr("ntr\\", p[1])) return "unknown \\-escape";
            p++;
        }
    }
    return NULL;
}

static void put_bytes(const char *p, size_t len, FILE *out) {
    if (p && len) fwrite(p, 1, len, out);
}

/* Writes one record as fmt (already checked) says. */
static void format_record(const char *fmt, const subway_message *m, FILE *out) {
    for (const char *p = fmt; *p; p++) {
        if (*p == '\\') {
            p++;
            fputc(*p == 'n' ? '\n' : *p == 't' ? '\t' : *p == 'r' ? '\r' : '\\', out);
            continue;
        }
        if (*p != '%') {
            fputc(*p, out);
            continue;
        }
        switch (*++p) {
        case 't': fputs(m->topic ? m->topic : "", out); break;
        case 'p': fprintf(out, "%" PRIu32, m->partition); break;
        case 'o': fprintf(out, "%" PRIu64, m->offset); break;
        case 'T': fprintf(out, "%" PRId64, m->timestamp_ms); break;
        case 'k': put_bytes(m->key, m->key_len, out); break;
        case 's': put_bytes(m->value, m->value_len, out); break;
        case 'K': fprintf(out, "%lld", m->key ? (long long)m->key_len : -1LL); break;
        case 'S': fprintf(out, "%lld", m->value ? (long long)m->value_len : -1LL); break;
        case 'h':
            for (size_t i = 0; i < m->header_cnt; i++) {
                const subway_header *h = &m->headers[i];
                if (i) fputc(',', out);
                put_bytes(h->name, h->name_len, out);
                if (h->value) {
                    fputc('=', out);
                    put_bytes(h->value, h->value_len, out);
                }
            }
            break;
        default: fputc('%', out); break;
        }
    }
}

/* =================================================================== sub */

static void sub_on_message(subway_client *c, void *cb_data, const subway_message *m) {
    cli *a = cb_data;
    if (a->finished) return;
    char why[512];
    FILE *out = a->split ? cli_split_file(a->split, m->key, m->key_len, why, sizeof(why)) : stdout;
    if (out == NULL) {
        cli_fail(a, EXIT_FAIL, "--split-by-key %s: %s", a->split_dir, why);
        return;
    }
    format_record(a->format, m, out);
    /* A program reading the pipe (or the file) must see each record at once. */
    if (fflush(out) != 0 || ferror(out)) {
        cli_fail(a, EXIT_FAIL, "%s: %s", a->split ? a->split_dir : "stdout", strerror(errno));
        return;
    }
    a->received++;
    if (a->count > 0 && a->received >= a->count) a->finished = true;
}

/* The TOPIC KEY pair a feed id belongs to, or NULL. */
static sub_spec *sub_by_feed(cli *a, uint64_t feed) {
    for (size_t i = 0; i < a->nsubs; i++)
        if (a->subs[i].acked && a->subs[i].feed == feed) return &a->subs[i];
    return NULL;
}

/* A feed's name for stderr: "TOPIC/KEY feed=HANDLE", HANDLE the node's
 * (what its stats and logs call the feed), the library's id without one. */
static void feed_label(cli *a, uint64_t feed, char *buf, size_t size) {
    const sub_spec *s = sub_by_feed(a, feed);
    uint64_t handle = feed;
    subway_feed_handle(a->c, feed, &handle);
    snprintf(buf, size, "%s%s%s feed=%" PRIu64, s ? s->topic : "", s ? "/" : "",
             s ? s->key_arg : "?", handle);
}

static void sub_on_dropped(subway_client *c, void *cb_data, uint64_t feed, uint64_t count) {
    cli *a = cb_data;
    if (!a->verbose || a->finished) return;
    char label[512];
    feed_label(a, feed, label, sizeof(label));
    fprintf(stderr, "dropped %s count=%" PRIu64 "\n", label, count);
}

static void sub_on_live(subway_client *c, void *cb_data, uint64_t feed,
                        const subway_position *ps, size_t n) {
    cli *a = cb_data;
    if (!a->verbose || a->finished) return;
    char label[512];
    feed_label(a, feed, label, sizeof(label));
    fprintf(stderr, "live %s positions=", label);
    for (size_t i = 0; i < n; i++)
        fprintf(stderr, "%s%" PRIu32 ":%" PRIu64, i ? "," : "", ps[i].partition, ps[i].offset);
    fputc('\n', stderr);
}

static void sub_on_goaway(subway_client *c, void *cb_data, const char *text) {
    cli *a = cb_data;
    if (a->verbose && !a->finished) fprintf(stderr, "goaway: %s\n", text);
}

static void sub_on_reconnect(subway_client *c, void *cb_data, const subway_reconnect_info *info) {
    cli *a = cb_data;
    if (a->finished) return;
    switch (info->event) {
    case SUBWAY_RECONNECT_LOST:
        if (info->attempt == 1)
            fprintf(stderr, "subway-cli: connection lost: %s; reconnecting in %d ms\n",
                    info->errstr, info->delay_ms);
        else
            fprintf(stderr, "subway-cli: reconnect attempt %u failed: %s; next in %d ms\n",
                    info->attempt - 1, info->errstr, info->delay_ms);
        break;
    case SUBWAY_RECONNECT_ATTEMPT:
        if (a->verbose) fprintf(stderr, "reconnecting to %s (attempt %u)\n", a->addr, info->attempt);
        break;
    case SUBWAY_RECONNECT_DONE:
        if (info->resumed)
            fprintf(stderr, "subway-cli: reconnected to node %s; resuming %zu feeds\n",
                    subway_node_id(c), info->feed_cnt);
        else
            fprintf(stderr, "subway-cli: reconnected to node %s, which speaks protocol version 1: "
                    "%zu feeds restarted at new records, those of the gap may be missing\n",
                    subway_node_id(c), info->feed_cnt);
        /* Feeds not acked yet were sent again: give them the time anew. */
        if (a->ack_deadline >= 0) a->ack_deadline = now_ms() + a->timeout_ms;
        break;
    }
}

static void sub_on_feed_lost(subway_client *c, void *cb_data, uint64_t feed, int err,
                             const char *errstr) {
    cli *a = cb_data;
    const sub_spec *s = sub_by_feed(a, feed);
    cli_fail(a, EXIT_FAIL, "subscribe %s/%s: cannot resume: %s: %s", s ? s->topic : "?",
             s ? s->key_arg : "?", subway_err_name(err), errstr);
}

static void sub_on_error(subway_client *c, void *cb_data, uint64_t req_id, int code,
                         const char *text) {
    cli *a = cb_data;
    /* req_id 0 errors come back as the close reason; report the rest. */
    if (a->verbose && !a->finished && req_id != 0)
        fprintf(stderr, "error req_id=%" PRIu64 " %s: %s\n", req_id, subway_err_name(code), text);
}

static void sub_on_reply(subway_client *c, void *cb_data, int err, const char *errstr,
                         const subway_result *res) {
    sub_spec *s = cb_data;
    cli *a = s->app;
    if (a->finished) return;
    if (err == SUBWAY_E_CLOSED) return;   /* the poll loop reports why the connection went */
    if (err != 0) {
        cli_fail(a, exit_for(err), "subscribe %s/%s: %s: %s", s->topic, s->key_arg,
                 subway_err_name(err), errstr);
        return;
    }
    s->acked = true;
    s->feed = res->feed;
    a->acked++;
    if (a->verbose) {
        char label[512];
        feed_label(a, res->feed, label, sizeof(label));
        fprintf(stderr, "subscribed %s partitions=", label);
        for (size_t i = 0; i < res->partition_cnt; i++)
            fprintf(stderr, "%s%" PRIu32, i ? "," : "", res->partitions[i]);
        fputc('\n', stderr);
    }
}

static int run_sub(cli *a) {
    a->ack_deadline = a->timeout_ms < 0 ? -1 : now_ms() + a->timeout_ms;
    for (size_t i = 0; i < a->nsubs && !a->finished; i++) {
        sub_spec *s = &a->subs[i];
        const char *key = s->every_key ? NULL : s->key_arg;
        subway_subscribe_from(a->c, s->topic, key, key ? strlen(key) : 0, &a->start, sub_on_reply,
                              s);
    }
    while (!a->finished && !signals_seen) {
        /* -1 only when the client is closed for good: resuming is not. */
        if (subway_poll(a->c, TICK_MS) < 0) {
            cli_fail(a, EXIT_CONN, "connection lost: %s", subway_errstr(a->c));
            break;
        }
        if (a->acked < a->nsubs && a->ack_deadline >= 0 && now_ms() >= a->ack_deadline) {
            for (size_t i = 0; i < a->nsubs; i++)
                if (!a->subs[i].acked) {
                    cli_fail(a, EXIT_CONN, "subscribe %s/%s: no reply within %d ms",
                             a->subs[i].topic, a->subs[i].key_arg, a->timeout_ms);
                    break;
                }
        }
    }
    a->finished = true;
    return a->exit_code;
}

/* =================================================================== pub */

static void pub_on_reply(subway_client *c, void *cb_data, int err, const char *errstr,
                         const subway_result *res) {
    pub_slot *s = cb_data;
    s->done = true;
    s->err = err;
    s->partition = res->partition;
    s->offset = res->offset;
    if (err) {
        free(s->errstr);
        s->errstr = strdup(errstr);
    }
}

static const char *pub_key(const cli *a, const char *key) {
    return a->no_key ? NULL : key;
}

/* `pub TOPIC KEY VALUE`: one record, blocking. */
static int pub_one(cli *a, const char *topic, const char *key, const char *value) {
    const char *k = pub_key(a, key);
    uint32_t partition;
    uint64_t offset;
    if (subway_publish_sync(a->c, topic, k, k ? strlen(k) : 0, value, strlen(value), &partition,
                            &offset) < 0) {
        int err = subway_request_err(a->c);
        if (err == SUBWAY_E_CLOSED)
            cli_fail(a, EXIT_CONN, "publish %s/%s: connection lost: %s", topic, k ? k : "(nil)",
                     subway_request_errstr(a->c));
        else
            cli_fail(a, exit_for(err), "publish %s/%s: %s: %s", topic, k ? k : "(nil)",
                     subway_err_name(err), subway_request_errstr(a->c));
        return a->exit_code;
    }
    printf("%" PRIu32 " %" PRIu64 "\n", partition, offset);
    fflush(stdout);
    return EXIT_OK;
}

/* Prints the acks at the front of the window in input order; stops at the
 * first record not yet acked, or failed. Returns false after reporting a
 * failed one (with report false, just stops there). */
static bool pub_print_done(cli *a, pub_slot *slots, uint64_t *head, uint64_t next,
                           const char *topic, const char *key, bool report) {
    bool printed = false;
    bool ok = true;
    while (*head < next && slots[*head % MAX_INFLIGHT].done) {
        pub_slot *s = &slots[*head % MAX_INFLIGHT];
        if (s->err) {
            if (!report) break;
            cli_fail(a, exit_for(s->err), "publish %s/%s (line %" PRIu64 "): %s: %s", topic,
                     key ? key : "(nil)", s->line, subway_err_name(s->err),
                     s->errstr ? s->errstr : "");
            ok = false;
            break;
        }
        printf("%" PRIu32 " %" PRIu64 "\n", s->partition, s->offset);
        printed = true;
        (*head)++;
    }
    if (printed) fflush(stdout);
    return ok;
}

/* `pub TOPIC KEY -`: every stdin line a record, pipelined over the event API. */
static int pub_stdin(cli *a, const char *topic, const char *key_arg) {
    const char *key = pub_key(a, key_arg);
    size_t key_len = key ? strlen(key) : 0;
    /* A line longer than the node's max_frame could never be published. */
    size_t line_max = subway_max_frame(a->c) ? (size_t)subway_max_frame(a->c) : 1024 * 1024;
    size_t cap = line_max + 1;
    char *buf = malloc(cap);
    pub_slot *slots = calloc(MAX_INFLIGHT, sizeof(*slots));
    if (buf == NULL || slots == NULL) cli_fail(a, EXIT_FAIL, "out of memory");
    size_t len = 0;                  /* bytes in buf; lines are taken from the front */
    size_t scan = 0;                 /* bytes of buf already searched for '\n' */
    uint64_t head = 0, next = 0, lineno = 0;
    bool eof = false, blocked = false;
    int fd = subway_client_fd(a->c);

    while (!a->finished) {
        if (!pub_print_done(a, slots, &head, next, topic, key, true)) break;
        if (signals_seen > 1) {
            cli_fail(a, EXIT_FAIL, "interrupted with %" PRIu64 " records unacknowledged",
                     next - head);
            break;
        }
        if (signals_seen) {
            /* Stop taking input; only the acks already owed are awaited. */
            eof = true;
            len = 0;
        }
        if (eof && head == next && len == 0) break;

        /* Publish complete lines while the window and output buffer have room. */
        while (!eof || len > 0) {
            if (next - head >= MAX_INFLIGHT || blocked) break;
            char *nl = memchr(buf + scan, '\n', len - scan);
            size_t line_len;
            if (nl) {
                line_len = (size_t)(nl - buf);
            } else if (eof && len > 0) {
                line_len = len;      /* the last line had no newline */
            } else {
                scan = len;
                break;
            }
            pub_slot *s = &slots[next % MAX_INFLIGHT];
            free(s->errstr);
            *s = (pub_slot){ .sent_ms = now_ms(), .line = lineno + 1 };
            if (subway_publish(a->c, topic, key, key_len, buf, line_len, pub_on_reply, s) < 0 &&
                s->err == SUBWAY_E_OUTPUT_FULL) {
                /* Not a failure: wait for the socket to drain, then retry the line. */
                s->done = false;
                blocked = true;
                break;
            }
            lineno++;
            next++;
            size_t used = nl ? line_len + 1 : line_len;
            memmove(buf, buf + used, len - used);
            len -= used;
            scan = 0;
        }
        if (!pub_print_done(a, slots, &head, next, topic, key, true)) break;
        if (eof && head == next && len == 0) break;

        struct pollfd p[2] = { { .fd = fd, .events = POLLIN }, { .fd = 0, .events = POLLIN } };
        if (subway_client_want_write(a->c)) p[0].events |= POLLOUT;
        nfds_t n = 1;
        if (!eof && !blocked && next - head < MAX_INFLIGHT) n = 2;
        int wait = subway_client_timeout_ms(a->c);
        if (wait < 0 || wait > TICK_MS) wait = TICK_MS;
        int rc = poll(p, n, wait);
        if (rc < 0 && errno != EINTR) {
            cli_fail(a, EXIT_CONN, "poll: %s", strerror(errno));
            break;
        }
        if (rc > 0 && (p[0].revents & (POLLOUT | POLLERR | POLLHUP)) &&
            subway_client_flush(a->c) < 0) {
            cli_fail(a, EXIT_CONN, "connection lost: %s", subway_errstr(a->c));
            break;
        }
        if (rc > 0 && (p[0].revents & (POLLIN | POLLERR | POLLHUP)) &&
            subway_client_process_readable(a->c) < 0) {
            /* Print what was acked before the loss, then say why it ended. */
            pub_print_done(a, slots, &head, next, topic, key, false);
            cli_fail(a, EXIT_CONN, "connection lost: %s", subway_errstr(a->c));
            break;
        }
        if (subway_client_tick(a->c) < 0) {
            cli_fail(a, EXIT_CONN, "connection lost: %s", subway_errstr(a->c));
            break;
        }
        if (blocked && !subway_client_want_write(a->c)) blocked = false;
        if (head < next && a->timeout_ms >= 0 &&
            now_ms() - slots[head % MAX_INFLIGHT].sent_ms >= a->timeout_ms) {
            cli_fail(a, EXIT_CONN, "publish %s/%s (line %" PRIu64 "): no reply within %d ms",
                     topic, key ? key : "(nil)", slots[head % MAX_INFLIGHT].line, a->timeout_ms);
            break;
        }
        if (n == 2 && (p[1].revents & (POLLIN | POLLHUP | POLLERR))) {
            if (len == cap) {
                cli_fail(a, EXIT_FAIL, "stdin line %" PRIu64 " is longer than %zu bytes",
                         lineno + 1, line_max);
                break;
            }
            ssize_t got = read(0, buf + len, cap - len);
            if (got < 0 && errno != EINTR && errno != EAGAIN) {
                cli_fail(a, EXIT_FAIL, "stdin: %s", strerror(errno));
                break;
            }
            if (got == 0) eof = true;
            if (got > 0) len += (size_t)got;
        }
    }
    a->finished = true;
    /* Free the client before the slots: pending callbacks still write into them. */
    subway_client_free(a->c);
    a->c = NULL;
    if (slots)
        for (size_t i = 0; i < MAX_INFLIGHT; i++) free(slots[i].errstr);
    free(slots);
    free(buf);
    return a->exit_code;
}

/* ================================================================== main */

static int parse_int(const char *s, long long min, long long max, long long *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max) return -1;
    *out = v;
    return 0;
}

/* Parses -o's START (see usage) into a->start. Returns 0, or -1 after
 * saying what is wrong. */
static int parse_start(cli *a, const char *arg) {
    long long v;
    if (strcmp(arg, "end") == 0) {
        a->start = (subway_start){ .mode = SUBWAY_START_LIVE };
    } else if (strcmp(arg, "beginning") == 0) {
        a->start = (subway_start){ .mode = SUBWAY_START_BEGINNING };
    } else if (strncmp(arg, "s@", 2) == 0 && parse_int(arg + 2, 0, LLONG_MAX, &v) == 0) {
        a->start = (subway_start){ .mode = SUBWAY_START_TIMESTAMP, .arg = v };
    } else if (arg[0] == '-' && parse_int(arg + 1, 0, LLONG_MAX, &v) == 0) {
        a->start = (subway_start){ .mode = SUBWAY_START_LAST, .arg = v };
    } else if (!strchr(arg, ':') && parse_int(arg, 0, LLONG_MAX, &v) == 0) {
        a->start = (subway_start){ .mode = SUBWAY_START_OFFSET, .arg = v };
    } else if (strchr(arg, ':')) {
        size_t n = 1;
        for (const char *p = arg; *p; p++) n += *p == ',';
        free(a->start_pos);
        a->start_pos = calloc(n, sizeof(*a->start_pos));
        if (a->start_pos == NULL) {
            fprintf(stderr, "subway-cli: out of memory\n");
            return -1;
        }
        const char *p = arg;
        for (size_t i = 0; i < n; i++) {
            char item[64];
            size_t len = strcspn(p, ",");
            const char *colon = memchr(p, ':', len);
            long long part, off;
            if (len >= sizeof(item) || colon == NULL) goto bad;
            memcpy(item, p, len);
            item[len] = '\0';
            item[colon - p] = '\0';
            if (parse_int(item, 0, UINT32_MAX, &part) < 0 ||
                parse_int(item + (colon - p) + 1, 0, LLONG_MAX, &off) < 0)
                goto bad;
            a->start_pos[i] = (subway_position){ (uint32_t)part, (uint64_t)off };
            p += len + (p[len] == ',');
        }
        a->start = (subway_start){ .mode = SUBWAY_START_POSITIONS, .positions = a->start_pos,
                                   .position_cnt = n };
    } else {
        goto bad;
    }
    return 0;
bad:
    fprintf(stderr, "subway-cli: -o wants end, beginning, OFFSET, -N, s@TIMESTAMP_MS or "
            "PARTITION:OFFSET[,...], not '%s'\n", arg);
    return -1;
}

enum { OPT_NO_KEY = 256, OPT_VERSION, OPT_NO_RESUME, OPT_TOKEN, OPT_TOKEN_FILE, OPT_SPLIT, OPT_HEADER };
enum { OPT_TLS = 320, OPT_CA, OPT_CERT, OPT_KEY, OPT_SERVER_NAME };

/* --token-file: the first line of FILE, in a static buffer (tokens are
 * well under 16 KiB). Returns NULL with a message printed. */
static const char *read_token_file(const char *path) {
    static char buf[16384];
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "subway-cli: --token-file %s: %s\n", path, strerror(errno));
        return NULL;
    }
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    buf[strcspn(buf, "\r\n")] = '\0';
    if (buf[0] == '\0') {
        fprintf(stderr, "subway-cli: --token-file %s is empty\n", path);
        return NULL;
    }
    return buf;
}

int main(int argc, char **argv) {
    static const struct option longopts[] = {
        { "server", required_argument, NULL, 's' },
        { "timeout", required_argument, NULL, 't' },
        { "count", required_argument, NULL, 'c' },
        { "format", required_argument, NULL, 'f' },
        { "verbose", no_argument, NULL, 'v' },
        { "offset", required_argument, NULL, 'o' },
        { "no-resume", no_argument, NULL, OPT_NO_RESUME },
        { "token", required_argument, NULL, OPT_TOKEN },
        { "token-file", required_argument, NULL, OPT_TOKEN_FILE },
        { "tls", no_argument, NULL, OPT_TLS },
        { "ca", required_argument, NULL, OPT_CA },
        { "cert", required_argument, NULL, OPT_CERT },
        { "key", required_argument, NULL, OPT_KEY },
        { "server-name", required_argument, NULL, OPT_SERVER_NAME },
        { "no-key", no_argument, NULL, OPT_NO_KEY },
        { "split-by-key", required_argument, NULL, OPT_SPLIT },
        { "header", required_argument, NULL, OPT_HEADER },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, OPT_VERSION },
        { NULL, 0, NULL, 0 },
    };
    cli a = { .timeout_ms = DEFAULT_TIMEOUT_MS, .format = DEFAULT_FORMAT };
    a.addr = getenv("SUBWAY_ADDR");
    a.token = getenv("SUBWAY_TOKEN");
    if (a.token && a.token[0] == '\0') a.token = NULL;
    a.tls = getenv("SUBWAY_TLS") && strcmp(getenv("SUBWAY_TLS"), "1") == 0;
    if (a.addr == NULL || a.addr[0] == '\0') a.addr = DEFAULT_ADDR;
    bool have_count = false, have_format = false;
    const char *start_arg = NULL;    /* -o, parsed once the command is known good */

    int ch;
    long long v;
    while ((ch = getopt_long(argc, argv, "s:t:c:f:o:vh", longopts, NULL)) != -1) {
        switch (ch) {
        case 's':
            a.addr = optarg;
            break;
        case 't':
            if (parse_int(optarg, 1, INT_MAX, &v) < 0) {
                fprintf(stderr, "subway-cli: -t wants milliseconds >= 1, not '%s'\n", optarg);
                return EXIT_USAGE;
            }
            a.timeout_ms = (int)v;
            break;
        case 'c':
            if (parse_int(optarg, 1, LLONG_MAX, &a.count) < 0) {
                fprintf(stderr, "subway-cli: -c wants a count >= 1, not '%s'\n", optarg);
                return EXIT_USAGE;
            }
            have_count = true;
            break;
        case 'f':
            a.format = optarg;
            have_format = true;
            break;
        case 'v':
            a.verbose = true;
            break;
        case 'o':
            start_arg = optarg;
            break;
        case OPT_NO_RESUME:
            a.no_resume = true;
            break;
        case OPT_TOKEN:
            a.token = optarg;
            break;
        case OPT_TOKEN_FILE:
            if ((a.token = read_token_file(optarg)) == NULL) return EXIT_USAGE;
            break;
        case OPT_NO_KEY:
            a.no_key = true;
            break;
        case OPT_TLS:
            a.tls = true;
            break;
        case OPT_CA:
        case OPT_CERT:
        case OPT_KEY:
        case OPT_SERVER_NAME:
            *(ch == OPT_CA ? &a.tls_opts.ca_file : ch == OPT_CERT ? &a.tls_opts.cert_file
              : ch == OPT_KEY ? &a.tls_opts.key_file : &a.tls_opts.server_name) = optarg;
            a.tls = true;
            break;
        case OPT_SPLIT:
            a.split_dir = optarg;
            break;
        case OPT_HEADER:
            a.header = optarg;
            break;
        case 'h':
            usage(stdout);
            return EXIT_OK;
        case OPT_VERSION:
            printf("subway-cli %s\n", SUBWAY_VERSION);
            return EXIT_OK;
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    char **args = argv + optind;
    int nargs = argc - optind;
    if (nargs < 1) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *cmd = args[0];
    args++;
    nargs--;
    bool is_sub = strcmp(cmd, "sub") == 0, is_pub = strcmp(cmd, "pub") == 0;
    if (!is_sub && !is_pub) {
        fprintf(stderr, "subway-cli: unknown command '%s' (want sub or pub; -h for help)\n", cmd);
        return EXIT_USAGE;
    }
    if (is_sub) {
        if (nargs < 2 || nargs % 2 != 0) {
            fprintf(stderr, "subway-cli: sub wants TOPIC KEY pairs (-h for help)\n");
            return EXIT_USAGE;
        }
        if (a.no_key) {
            fprintf(stderr, "subway-cli: --no-key is for pub; sub uses KEY * for every key\n");
            return EXIT_USAGE;
        }
        if (a.header && !a.split_dir) {
            fprintf(stderr, "subway-cli: --header goes with --split-by-key\n");
            return EXIT_USAGE;
        }
        if (a.split_dir && !have_format) a.format = "%s\\n";
        const char *why = format_check(a.format);
        if (why) {
            fprintf(stderr, "subway-cli: -f '%s': %s\n", a.format, why);
            return EXIT_USAGE;
        }
        /* The last thing checked: it is the first that allocates. */
        if (start_arg && parse_start(&a, start_arg) < 0) {
            free(a.start_pos);
            return EXIT_USAGE;
        }
    } else {
        int want = a.no_key ? 2 : 3;
        if (nargs != want) {
            fprintf(stderr, "subway-cli: pub wants TOPIC %sVALUE (-h for help)\n",
                    a.no_key ? "" : "KEY ");
            return EXIT_USAGE;
        }
        if (have_count || have_format || a.verbose || start_arg || a.no_resume || a.split_dir || a.header) {
            fprintf(stderr, "subway-cli: -c, -f, -o, -v, --no-resume, --split-by-key and --header are for sub\n");
            return EXIT_USAGE;
        }
    }

    subway_options opt = { .client_name = "subway-cli", .timeout_ms = a.timeout_ms };
    if (is_sub) {
        a.nsubs = (size_t)nargs / 2;
        a.subs = calloc(a.nsubs, sizeof(*a.subs));
        if (a.subs == NULL) {
            fprintf(stderr, "subway-cli: out of memory\n");
            free(a.start_pos);
            return EXIT_FAIL;
        }
        for (size_t i = 0; i < a.nsubs; i++)
            a.subs[i] = (sub_spec){ .topic = args[2 * i], .key_arg = args[2 * i + 1],
                                    .every_key = strcmp(args[2 * i + 1], "*") == 0, .app = &a };
        opt.cb = (subway_callbacks){ .on_message = sub_on_message, .on_dropped = sub_on_dropped,
                                     .on_goaway = sub_on_goaway, .on_error = sub_on_error,
                                     .on_live = sub_on_live, .on_reconnect = sub_on_reconnect,
                                     .on_feed_lost = sub_on_feed_lost, .cb_data = &a };
        opt.reconnect = !a.no_resume;
        opt.reconnect_base_ms = RESUME_BASE_MS;
        opt.reconnect_max_ms = RESUME_MAX_MS;
    }

    a.c = subway_connect_tls(a.addr, &opt, a.token, a.tls ? &a.tls_opts : NULL);
    if (a.c == NULL) {
        fprintf(stderr, "subway-cli: out of memory\n");
        free(a.subs);
        free(a.start_pos);
        return EXIT_FAIL;
    }
    if (subway_err(a.c)) {
        fprintf(stderr, "subway-cli: %s\n", subway_errstr(a.c));
        subway_client_free(a.c);
        free(a.subs);
        free(a.start_pos);
        return EXIT_CONN;
    }

    /* Installed after connecting: until then the default (terminate) is right.
     * No SA_RESTART, so poll(2) returns and the loops see the flag. */
    struct sigaction sa = { .sa_handler = on_signal };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    int rc;
    char why[512];
    if (is_sub && a.split_dir && (a.split = cli_split_new(a.split_dir, a.header, why, sizeof(why))) == NULL) {
        fprintf(stderr, "subway-cli: %s\n", why);
        rc = EXIT_FAIL;
    } else if (is_sub) {
        rc = run_sub(&a);
    } else if (strcmp(args[nargs - 1], "-") == 0) {
        rc = pub_stdin(&a, args[0], a.no_key ? NULL : args[1]);
    } else {
        rc = pub_one(&a, args[0], a.no_key ? NULL : args[1], args[nargs - 1]);
    }
    a.finished = true;
    subway_client_free(a.c);
    cli_split_free(a.split);
    free(a.subs);
    free(a.start_pos);
    return rc;
}
