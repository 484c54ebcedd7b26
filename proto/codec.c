/* codec.c -- the subway frame codec: length-prefixed msgpack frames to and from proto_frame. */

#include "proto.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

/* Caps on decoded arrays. Frames are already bounded by max_frame; these keep
 * one frame from making the node fan out work over absurd lists. */
#define PROTO_MAX_PARTITIONS 100000
#define PROTO_MAX_HEADERS 10000

/* Same as msgpack-c's MSGPACK_EMBED_STACK_SIZE. msgpack-c reports deeper
 * input as out of memory; checking it ourselves reports it as malformed. */
#define SCAN_MAX_DEPTH 32

/* First zone chunk, kept across decodes by msgpack_zone_clear(). Large
 * enough for the objects of the frames clients send (24 bytes each: a
 * SUBSCRIBE is 4), small enough that a node can keep one decoder per
 * connection for tens of thousands of connections (the bench measured 4096
 * here as a third of a connection's memory). Bigger frames take another
 * chunk for the duration of their decode. */
#define DECODER_ZONE_CHUNK 1024

/* A zero-length str/bin decodes with a NULL pointer in msgpack-c; point it
 * here instead, because NULL means nil in a proto_bytes. */
static const char empty_bytes[1] = "";

/* ================================================================ frame table */

typedef enum field_kind {
    FIELD_UINT,         /* uint64_t member; any unsigned width */
    FIELD_UINT32,       /* uint32_t member; unsigned, at most UINT32_MAX */
    FIELD_INT,          /* int64_t member; any signed or unsigned width */
    FIELD_TEXT,         /* proto_bytes member, never nil; written as str */
    FIELD_BYTES,        /* proto_bytes member, nil allowed; written as bin */
    FIELD_PARTITIONS,   /* partitions + partition_cnt: array of uint32 */
    FIELD_HEADERS,      /* headers + header_cnt: array of [name, value] */
    FIELD_POSITIONS,    /* positions + position_cnt: array of [partition, offset] */
    FIELD_START,        /* start_mode, start_arg, positions: [mode, arg] */
} field_kind;

typedef struct field_spec {
    const char *name;   /* as in proto.h and the error texts */
    field_kind kind;
    size_t off;         /* offset of the member in proto_frame */
} field_spec;

#define TYPE_MAX_FIELDS 9

typedef struct type_spec {
    const char *name;            /* enum name without PROTO_ */
    unsigned nfields;            /* fields always present */
    unsigned nopt;               /* optional trailing fields (MESSAGE headers, SUBSCRIBE start) */
    field_spec fields[TYPE_MAX_FIELDS];
} type_spec;

#define F(name, kind, member) { name, kind, offsetof(proto_frame, member) }

/* One row per frame type: the encoder and the decoder both walk it, so the
 * two cannot disagree about field order. */
