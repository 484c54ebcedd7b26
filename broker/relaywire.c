/* relaywire.c -- the relay's bytes: "R <owner>\n" + frames, "S <owner>\n" sync markers, and resume offsets; pure encode and decode. */
#include "broker/relaywire.h"

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
    append(out, "\n", 1);
}

void relaywire_records(proto_buf *out, const char *owner, const char *frames, size_t len) {
    head(out, RELAYWIRE_RECORDS, owner);
    append(out, frames, len);
}

void relaywire_sync(proto_buf *out, const char *owner) {
    head(out, RELAYWIRE_SYNC, owner);
}

relaywire_kind relaywire_parse(const char *data, size_t len, const char **owner, size_t *owner_len, size_t *body) {
    if (len < 3 || (data[0] != RELAYWIRE_RECORDS && data[0] != RELAYWIRE_SYNC) || data[1] != ' ') return RELAYWIRE_BAD;
    const char *nl = memchr(data + 2, '\n', len - 2);
    if (!nl || nl == data + 2) return RELAYWIRE_BAD;
    *owner = data + 2;
    *owner_len = (size_t)(nl - data - 2);
    *body = (size_t)(nl + 1 - data);
    return (relaywire_kind)data[0];
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
