/* relaywire.c -- the relay's bytes: "R" batches with their positions, "S" sync and "G" hand-over markers, resume offsets; pure encode and decode. */
#include "broker/relaywire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/log.h"

static void append(proto_buf *out, const void *p, size_t n) {
    if (proto_buf_append(out, p, n) < 0) {
        log_error("out of memory building relay bytes");
        abort();
    }
}

static void head(proto_buf *out, char kind, const char *owner) {
    char k[2] = {kind, ' '};
    proto_buf_reset(out);
    append(out, k, 2);
    append(out, owner, strlen(owner));
}

static void head_end(proto_buf *out) {
    append(out, "\n", 1);
}

void relaywire_records(proto_buf *out, const char *owner, const int64_t *from, const int64_t *pairs, size_t npairs,
                       const char *frames, size_t len) {
    head(out, RELAYWIRE_RECORDS, owner);
    for (size_t i = 0; i < npairs; i++) {
        int64_t p = pairs[2 * i], f = from[p] < 0 ? -1 : from[p];
        char pos[72];
        int n = snprintf(pos, sizeof(pos), " %lld:%lld:%lld", (long long)p, (long long)f, (long long)pairs[2 * i + 1]);
        append(out, pos, (size_t)n);
    }
    head_end(out);
    append(out, frames, len);
}

static void positions(proto_buf *out, char kind, const char *owner, const int64_t *pairs, size_t npairs) {
    head(out, kind, owner);
    for (size_t i = 0; i < npairs; i++) {
        char pos[48];
        int n = snprintf(pos, sizeof(pos), " %lld:%lld", (long long)pairs[2 * i], (long long)pairs[2 * i + 1]);
        append(out, pos, (size_t)n);
    }
    head_end(out);
}

void relaywire_sync(proto_buf *out, const char *owner, const int64_t *pairs, size_t npairs) {
    positions(out, RELAYWIRE_SYNC, owner, pairs, npairs);
}

void relaywire_check(proto_buf *out, const char *owner, const int64_t *pairs, size_t npairs) {
    positions(out, RELAYWIRE_CHECK, owner, pairs, npairs);
}

void relaywire_gone(proto_buf *out, const char *owner) {
    head(out, RELAYWIRE_GONE, owner);
    head_end(out);
}

relaywire_kind relaywire_parse(const char *data, size_t len, const char **owner, size_t *owner_len, size_t *body) {
    if (len < 3 ||
        (data[0] != RELAYWIRE_RECORDS && data[0] != RELAYWIRE_SYNC && data[0] != RELAYWIRE_GONE &&
         data[0] != RELAYWIRE_CHECK) ||
        data[1] != ' ')
        return RELAYWIRE_BAD;
    const char *nl = memchr(data + 2, '\n', len - 2);
    if (!nl) return RELAYWIRE_BAD;
    const char *sp = memchr(data + 2, ' ', (size_t)(nl - data - 2));
    const char *end = sp ? sp : nl;
    if (end == data + 2) return RELAYWIRE_BAD;
    *owner = data + 2;
    *owner_len = (size_t)(end - data - 2);
    *body = (size_t)(nl + 1 - data);
    return (relaywire_kind)data[0];
}

/* A decimal integer at *p (before end), an optional leading '-'; advances
 * *p. Returns 0, or -1 when there is none. */
static int number(const char **p, const char *end, int64_t *v) {
    const char *s = *p;
    int neg = s < end && *s == '-';
    if (neg) s++;
    if (s >= end || *s < '0' || *s > '9') return -1;
    int64_t n = 0;
    for (; s < end && *s >= '0' && *s <= '9'; s++) {
        if (n > (INT64_MAX - 9) / 10) return -1;
        n = n * 10 + (*s - '0');
    }
    *v = neg ? -n : n;
    *p = s;
    return 0;
}

long relaywire_positions(const char *data, size_t body, relaywire_pos *out, size_t max) {
    if (body < 3) return -1;
    const char *end = data + body - 1;   /* the newline */
    const char *p = memchr(data + 2, ' ', (size_t)(end - data - 2));
    long n = 0;
    while (p && p < end) {
        p++;                              /* the space */
        int64_t part, a, b;
        if (number(&p, end, &part) < 0 || part < 0 || part > INT32_MAX || p >= end || *p++ != ':' ||
            number(&p, end, &a) < 0)
            return -1;
        b = a;
        if (p < end && *p == ':' && (p++, number(&p, end, &b) < 0)) return -1;
        if (p < end && *p != ' ') return -1;
        if ((size_t)n < max) out[n++] = (relaywire_pos){(int32_t)part, a, b};
    }
    return n;
}

size_t relaywire_resume_offsets(const int64_t *next_off, const tpart *parts, int32_t first, int32_t last,
                                int reads_kafka, int64_t *out, size_t max_pairs) {
    size_t np = 0;
    for (int32_t p = first; p <= last && np < max_pairs; p++) {
        int64_t at = next_off[p];
        if (reads_kafka && parts[p].state == PART_ASSIGNED && parts[p].next > at) at = parts[p].next;
        if (at < 0) continue;
        out[2 * np] = p;
        out[2 * np + 1] = at;
        np++;
    }
    return np;
}