static const type_spec type_specs[PROTO_TYPE_MAX + 1] = {
    [PROTO_HELLO] = { "HELLO", 2, 1, {
        F("version", FIELD_UINT, version),
        F("client_name", FIELD_TEXT, name),
        F("token", FIELD_TEXT, auth) } },
    [PROTO_WELCOME] = { "WELCOME", 4, 5, {
        F("version", FIELD_UINT, version),
        F("node_id", FIELD_TEXT, name),
        F("heartbeat_ms", FIELD_UINT, heartbeat_ms),
        F("max_frame", FIELD_UINT, max_frame),
        F("heartbeat_timeout_ms", FIELD_UINT, heartbeat_timeout_ms),
        F("max_key", FIELD_UINT, max_key),
        F("max_subs", FIELD_UINT, max_subs),
        F("client", FIELD_TEXT, client),
        F("expires_ms", FIELD_UINT, expires_ms) } },
    [PROTO_SUBSCRIBE] = { "SUBSCRIBE", 3, 1, {
        F("req_id", FIELD_UINT, req_id),
        F("topic", FIELD_TEXT, topic),
        F("key", FIELD_BYTES, key),
        F("start", FIELD_START, start_mode) } },
    [PROTO_SUBSCRIBED] = { "SUBSCRIBED", 3, 0, {
        F("req_id", FIELD_UINT, req_id),
        F("feed", FIELD_UINT, feed),
        F("partitions", FIELD_PARTITIONS, partitions) } },
    [PROTO_UNSUBSCRIBE] = { "UNSUBSCRIBE", 2, 0, {
        F("req_id", FIELD_UINT, req_id),
        F("feed", FIELD_UINT, feed) } },
    [PROTO_UNSUBSCRIBED] = { "UNSUBSCRIBED", 2, 0, {
        F("req_id", FIELD_UINT, req_id),
        F("feed", FIELD_UINT, feed) } },
    [PROTO_MESSAGE] = { "MESSAGE", 6, 1, {
        F("feed", FIELD_UINT, feed),
        F("partition", FIELD_UINT32, partition),
        F("offset", FIELD_UINT, offset),
        F("timestamp_ms", FIELD_INT, timestamp_ms),
        F("key", FIELD_BYTES, key),
        F("value", FIELD_BYTES, value),
        F("headers", FIELD_HEADERS, headers) } },
    [PROTO_PUBLISH] = { "PUBLISH", 4, 0, {
        F("req_id", FIELD_UINT, req_id),
        F("topic", FIELD_TEXT, topic),
        F("key", FIELD_BYTES, key),
        F("value", FIELD_BYTES, value) } },
    [PROTO_PUBACK] = { "PUBACK", 3, 0, {
        F("req_id", FIELD_UINT, req_id),
        F("partition", FIELD_UINT32, partition),
        F("offset", FIELD_UINT, offset) } },
    [PROTO_PING] = { "PING", 1, 0, {
        F("token", FIELD_UINT, token) } },
    [PROTO_PONG] = { "PONG", 1, 0, {
        F("token", FIELD_UINT, token) } },
    [PROTO_ERROR] = { "ERROR", 3, 0, {
        F("req_id", FIELD_UINT, req_id),
        F("code", FIELD_UINT, code),
        F("text", FIELD_TEXT, text) } },
    [PROTO_DROPPED] = { "DROPPED", 2, 0, {
        F("feed", FIELD_UINT, feed),
        F("count", FIELD_UINT, count) } },
    [PROTO_GOAWAY] = { "GOAWAY", 1, 0, {
        F("text", FIELD_TEXT, text) } },
    [PROTO_LIVE] = { "LIVE", 2, 0, {
        F("feed", FIELD_UINT, feed),
        F("positions", FIELD_POSITIONS, positions) } },
    [PROTO_AUTH] = { "AUTH", 2, 0, {
        F("req_id", FIELD_UINT, req_id),
        F("token", FIELD_TEXT, auth) } },
    [PROTO_AUTHED] = { "AUTHED", 2, 0, {
        F("req_id", FIELD_UINT, req_id),
        F("expires_ms", FIELD_UINT, expires_ms) } },
};

#undef F

static const char *const err_names[PROTO_ERR_MAX + 1] = {
    [PROTO_E_NONE] = "NONE",
    [PROTO_E_VERSION] = "VERSION",
    [PROTO_E_FRAME_TOO_LARGE] = "FRAME_TOO_LARGE",
    [PROTO_E_MALFORMED] = "MALFORMED",
    [PROTO_E_BAD_FRAME] = "BAD_FRAME",
    [PROTO_E_UNKNOWN_TYPE] = "UNKNOWN_TYPE",
    [PROTO_E_HELLO_REQUIRED] = "HELLO_REQUIRED",
    [PROTO_E_TOO_MANY_SUBS] = "TOO_MANY_SUBS",
    [PROTO_E_TOO_MANY_CONNS] = "TOO_MANY_CONNS",
    [PROTO_E_INVALID_ARG] = "INVALID_ARG",
    [PROTO_E_UNKNOWN_TOPIC] = "UNKNOWN_TOPIC",
    [PROTO_E_ALREADY_SUBSCRIBED] = "ALREADY_SUBSCRIBED",
    [PROTO_E_NOT_SUBSCRIBED] = "NOT_SUBSCRIBED",
    [PROTO_E_KAFKA] = "KAFKA",
    [PROTO_E_HEARTBEAT_TIMEOUT] = "HEARTBEAT_TIMEOUT",
    [PROTO_E_SLOW_CONSUMER] = "SLOW_CONSUMER",
    [PROTO_E_SHUTTING_DOWN] = "SHUTTING_DOWN",
    [PROTO_E_UNAVAILABLE] = "UNAVAILABLE",
    [PROTO_E_INTERNAL] = "INTERNAL",
    [PROTO_E_UNAUTHORIZED] = "UNAUTHORIZED",
    [PROTO_E_FORBIDDEN] = "FORBIDDEN",
};

/* Member accessors for a field_spec offset. */
#define FIELD_PTR(f, spec, type) ((type *)(void *)((char *)(f) + (spec)->off))
#define FIELD_CPTR(f, spec, type) \
    ((const type *)(const void *)((const char *)(f) + (spec)->off))

/* ==================================================================== names */

const char *proto_type_name(uint64_t type) {
    if (type < 1 || type > PROTO_TYPE_MAX) return "UNKNOWN";
    return type_specs[type].name;
}

const char *proto_err_name(uint64_t code) {
    if (code > PROTO_ERR_MAX) return "UNKNOWN";
    return err_names[code];
}

