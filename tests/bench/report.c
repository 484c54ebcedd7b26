/* report.c -- results: one JSON line per measurement, Markdown tables on stdout, number formatting. */
#include "tests/bench/bench.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ----------------------------------------------------------- JSON lines */

static FILE *json_out;
static char run_id[32];

struct jrec {
    char buf[8192];
    size_t len;
};

int report_open(const char *path) {
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(run_id, sizeof(run_id), "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (!path) return 0;
    json_out = fopen(path, "a");
    if (!json_out) {
        perror(path);
        return -1;
    }
    return 0;
}

void report_close(void) {
    if (json_out) fclose(json_out);
    json_out = NULL;
}

static void jr_raw(jrec *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void jr_raw(jrec *j, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(j->buf + j->len, sizeof(j->buf) - j->len, fmt, ap);
    va_end(ap);
    if (n > 0) j->len += (size_t)n;
    if (j->len >= sizeof(j->buf)) j->len = sizeof(j->buf) - 1;
}

static void jr_key(jrec *j, const char *k) {
    jr_raw(j, "%s\"%s\":", j->len > 1 ? "," : "", k);
}

jrec *jr_begin(const char *scenario, const char *measurement) {
    jrec *j = calloc(1, sizeof(*j));
    if (!j) abort();
    jr_raw(j, "{");
    jr_str(j, "scenario", scenario);
    jr_str(j, "measurement", measurement);
    jr_str(j, "run", run_id);
    jr_int(j, "tiny", g_opts.tiny);
    jr_int(j, "nproc", sysconf(_SC_NPROCESSORS_ONLN));
    jr_int(j, "value_bytes", g_opts.value_len);
    jr_str(j, "kafka", g_opts.kafka_apache ? "apache" : "mock");
    double load = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &load) != 1) load = -1;
        fclose(f);
    }
    jr_num(j, "loadavg_1m", load);
    return j;
}

void jr_str(jrec *j, const char *k, const char *v) {
    jr_key(j, k);
    jr_raw(j, "\"");
    for (const char *p = v; *p; p++) {
        if (*p == '"' || *p == '\\') jr_raw(j, "\\%c", *p);
        else if ((unsigned char)*p < 0x20) jr_raw(j, "\\u%04x", *p);
        else jr_raw(j, "%c", *p);
    }
    jr_raw(j, "\"");
}

void jr_int(jrec *j, const char *k, long long v) {
    jr_key(j, k);
    jr_raw(j, "%lld", v);
}

void jr_num(jrec *j, const char *k, double v) {
    jr_key(j, k);
    jr_raw(j, "%.6g", v);
}

void jr_hist(jrec *j, const char *prefix, const hist *h) {
    char k[96];
    static const struct { const char *name; double q; } qs[] = {
        {"p50", 50}, {"p99", 99}, {"p99_9", 99.9}, {"max", 100}};
    snprintf(k, sizeof(k), "%s_samples", prefix);
    jr_int(j, k, (long long)h->n);
    for (size_t i = 0; i < sizeof(qs) / sizeof(qs[0]); i++) {
        snprintf(k, sizeof(k), "%s_%s_us", prefix, qs[i].name);
        jr_num(j, k, (double)hist_pct(h, qs[i].q) / 1000.0);
    }
}

void jr_proc(jrec *j, const char *prefix, const procstat *before, const procstat *after) {
    char k[96];
    snprintf(k, sizeof(k), "%s_cpu_s", prefix);
    jr_num(j, k, after->cpu_s - before->cpu_s);
    snprintf(k, sizeof(k), "%s_rss_kb", prefix);
    jr_int(j, k, after->rss_kb);
    snprintf(k, sizeof(k), "%s_peak_rss_kb", prefix);
    jr_int(j, k, after->hwm_kb);
    snprintf(k, sizeof(k), "%s_threads", prefix);
    jr_int(j, k, after->threads);
}

void jr_end(jrec *j) {
    jr_raw(j, "}\n");
    if (json_out) {
        fputs(j->buf, json_out);
        fflush(json_out);
    }
    if (g_opts.verbose) fputs(j->buf, stderr);
    free(j);
}

/* --------------------------------------------------------------- tables */

#define TAB_MAX_COLS 16
#define TAB_MAX_ROWS 64
#define TAB_MAX_NOTES 40

