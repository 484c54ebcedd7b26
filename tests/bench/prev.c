/* prev.c -- the published run's figures (RESULTS.jsonl, RESULTS-apache.jsonl) for the same scenario and parameters, printed beside this run's. */
#include "tests/bench/bench.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *prev_text;           /* the whole file; lines end in '\0' once loaded */
static char **prev_lines;
static size_t prev_nlines;
static char prev_path[512];

int prev_open(const char *path) {
    if (!path) return 0;
    FILE *f = fopen(path, "r");
    if (!f) return 0;             /* no published run: nothing to compare with */
    snprintf(prev_path, sizeof(prev_path), "%s", path);
    size_t cap = 1 << 16, len = 0;
    prev_text = malloc(cap);
    size_t n;
    while (prev_text && (n = fread(prev_text + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (len + 1 == cap) {
            char *g = realloc(prev_text, cap * 2);
            if (!g) break;
            prev_text = g;
            cap *= 2;
        }
    }
    fclose(f);
    if (!prev_text) return -1;
    prev_text[len] = '\0';
    size_t lines = 0;
    for (size_t i = 0; i < len; i++) lines += prev_text[i] == '\n';
    prev_lines = calloc(lines + 1, sizeof(*prev_lines));
    if (!prev_lines) return -1;
    for (char *p = prev_text, *nl; *p; p = nl + 1) {
        nl = strchr(p, '\n');
        if (!nl) nl = p + strlen(p) - 1;
        else *nl = '\0';
        if (*p == '{') prev_lines[prev_nlines++] = p;
    }
    return 0;
}

void prev_close(void) {
    free(prev_text);
    free(prev_lines);
    prev_text = NULL;
    prev_lines = NULL;
    prev_nlines = 0;
}

/* The raw JSON value of key in line (up to the next ',' or '}' outside a
 * string), into out. Returns 0, or -1 when absent. */
static int raw_value(const char *line, const char *key, char *out, size_t size) {
    char pat[128];
    snprintf(pat, sizeof(pat), "\"%s\":", key);
    const char *p = strstr(line, pat);
    if (!p) return -1;
    p += strlen(pat);
    size_t n = 0;
    int in_str = 0;
    for (; *p && n + 1 < size; p++) {
        if (*p == '"' && (n == 0 || p[-1] != '\\')) in_str = !in_str;
        else if (!in_str && (*p == ',' || *p == '}')) break;
        else out[n++] = *p;
    }
    out[n] = '\0';
    return 0;
}

double prev_num(const char *line, const char *key) {
    char v[64];
    if (!line || raw_value(line, key, v, sizeof(v)) < 0) return NAN;
    char *end;
    double d = strtod(v, &end);
    return end == v ? NAN : d;
}

const char *prev_str(const char *line, const char *key) {
    static char bufs[4][256];
    static int next;
    char *out = bufs[next++ % 4];
    if (!line || raw_value(line, key, out, sizeof(bufs[0])) < 0) return "";
    return out;
}

/* The last line of scenario and measurement on this run's Kafka, full size,
 * not marked unhealthy (lines from before the health checks count), with str_key equal to str_val (str_key NULL: any) and the numeric pairs of ap. */
static const char *find(const char *scenario, const char *measurement, const char *str_key, const char *str_val,
                        va_list ap0) {
    const char *kafka = g_opts.kafka_apache ? "apache" : "mock";
    for (size_t i = prev_nlines; i-- > 0;) {
        const char *l = prev_lines[i];
        if (strcmp(prev_str(l, "scenario"), scenario) != 0 || strcmp(prev_str(l, "measurement"), measurement) != 0 ||
            strcmp(prev_str(l, "kafka"), kafka) != 0 || prev_num(l, "tiny") != 0 || prev_num(l, "healthy") == 0 ||
            (str_key && strcmp(prev_str(l, str_key), str_val) != 0))
            continue;
        va_list ap;
        va_copy(ap, ap0);
        int ok = 1;
        for (const char *k; ok && (k = va_arg(ap, const char *));) {
            double want = va_arg(ap, double), have = prev_num(l, k);
            if (isnan(have) || fabs(have - want) > 1e-9 * (fabs(want) + 1)) ok = 0;
        }
        va_end(ap);
        if (ok) return l;
    }
    return NULL;
}

const char *prev_find(const char *scenario, const char *measurement, ...) {
    va_list ap;
    va_start(ap, measurement);
    const char *l = find(scenario, measurement, NULL, NULL, ap);
    va_end(ap);
    return l;
}

/* find() wants its numeric pairs as a va_list. */
static const char *find_v(const char *scenario, const char *measurement, const char *str_key, const char *str_val,
                          ...) {
    va_list ap;
    va_start(ap, str_val);
    const char *l = find(scenario, measurement, str_key, str_val, ap);
    va_end(ap);
    return l;
}

const char *prev_find_str(const char *scenario, const char *measurement, const char *str_key, const char *str_val,
                          const char *num_key, double num_val) {
    return find_v(scenario, measurement, str_key, str_val, num_key, num_val, (const char *)NULL);
}

void prev_note(tab *t, const char *line) {
    if (!line) {
        tab_note(t, "previous: no published healthy figures for this scenario and size%s%s.", prev_path[0] ? " in " : "",
                 prev_path);
        return;
    }
    tab_note(t, "previous = %s, run %s (%s CPUs, load average %s then; this run: %ld CPUs).", prev_path,
             prev_str(line, "run"), prev_str(line, "nproc"), prev_str(line, "loadavg_1m"),
             sysconf(_SC_NPROCESSORS_ONLN));
}