/* ================================================================= buffers */

void proto_buf_init(proto_buf *b) {
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void proto_buf_free(proto_buf *b) {
    if (b == NULL) return;
    free(b->data);
    proto_buf_init(b);
}

void proto_buf_reset(proto_buf *b) {
    b->len = 0;
}

/* Makes room for n more bytes. Returns 0, or -1 with b unchanged. */
static int buf_reserve(proto_buf *b, size_t n) {
    if (b->cap - b->len >= n) return 0;
    if (n > SIZE_MAX - b->len) return -1;
    size_t need = b->len + n;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) {
        if (cap > SIZE_MAX / 2) {
            cap = need;
            break;
        }
        cap *= 2;
    }
    char *data = realloc(b->data, cap);
    if (data == NULL) return -1;
    b->data = data;
    b->cap = cap;
    return 0;
}

int proto_buf_append(proto_buf *b, const void *data, size_t len) {
    if (len == 0) return 0;
    if (buf_reserve(b, len) < 0) return -1;
    memcpy(b->data + b->len, data, len);
    b->len += len;
    return 0;
}

/* msgpack_packer write callback: appends to the proto_buf in data. */
static int buf_write(void *data, const char *buf, size_t len) {
    proto_buf *b = data;
    if (len == 0) return 0;
    if (buf_reserve(b, len) < 0) return -1;
    memcpy(b->data + b->len, buf, len);
    b->len += len;
    return 0;
}

/* ================================================================ encoding */

/* Text is never nil on the wire: a NULL pointer is written as "". */
static int pack_text(msgpack_packer *pk, proto_bytes s) {
    size_t len = s.ptr ? s.len : 0;
    if (len > UINT32_MAX) return -1;
    if (msgpack_pack_str(pk, len) < 0) return -1;
    return len ? msgpack_pack_str_body(pk, s.ptr, len) : 0;
}

static int pack_bytes(msgpack_packer *pk, proto_bytes s) {
    if (s.ptr == NULL) return msgpack_pack_nil(pk);
    if (s.len > UINT32_MAX) return -1;
    if (msgpack_pack_bin(pk, s.len) < 0) return -1;
    return s.len ? msgpack_pack_bin_body(pk, s.ptr, s.len) : 0;
}

static int pack_positions(msgpack_packer *pk, const proto_frame *f) {
    if (f->position_cnt > PROTO_MAX_PARTITIONS) return -1;
    if (f->position_cnt > 0 && f->positions == NULL) return -1;
    if (msgpack_pack_array(pk, f->position_cnt) < 0) return -1;
    for (size_t i = 0; i < f->position_cnt; i++) {
        if (f->positions[i].offset > INT64_MAX) return -1;
        if (msgpack_pack_array(pk, 2) < 0 || msgpack_pack_uint32(pk, f->positions[i].partition) < 0 ||
            msgpack_pack_uint64(pk, f->positions[i].offset) < 0)
            return -1;
    }
    return 0;
}

static int pack_field(msgpack_packer *pk, const field_spec *fs, const proto_frame *f) {
    switch (fs->kind) {
    case FIELD_UINT:
        return msgpack_pack_uint64(pk, *FIELD_CPTR(f, fs, uint64_t));
    case FIELD_UINT32:
        return msgpack_pack_uint32(pk, *FIELD_CPTR(f, fs, uint32_t));
    case FIELD_INT:
        return msgpack_pack_int64(pk, *FIELD_CPTR(f, fs, int64_t));
    case FIELD_TEXT:
        return pack_text(pk, *FIELD_CPTR(f, fs, proto_bytes));
    case FIELD_BYTES:
        return pack_bytes(pk, *FIELD_CPTR(f, fs, proto_bytes));
    case FIELD_PARTITIONS:
        /* Refuse what a decoder would refuse rather than send it. */
        if (f->partition_cnt > PROTO_MAX_PARTITIONS) return -1;
        if (f->partition_cnt > 0 && f->partitions == NULL) return -1;
        if (msgpack_pack_array(pk, f->partition_cnt) < 0) return -1;
        for (size_t i = 0; i < f->partition_cnt; i++)
            if (msgpack_pack_uint32(pk, f->partitions[i]) < 0) return -1;
        return 0;
    case FIELD_HEADERS:
        if (f->header_cnt > PROTO_MAX_HEADERS || f->headers == NULL) return -1;
        if (msgpack_pack_array(pk, f->header_cnt) < 0) return -1;
        for (size_t i = 0; i < f->header_cnt; i++) {
            if (msgpack_pack_array(pk, 2) < 0) return -1;
            if (pack_text(pk, f->headers[i].name) < 0) return -1;
            if (pack_bytes(pk, f->headers[i].value) < 0) return -1;
        }
        return 0;
    case FIELD_POSITIONS:
        return pack_positions(pk, f);
    case FIELD_START:
        if (f->start_mode < 1 || f->start_mode > PROTO_START_MAX) return -1;
        if (msgpack_pack_array(pk, 2) < 0 || msgpack_pack_uint64(pk, f->start_mode) < 0) return -1;
        switch ((proto_start_mode)f->start_mode) {
        case PROTO_START_POSITIONS:
            return pack_positions(pk, f);
        case PROTO_START_TIMESTAMP:
            return msgpack_pack_int64(pk, f->start_arg);
        case PROTO_START_BEGINNING:
            return msgpack_pack_uint64(pk, 0);
        default:
            if (f->start_arg < 0) return -1;
            return msgpack_pack_uint64(pk, (uint64_t)f->start_arg);
        }
    }
    return -1;
}