struct tab {
    char title[200];
    int ncols;
    char *cells[TAB_MAX_ROWS + 1][TAB_MAX_COLS];   /* row 0: the header */
    int nrows;
    char *notes[TAB_MAX_NOTES];
    int nnotes;
};

tab *tab_new(const char *title, int ncols, const char *const *cols) {
    tab *t = calloc(1, sizeof(*t));
    if (!t) abort();
    snprintf(t->title, sizeof(t->title), "%s", title);
    t->ncols = ncols > TAB_MAX_COLS ? TAB_MAX_COLS : ncols;
    for (int c = 0; c < t->ncols; c++) t->cells[0][c] = strdup(cols[c]);
    t->nrows = 1;
    return t;
}

void tab_row(tab *t, ...) {
    va_list ap;
    va_start(ap, t);
    if (t->nrows <= TAB_MAX_ROWS) {
        for (int c = 0; c < t->ncols; c++) {
            const char *s = va_arg(ap, const char *);
            t->cells[t->nrows][c] = strdup(s ? s : "");
        }
        t->nrows++;
    }
    va_end(ap);
}

void tab_note(tab *t, const char *fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (t->nnotes < TAB_MAX_NOTES) t->notes[t->nnotes++] = strdup(buf);
}

void tab_print(tab *t) {
    int w[TAB_MAX_COLS] = {0};
    for (int r = 0; r < t->nrows; r++)
        for (int c = 0; c < t->ncols; c++) {
            int l = (int)strlen(t->cells[r][c]);
            if (l > w[c]) w[c] = l;
        }
    printf("\n### %s\n\n", t->title);
    for (int r = 0; r < t->nrows; r++) {
        printf("|");
        for (int c = 0; c < t->ncols; c++) printf(" %-*s |", w[c], t->cells[r][c]);
        printf("\n");
        if (r == 0) {
            printf("|");
            for (int c = 0; c < t->ncols; c++) {
                printf("-");
                for (int i = 0; i < w[c]; i++) printf("-");
                printf("-|");
            }
            printf("\n");
        }
    }
    if (t->nnotes) printf("\n");
    for (int i = 0; i < t->nnotes; i++) printf("%s\n", t->notes[i]);
    fflush(stdout);
    for (int r = 0; r < t->nrows; r++)
        for (int c = 0; c < t->ncols; c++) free(t->cells[r][c]);
    for (int i = 0; i < t->nnotes; i++) free(t->notes[i]);
    free(t);
}

/* ------------------------------------------------------------ formatting */

static char *slot(void) {
    static char bufs[32][64];
    static int next;
    next = (next + 1) % 32;
    return bufs[next];
}

const char *fmt_int(double v) {
    char raw[64], *out = slot();
    long long n = (long long)(v < 0 ? v - 0.5 : v + 0.5);
    snprintf(raw, sizeof(raw), "%lld", n < 0 ? -n : n);
    size_t len = strlen(raw), o = 0;
    if (n < 0) out[o++] = '-';
    for (size_t i = 0; i < len; i++) {
        out[o++] = raw[i];
        if ((len - i - 1) % 3 == 0 && i + 1 < len) out[o++] = ',';
    }
    out[o] = '\0';
    return out;
}

const char *fmt_f(const char *fmt, double v) {
    char *out = slot();
    snprintf(out, 64, fmt, v);
    return out;
}

const char *fmt_str(const char *fmt, ...) {
    char *out = slot();
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out, 64, fmt, ap);
    va_end(ap);
    return out;
}

const char *fmt_us(uint64_t ns) {
    char *out = slot();
    if (ns < 1000000)
        snprintf(out, 64, "%.3f ms", (double)ns / 1e6);
    else if (ns < 100000000)
        snprintf(out, 64, "%.2f ms", (double)ns / 1e6);
    else if (ns < 10000000000ull)
        snprintf(out, 64, "%.0f ms", (double)ns / 1e6);
    else
        snprintf(out, 64, "%.1f s", (double)ns / 1e9);
    return out;
}

const char *fmt_kb(long kb) {
    char *out = slot();
    if (kb < 10240)
        snprintf(out, 64, "%ld KiB", kb);
    else if (kb < 10 * 1024 * 1024)
        snprintf(out, 64, "%.1f MiB", (double)kb / 1024.0);
    else
        snprintf(out, 64, "%.2f GiB", (double)kb / 1024.0 / 1024.0);
    return out;
}