/* Whether a frame carries its type's optional trailing fields: MESSAGE
 * headers when there are any, SUBSCRIBE start when it has a mode, HELLO
 * a token when it has one, WELCOME its limits from version 3 on. */
static int has_optional(const proto_frame *f) {
    switch (f->type) {
    case PROTO_MESSAGE: return f->header_cnt > 0;
    case PROTO_SUBSCRIBE: return f->start_mode != PROTO_START_NONE;
    case PROTO_HELLO: return f->auth.ptr != NULL;
    case PROTO_WELCOME: return f->version >= 3;
    default: return 0;
    }
}

/* Appends header + body. The length is patched in after packing because the
 * body size is only known then; on failure b->len is rolled back. */
int proto_encode(proto_buf *b, const proto_frame *f) {
    if (b == NULL || f == NULL) return -1;
    if (f->type < 1 || f->type > PROTO_TYPE_MAX) return -1;

    const type_spec *ts = &type_specs[f->type];
    unsigned n = ts->nfields;
    if (ts->nopt > 0 && has_optional(f)) n += ts->nopt;

    size_t start = b->len;
    if (buf_reserve(b, PROTO_HEADER_SIZE) < 0) return -1;
    memset(b->data + start, 0, PROTO_HEADER_SIZE);
    b->len += PROTO_HEADER_SIZE;

    msgpack_packer pk;
    msgpack_packer_init(&pk, b, buf_write);
    if (msgpack_pack_array(&pk, 1 + n) < 0) goto fail;
    if (msgpack_pack_uint64(&pk, (uint64_t)f->type) < 0) goto fail;
    for (unsigned i = 0; i < n; i++)
        if (pack_field(&pk, &ts->fields[i], f) < 0) goto fail;

    size_t body = b->len - start - PROTO_HEADER_SIZE;
    if (body > UINT32_MAX) goto fail;
    unsigned char *h = (unsigned char *)b->data + start;
    h[0] = (unsigned char)(body >> 24);
    h[1] = (unsigned char)(body >> 16);
    h[2] = (unsigned char)(body >> 8);
    h[3] = (unsigned char)body;
    return 0;

fail:
    b->len = start;
    return -1;
}

/* ================================================================ decoding */

struct proto_decoder {
    size_t max_frame;           /* largest accepted body, bytes */
    msgpack_zone zone;          /* objects, partitions, headers of the last frame */
    proto_err err;              /* code of the last PROTO_BAD_INPUT */
    char errstr[160];           /* text of the last PROTO_BAD_INPUT */
};

proto_decoder *proto_decoder_new(size_t max_frame) {
    proto_decoder *d = calloc(1, sizeof(*d));
    if (d == NULL) return NULL;
    if (!msgpack_zone_init(&d->zone, DECODER_ZONE_CHUNK)) {
        free(d);
        return NULL;
    }
    proto_decoder_set_max_frame(d, max_frame);
    d->err = PROTO_E_NONE;
    return d;
}

void proto_decoder_set_max_frame(proto_decoder *d, size_t max_frame) {
    d->max_frame = max_frame < PROTO_MIN_MAX_FRAME ? PROTO_MIN_MAX_FRAME : max_frame;
}

void proto_decoder_free(proto_decoder *d) {
    if (d == NULL) return;
    msgpack_zone_destroy(&d->zone);
    free(d);
}

proto_err proto_decoder_err(const proto_decoder *d) {
    return d->err;
}

const char *proto_decoder_errstr(const proto_decoder *d) {
    return d->errstr;
}

uint32_t proto_peek_length(const char *hdr) {
    const unsigned char *p = (const unsigned char *)hdr;
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* Records an error in d and returns PROTO_BAD_INPUT, so callers can `return fail(...)`. */
static proto_status fail(proto_decoder *d, proto_err code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static proto_status fail(proto_decoder *d, proto_err code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->errstr, sizeof(d->errstr), fmt, ap);
    va_end(ap);
    d->err = code;
    return PROTO_BAD_INPUT;
}

static uint64_t load_be(const unsigned char *p, unsigned width) {
    uint64_t v = 0;
    for (unsigned i = 0; i < width; i++) v = v << 8 | p[i];
    return v;
}

/*
 * Checks that p[0..len) is exactly one complete msgpack value, nested at
 * most SCAN_MAX_DEPTH deep. This runs before msgpack_unpack() because
 * msgpack-c allocates room for a container's announced element count before
 * it looks for the elements: a 5-byte body announcing 2^32-1 elements would
 * otherwise make it ask for ~100 GB. Once this pass succeeds, every
 * announced element exists, so the zone holds at most 24 bytes per body byte.
 */
static proto_status scan_msgpack(proto_decoder *d, const unsigned char *p, size_t len) {
    enum { SCALAR, BLOB, ARRAY, MAP } kind;
    uint64_t left[SCAN_MAX_DEPTH];  /* elements still due in each open container */
    unsigned depth = 0;
    size_t pos = 0;

    for (;;) {
        if (pos >= len) goto truncated;
        unsigned c = p[pos++];
        unsigned width = 0;         /* bytes of length/count that follow c */
        uint64_t n = 0;             /* payload bytes (BLOB/SCALAR) or elements */
        uint64_t extra = 0;         /* ext type byte after the length */

        if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3) {
            kind = SCALAR;
        } else if (c <= 0x8f) {
            kind = MAP, n = c & 0x0f;
        } else if (c <= 0x9f) {
            kind = ARRAY, n = c & 0x0f;
        } else if (c <= 0xbf) {
            kind = BLOB, n = c & 0x1f;
        } else {
            switch (c) {
            case 0xc4: case 0xd9: kind = BLOB, width = 1; break;
            case 0xc5: case 0xda: kind = BLOB, width = 2; break;
            case 0xc6: case 0xdb: kind = BLOB, width = 4; break;
            case 0xc7: kind = BLOB, width = 1, extra = 1; break;
            case 0xc8: kind = BLOB, width = 2, extra = 1; break;
            case 0xc9: kind = BLOB, width = 4, extra = 1; break;
            case 0xcc: case 0xd0: kind = SCALAR, n = 1; break;
            case 0xcd: case 0xd1: kind = SCALAR, n = 2; break;
            case 0xca: case 0xce: case 0xd2: kind = SCALAR, n = 4; break;
            case 0xcb: case 0xcf: case 0xd3: kind = SCALAR, n = 8; break;
            case 0xd4: kind = SCALAR, n = 2; break;   /* fixext: type + data */
            case 0xd5: kind = SCALAR, n = 3; break;
            case 0xd6: kind = SCALAR, n = 5; break;
            case 0xd7: kind = SCALAR, n = 9; break;
            case 0xd8: kind = SCALAR, n = 17; break;
            case 0xdc: kind = ARRAY, width = 2; break;
            case 0xdd: kind = ARRAY, width = 4; break;
            case 0xde: kind = MAP, width = 2; break;
            case 0xdf: kind = MAP, width = 4; break;
            default:   /* 0xc1, never used by msgpack */
                return fail(d, PROTO_E_MALFORMED, "frame body is not valid msgpack");
            }
        }
        if (width > 0) {
            if (len - pos < width) goto truncated;
            n = load_be(p + pos, width);
            pos += width;
        }

        if (kind == SCALAR || kind == BLOB) {
            if ((uint64_t)(len - pos) < n + extra) goto truncated;
            pos += (size_t)(n + extra);
        } else {
            if (kind == MAP) n *= 2;
            if (depth >= SCAN_MAX_DEPTH)
                return fail(d, PROTO_E_MALFORMED, "frame body nests deeper than %d levels",
                            SCAN_MAX_DEPTH);
            /* Every element takes at least one byte. */
            if (n > (uint64_t)(len - pos)) goto truncated;
            if (n > 0) {
                left[depth++] = n;
                continue;
            }
        }

        /* A value ended: it completes its container's slot, maybe the container too. */
        while (depth > 0 && --left[depth - 1] == 0) depth--;
        if (depth == 0) break;
    }

    if (pos < len)
        return fail(d, PROTO_E_MALFORMED, "frame body has %zu byte%s after its msgpack value",
                    len - pos, len - pos == 1 ? "" : "s");
    return PROTO_FRAME;

truncated:
    return fail(d, PROTO_E_MALFORMED, "frame body ends inside a msgpack value");
}

/* Byte fields accept str and bin alike. Returns false for anything else. */
static bool get_bytes(const msgpack_object *o, bool nil_ok, proto_bytes *out) {
    if (o->type == MSGPACK_OBJECT_NIL && nil_ok) {
        out->ptr = NULL;
        out->len = 0;
        return true;
    }
    if (o->type == MSGPACK_OBJECT_STR || o->type == MSGPACK_OBJECT_BIN) {
        /* str and bin share one layout in msgpack_object. */
        out->len = o->via.str.size;
        out->ptr = out->len ? o->via.str.ptr : empty_bytes;
        return true;
    }
    return false;
}

static proto_status decode_partitions(proto_decoder *d, const type_spec *ts, unsigned fno,
                                      const msgpack_object *o, proto_frame *f) {
    if (o->type != MSGPACK_OBJECT_ARRAY)
        return fail(d, PROTO_E_BAD_FRAME, "%s: field %u (partitions) must be an array",
                    ts->name, fno);
    uint32_t n = o->via.array.size;
    if (n > PROTO_MAX_PARTITIONS)
        return fail(d, PROTO_E_BAD_FRAME, "%s: %" PRIu32 " partitions exceed the %d limit",
                    ts->name, n, PROTO_MAX_PARTITIONS);
    if (n == 0) return PROTO_FRAME;
    uint32_t *parts = msgpack_zone_malloc(&d->zone, n * sizeof(*parts));
    if (parts == NULL) return fail(d, PROTO_E_INTERNAL, "out of memory decoding a frame");
    for (uint32_t i = 0; i < n; i++) {
        const msgpack_object *e = &o->via.array.ptr[i];
        if (e->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
            return fail(d, PROTO_E_BAD_FRAME, "%s: partitions[%" PRIu32 "] must be an "
                        "unsigned integer", ts->name, i);
        if (e->via.u64 > UINT32_MAX)
            return fail(d, PROTO_E_BAD_FRAME, "%s: partitions[%" PRIu32 "] must be at most "
                        "4294967295", ts->name, i);
        parts[i] = (uint32_t)e->via.u64;
    }
    f->partitions = parts;
    f->partition_cnt = n;
    return PROTO_FRAME;
}

static proto_status decode_headers(proto_decoder *d, const type_spec *ts, unsigned fno,
                                   const msgpack_object *o, proto_frame *f) {
    if (o->type != MSGPACK_OBJECT_ARRAY)
        return fail(d, PROTO_E_BAD_FRAME, "%s: field %u (headers) must be an array",
                    ts->name, fno);
    uint32_t n = o->via.array.size;
    if (n > PROTO_MAX_HEADERS)
        return fail(d, PROTO_E_BAD_FRAME, "%s: %" PRIu32 " headers exceed the %d limit",
                    ts->name, n, PROTO_MAX_HEADERS);
    if (n == 0) return PROTO_FRAME;
    proto_header *hs = msgpack_zone_malloc(&d->zone, n * sizeof(*hs));
    if (hs == NULL) return fail(d, PROTO_E_INTERNAL, "out of memory decoding a frame");
    for (uint32_t i = 0; i < n; i++) {
        const msgpack_object *e = &o->via.array.ptr[i];
        if (e->type != MSGPACK_OBJECT_ARRAY || e->via.array.size != 2)
            return fail(d, PROTO_E_BAD_FRAME, "%s: headers[%" PRIu32 "] must be a 2-element "
                        "array", ts->name, i);
        if (!get_bytes(&e->via.array.ptr[0], false, &hs[i].name))
            return fail(d, PROTO_E_BAD_FRAME, "%s: headers[%" PRIu32 "] name must be str or "
                        "bin", ts->name, i);
        if (!get_bytes(&e->via.array.ptr[1], true, &hs[i].value))
            return fail(d, PROTO_E_BAD_FRAME, "%s: headers[%" PRIu32 "] value must be bin, "
                        "str or nil", ts->name, i);
    }
    f->headers = hs;
    f->header_cnt = n;
    return PROTO_FRAME;
}

static proto_status decode_positions(proto_decoder *d, const type_spec *ts, const char *what,
                                     const msgpack_object *o, proto_frame *f) {
    if (o->type != MSGPACK_OBJECT_ARRAY)
        return fail(d, PROTO_E_BAD_FRAME, "%s: %s must be an array", ts->name, what);
    uint32_t n = o->via.array.size;
    if (n > PROTO_MAX_PARTITIONS)
        return fail(d, PROTO_E_BAD_FRAME, "%s: %" PRIu32 " positions exceed the %d limit",
                    ts->name, n, PROTO_MAX_PARTITIONS);
    if (n == 0) return PROTO_FRAME;
    proto_position *ps = msgpack_zone_malloc(&d->zone, n * sizeof(*ps));
    if (ps == NULL) return fail(d, PROTO_E_INTERNAL, "out of memory decoding a frame");
    for (uint32_t i = 0; i < n; i++) {
        const msgpack_object *e = &o->via.array.ptr[i];
        if (e->type != MSGPACK_OBJECT_ARRAY || e->via.array.size != 2 ||
            e->via.array.ptr[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
            e->via.array.ptr[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
            e->via.array.ptr[0].via.u64 > UINT32_MAX || e->via.array.ptr[1].via.u64 > INT64_MAX)
            return fail(d, PROTO_E_BAD_FRAME, "%s: positions[%" PRIu32 "] must be [partition, "
                        "offset], a uint32 and an int64 >= 0", ts->name, i);
        ps[i].partition = (uint32_t)e->via.array.ptr[0].via.u64;
        ps[i].offset = e->via.array.ptr[1].via.u64;
    }
    f->positions = ps;
    f->position_cnt = n;
    return PROTO_FRAME;
}

/* SUBSCRIBE's [mode, arg]. */
static proto_status decode_start(proto_decoder *d, const type_spec *ts, unsigned fno,
                                 const msgpack_object *o, proto_frame *f) {
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != 2)
        return fail(d, PROTO_E_BAD_FRAME, "%s: field %u (start) must be a 2-element array",
                    ts->name, fno);
    const msgpack_object *m = &o->via.array.ptr[0], *a = &o->via.array.ptr[1];
    if (m->type != MSGPACK_OBJECT_POSITIVE_INTEGER || m->via.u64 < 1 || m->via.u64 > PROTO_START_MAX)
        return fail(d, PROTO_E_BAD_FRAME, "%s: start mode must be 1..%d", ts->name, PROTO_START_MAX);
    f->start_mode = m->via.u64;
    switch ((proto_start_mode)f->start_mode) {
    case PROTO_START_POSITIONS:
        return decode_positions(d, ts, "start positions", a, f);
    case PROTO_START_TIMESTAMP:
        if (a->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
            f->start_arg = a->via.i64;
            return PROTO_FRAME;
        }
        break;
    case PROTO_START_BEGINNING:
        if (a->type == MSGPACK_OBJECT_POSITIVE_INTEGER && a->via.u64 == 0) return PROTO_FRAME;
        return fail(d, PROTO_E_BAD_FRAME, "%s: start mode 4 (beginning) takes 0", ts->name);
    default:
        break;
    }
    if (a->type != MSGPACK_OBJECT_POSITIVE_INTEGER || a->via.u64 > INT64_MAX)
        return fail(d, PROTO_E_BAD_FRAME, "%s: start mode %" PRIu64 " takes an integer%s",
                    ts->name, f->start_mode, f->start_mode == PROTO_START_TIMESTAMP ? "" : " >= 0");
    f->start_arg = (int64_t)a->via.u64;
    return PROTO_FRAME;
}

/* Decodes field number fno (1-based, after the type) described by fs. */
static proto_status decode_field(proto_decoder *d, const type_spec *ts, unsigned fno,
                                 const field_spec *fs, const msgpack_object *o,
                                 proto_frame *f) {
    switch (fs->kind) {
    case FIELD_UINT:
        if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER) break;
        *FIELD_PTR(f, fs, uint64_t) = o->via.u64;
        return PROTO_FRAME;
    case FIELD_UINT32:
        if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER) break;
        if (o->via.u64 > UINT32_MAX)
            return fail(d, PROTO_E_BAD_FRAME, "%s: field %u (%s) must be at most 4294967295",
                        ts->name, fno, fs->name);
        *FIELD_PTR(f, fs, uint32_t) = (uint32_t)o->via.u64;
        return PROTO_FRAME;
    case FIELD_INT:
        if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
            *FIELD_PTR(f, fs, int64_t) = o->via.i64;
            return PROTO_FRAME;
        }
        if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER) break;
        if (o->via.u64 > INT64_MAX)
            return fail(d, PROTO_E_BAD_FRAME, "%s: field %u (%s) must be at most "
                        "9223372036854775807", ts->name, fno, fs->name);
        *FIELD_PTR(f, fs, int64_t) = (int64_t)o->via.u64;
        return PROTO_FRAME;
    case FIELD_TEXT:
        if (!get_bytes(o, false, FIELD_PTR(f, fs, proto_bytes))) break;
        return PROTO_FRAME;
    case FIELD_BYTES:
        if (!get_bytes(o, true, FIELD_PTR(f, fs, proto_bytes))) break;
        return PROTO_FRAME;
    case FIELD_PARTITIONS:
        return decode_partitions(d, ts, fno, o, f);
    case FIELD_HEADERS:
        return decode_headers(d, ts, fno, o, f);
    case FIELD_POSITIONS:
        return decode_positions(d, ts, "field 2 (positions)", o, f);
    case FIELD_START:
        return decode_start(d, ts, fno, o, f);
    }

    static const char *const want[] = {
        [FIELD_UINT] = "an unsigned integer",
        [FIELD_UINT32] = "an unsigned integer",
        [FIELD_INT] = "an integer",
        [FIELD_TEXT] = "str or bin",
        [FIELD_BYTES] = "bin, str or nil",
    };
    return fail(d, PROTO_E_BAD_FRAME, "%s: field %u (%s) must be %s",
                ts->name, fno, fs->name, want[fs->kind]);
}

/*
 * See proto.h. One refinement the header does not spell out: PROTO_BAD_INPUT
 * with PROTO_E_UNKNOWN_TYPE is the one recoverable error. The frame was
 * well-formed msgpack with a type this codec does not know, so *consumed is
 * set to its full size and the caller may skip it (after refusing it) and
 * decode the next one. Every other PROTO_BAD_INPUT leaves *consumed at 0: the
 * stream is not trusted any further.
 */
proto_status proto_decode(proto_decoder *d, const char *buf, size_t len,
                          size_t *consumed, proto_frame *f) {
    *consumed = 0;
    if (len < PROTO_HEADER_SIZE) return PROTO_NEED_MORE;

    /* Judge the prefix at once: a peer must not make us wait for (and
     * buffer) a body we will refuse anyway. */
    uint32_t body_len = proto_peek_length(buf);
    if (body_len > d->max_frame)
        return fail(d, PROTO_E_FRAME_TOO_LARGE, "frame of %" PRIu32 " bytes exceeds the "
                    "%zu-byte limit", body_len, d->max_frame);
    if (body_len == 0) return fail(d, PROTO_E_MALFORMED, "frame body is empty");
    if (len - PROTO_HEADER_SIZE < body_len) return PROTO_NEED_MORE;

    const char *body = buf + PROTO_HEADER_SIZE;
    if (scan_msgpack(d, (const unsigned char *)body, body_len) != PROTO_FRAME)
        return PROTO_BAD_INPUT;

    /* Drops the previous frame's objects but keeps the first chunk, so
     * ordinary frames decode without touching malloc. */
    msgpack_zone_clear(&d->zone);
    msgpack_object root;
    size_t off = 0;
    msgpack_unpack_return ur = msgpack_unpack(body, body_len, &off, &d->zone, &root);
    if (ur == MSGPACK_UNPACK_NOMEM_ERROR)
        return fail(d, PROTO_E_INTERNAL, "out of memory decoding a frame");
    if (ur != MSGPACK_UNPACK_SUCCESS)   /* the scan should have caught it */
        return fail(d, PROTO_E_MALFORMED, "frame body is not valid msgpack");

    if (root.type != MSGPACK_OBJECT_ARRAY)
        return fail(d, PROTO_E_BAD_FRAME, "frame body is not an array");
    if (root.via.array.size == 0)
        return fail(d, PROTO_E_BAD_FRAME, "frame body is an empty array");
    const msgpack_object *el = root.via.array.ptr;
    if (el[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER || el[0].via.u64 == 0)
        return fail(d, PROTO_E_BAD_FRAME, "frame type must be a positive integer");
    if (el[0].via.u64 > PROTO_TYPE_MAX) {
        *consumed = PROTO_HEADER_SIZE + (size_t)body_len;
        return fail(d, PROTO_E_UNKNOWN_TYPE, "unknown frame type %" PRIu64, el[0].via.u64);
    }

    const type_spec *ts = &type_specs[el[0].via.u64];
    uint32_t n = root.via.array.size - 1;
    if (n < ts->nfields || n > ts->nfields + ts->nopt) {
        if (ts->nopt > 0)
            return fail(d, PROTO_E_BAD_FRAME, "%s: expected %u or %u fields, got %" PRIu32,
                        ts->name, ts->nfields, ts->nfields + ts->nopt, n);
        return fail(d, PROTO_E_BAD_FRAME, "%s: expected %u field%s, got %" PRIu32,
                    ts->name, ts->nfields, ts->nfields == 1 ? "" : "s", n);
    }

    memset(f, 0, sizeof(*f));
    f->type = (proto_type)el[0].via.u64;
    for (unsigned i = 0; i < n; i++)
        if (decode_field(d, ts, i + 1, &ts->fields[i], &el[i + 1], f) != PROTO_FRAME)
            return PROTO_BAD_INPUT;

    *consumed = PROTO_HEADER_SIZE + (size_t)body_len;
    return PROTO_FRAME;
}
