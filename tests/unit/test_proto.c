/* test_proto.c -- table-driven tests of the frame codec: golden vectors, partial, oversized and malformed input. */

#include "proto/proto.h"

#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <msgpack.h>

/* ================================================================ helpers */

/* A byte string literal as proto_bytes. */
#define B(s) { s, sizeof(s) - 1 }

/* Hex with optional spaces to bytes, malloc'd; *len gets the size. */
static char *unhex(const char *hex, size_t *len) {
    char *out = malloc(strlen(hex) / 2 + 1);
    assert_non_null(out);
    size_t n = 0;
    for (const char *p = hex; *p; ) {
        if (*p == ' ') {
            p++;
            continue;
        }
        unsigned v;
        if (sscanf(p, "%2x", &v) != 1 || p[1] == '\0' || p[1] == ' ')
            fail_msg("bad hex in test table: %s", hex);
        out[n++] = (char)v;
        p += 2;
    }
    *len = n;
    return out;
}

/* A frame (length prefix + body) around a body given in hex, malloc'd. */
static char *frame_of_body(const char *body_hex, size_t *len) {
    size_t blen;
    char *body = unhex(body_hex, &blen);
    char *out = malloc(blen + 4);
    assert_non_null(out);
    out[0] = (char)(blen >> 24);
    out[1] = (char)(blen >> 16);
    out[2] = (char)(blen >> 8);
    out[3] = (char)blen;
    memcpy(out + 4, body, blen);
    free(body);
    *len = blen + 4;
    return out;
}

static void put_be32(char *p, uint32_t v) {
    p[0] = (char)(v >> 24);
    p[1] = (char)(v >> 16);
    p[2] = (char)(v >> 8);
    p[3] = (char)v;
}

static void check_bytes(const char *what, const char *field, proto_bytes got, proto_bytes want) {
    if ((got.ptr == NULL) != (want.ptr == NULL))
        fail_msg("%s: %s is %s, want %s", what, field, got.ptr ? "bytes" : "nil",
                 want.ptr ? "bytes" : "nil");
    if (got.ptr == NULL) return;
    if (got.len != want.len || memcmp(got.ptr, want.ptr, got.len) != 0)
        fail_msg("%s: %s is \"%.*s\", want \"%.*s\"", what, field, (int)got.len, got.ptr,
                 (int)want.len, want.ptr);
}

#define CHECK_NUM(what, field, got, want) do { \
        if ((uint64_t)(got) != (uint64_t)(want)) \
            fail_msg("%s: %s is %" PRIu64 ", want %" PRIu64, what, field, \
                     (uint64_t)(got), (uint64_t)(want)); \
    } while (0)

/* Compares every field of two frames; the decoder zeroes unused fields. */
static void check_frame(const char *what, const proto_frame *got, const proto_frame *want) {
    CHECK_NUM(what, "type", got->type, want->type);
    CHECK_NUM(what, "req_id", got->req_id, want->req_id);
    CHECK_NUM(what, "version", got->version, want->version);
    check_bytes(what, "name", got->name, want->name);
    CHECK_NUM(what, "heartbeat_ms", got->heartbeat_ms, want->heartbeat_ms);
    CHECK_NUM(what, "max_frame", got->max_frame, want->max_frame);
    check_bytes(what, "auth", got->auth, want->auth);
    CHECK_NUM(what, "heartbeat_timeout_ms", got->heartbeat_timeout_ms, want->heartbeat_timeout_ms);
    CHECK_NUM(what, "max_key", got->max_key, want->max_key);
    CHECK_NUM(what, "max_subs", got->max_subs, want->max_subs);
    check_bytes(what, "client", got->client, want->client);
    CHECK_NUM(what, "expires_ms", got->expires_ms, want->expires_ms);
    check_bytes(what, "topic", got->topic, want->topic);
    check_bytes(what, "key", got->key, want->key);
    check_bytes(what, "value", got->value, want->value);
    CHECK_NUM(what, "feed", got->feed, want->feed);
    CHECK_NUM(what, "partition_cnt", got->partition_cnt, want->partition_cnt);
    for (size_t i = 0; i < want->partition_cnt; i++)
        CHECK_NUM(what, "partitions[i]", got->partitions[i], want->partitions[i]);
    CHECK_NUM(what, "partition", got->partition, want->partition);
    CHECK_NUM(what, "offset", got->offset, want->offset);
    CHECK_NUM(what, "timestamp_ms", got->timestamp_ms, want->timestamp_ms);
    CHECK_NUM(what, "header_cnt", got->header_cnt, want->header_cnt);
    for (size_t i = 0; i < want->header_cnt; i++) {
        check_bytes(what, "headers[i].name", got->headers[i].name, want->headers[i].name);
        check_bytes(what, "headers[i].value", got->headers[i].value, want->headers[i].value);
    }
    CHECK_NUM(what, "token", got->token, want->token);
    CHECK_NUM(what, "code", got->code, want->code);
    check_bytes(what, "text", got->text, want->text);
    CHECK_NUM(what, "count", got->count, want->count);
    CHECK_NUM(what, "start_mode", got->start_mode, want->start_mode);
    CHECK_NUM(what, "start_arg", got->start_arg, want->start_arg);
    CHECK_NUM(what, "position_cnt", got->position_cnt, want->position_cnt);
    for (size_t i = 0; i < want->position_cnt; i++) {
        CHECK_NUM(what, "positions[i].partition", got->positions[i].partition,
                  want->positions[i].partition);
        CHECK_NUM(what, "positions[i].offset", got->positions[i].offset,
                  want->positions[i].offset);
    }
}

/* Decodes buf expecting PROTO_BAD_INPUT with exactly this code, text and *consumed. */
static void check_error(const char *what, proto_decoder *d, const char *buf, size_t len,
                        proto_err code, const char *text, size_t want_consumed) {
    proto_frame f;
    size_t consumed = 12345;
    proto_status st = proto_decode(d, buf, len, &consumed, &f);
    if (st != PROTO_BAD_INPUT)
        fail_msg("%s: status %d, want PROTO_BAD_INPUT", what, (int)st);
    if (proto_decoder_err(d) != code)
        fail_msg("%s: error %s, want %s (%s)", what, proto_err_name(proto_decoder_err(d)),
                 proto_err_name(code), proto_decoder_errstr(d));
    if (strcmp(proto_decoder_errstr(d), text) != 0)
        fail_msg("%s: error text \"%s\", want \"%s\"", what, proto_decoder_errstr(d), text);
    if (consumed != want_consumed)
        fail_msg("%s: consumed %zu, want %zu", what, consumed, want_consumed);
}

/* ========================================================= golden vectors */

/* For the encoder's edge cases below. */
static const proto_position start_positions_a[] = { { 0, 12 }, { 3, 70000 } };
static const proto_header headers_a[] = {
    { B("trace"), B("abc") },
    { B("empty"), { NULL, 0 } },
};

/* The golden vectors are proto/vectors.json's (PROTOCOL.md section 7
 * shows them): "frames" encode to their hex and decode back to their
 * fields, "refused" are refused with their code and text. The Python
 * client's tests read the same file. */
#ifndef VECTORS_JSON
#define VECTORS_JSON "proto/vectors.json"
#endif

typedef struct golden {
    const char *name;
    proto_frame frame;
    const char *hex;          /* length prefix, then the body field by field */
} golden;

typedef struct refused {
    const char *name;
    const char *hex;          /* the whole frame */
    proto_err code;
    const char *text;
} refused;

static json_t *vectors;       /* the parsed file: names, hex and strings point into it */
static golden *goldens;
static size_t N_GOLDEN;
static refused *refuseds;
static size_t n_refused;
static size_t vectors_max_frame;
static void **owned;          /* arrays the loaded frames point to */
static size_t n_owned;

/* Keeps p (malloc'd) until the vectors are freed; returns it. */
static void *own(void *p) {
    void **o = realloc(owned, (n_owned + 1) * sizeof(*o));
    if (o == NULL || p == NULL) abort();
    owned = o;
    owned[n_owned++] = p;
    return p;
}

static void *own_array(size_t n, size_t size) {
    return own(calloc(n ? n : 1, size));
}

static int vec_bad(const char *name, const char *what) {
    fprintf(stderr, "%s: vector \"%s\": %s\n", VECTORS_JSON, name, what);
    return -1;
}

/* A JSON byte or text field: a string (its UTF-8 bytes), {"hex": ...} or null. */
static int vec_bytes(json_t *v, proto_bytes *out) {
    if (json_is_null(v)) {
        *out = (proto_bytes){ NULL, 0 };
    } else if (json_is_string(v)) {
        *out = (proto_bytes){ json_string_value(v), json_string_length(v) };
    } else if (json_is_string(json_object_get(v, "hex"))) {
        size_t len;
        char *b = own(unhex(json_string_value(json_object_get(v, "hex")), &len));
        *out = (proto_bytes){ b, len };
    } else {
        return -1;
    }
    return 0;
}

/* [[partition, offset], ...] */
static int vec_positions(json_t *v, const proto_position **out, size_t *cnt) {
    if (!json_is_array(v)) return -1;
    proto_position *ps = own_array(json_array_size(v), sizeof(*ps));
    for (size_t i = 0; i < json_array_size(v); i++) {
        json_t *p = json_array_get(v, i);
        if (json_array_size(p) != 2) return -1;
        ps[i].partition = (uint32_t)json_integer_value(json_array_get(p, 0));
        ps[i].offset = (uint64_t)json_integer_value(json_array_get(p, 1));
    }
    *out = ps;
    *cnt = json_array_size(v);
    return 0;
}

static int vec_start(json_t *v, proto_frame *f) {
    static const char *const modes[] = { "", "POSITIONS", "TIMESTAMP", "LAST", "BEGINNING", "OFFSET" };
    const char *mode = json_string_value(json_array_get(v, 0));
    json_t *arg = json_array_get(v, 1);
    for (int m = 1; mode && m <= PROTO_START_MAX; m++) {
        if (strcmp(mode, modes[m]) != 0) continue;
        f->start_mode = (uint64_t)m;
        if (m == PROTO_START_POSITIONS) return vec_positions(arg, &f->positions, &f->position_cnt);
        if (!json_is_integer(arg)) return -1;
        f->start_arg = json_integer_value(arg);
        return 0;
    }
    return -1;
}

/* Sets the field `key` of f from v. */
static int vec_field(proto_frame *f, const char *key, json_t *v) {
    const struct { const char *name; uint64_t *field; } nums[] = {
        { "version", &f->version }, { "heartbeat_ms", &f->heartbeat_ms },
        { "max_frame", &f->max_frame }, { "req_id", &f->req_id }, { "feed", &f->feed },
        { "offset", &f->offset }, { "token", &f->token }, { "code", &f->code },
        { "count", &f->count }, { "heartbeat_timeout_ms", &f->heartbeat_timeout_ms },
        { "max_key", &f->max_key }, { "max_subs", &f->max_subs }, { "expires_ms", &f->expires_ms },
    };
    /* HELLO's and AUTH's token is text; PING's and PONG's a number. */
    if (strcmp(key, "token") == 0 && json_is_string(v)) return vec_bytes(v, &f->auth);
    if (strcmp(key, "client") == 0) return vec_bytes(v, &f->client);
    for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
        if (strcmp(key, nums[i].name) != 0) continue;
        *nums[i].field = (uint64_t)json_integer_value(v);
        return json_is_integer(v) ? 0 : -1;
    }
    if (strcmp(key, "timestamp_ms") == 0) {
        f->timestamp_ms = json_integer_value(v);
        return json_is_integer(v) ? 0 : -1;
    }
    if (strcmp(key, "partition") == 0) {
        f->partition = (uint32_t)json_integer_value(v);
        return json_is_integer(v) ? 0 : -1;
    }
    if (strcmp(key, "client_name") == 0 || strcmp(key, "node_id") == 0) return vec_bytes(v, &f->name);
    if (strcmp(key, "topic") == 0) return vec_bytes(v, &f->topic);
    if (strcmp(key, "key") == 0) return vec_bytes(v, &f->key);
    if (strcmp(key, "value") == 0) return vec_bytes(v, &f->value);
    if (strcmp(key, "text") == 0) return vec_bytes(v, &f->text);
    if (strcmp(key, "start") == 0) return vec_start(v, f);
    if (strcmp(key, "positions") == 0) return vec_positions(v, &f->positions, &f->position_cnt);
    if (strcmp(key, "partitions") == 0) {
        if (!json_is_array(v)) return -1;
        uint32_t *ps = own_array(json_array_size(v), sizeof(*ps));
        for (size_t i = 0; i < json_array_size(v); i++)
            ps[i] = (uint32_t)json_integer_value(json_array_get(v, i));
        f->partitions = ps;
        f->partition_cnt = json_array_size(v);
        return 0;
    }
    if (strcmp(key, "headers") == 0) {
        if (!json_is_array(v)) return -1;
        proto_header *hs = own_array(json_array_size(v), sizeof(*hs));
        for (size_t i = 0; i < json_array_size(v); i++) {
            json_t *h = json_array_get(v, i);
            if (vec_bytes(json_array_get(h, 0), &hs[i].name) < 0 ||
                vec_bytes(json_array_get(h, 1), &hs[i].value) < 0)
                return -1;
        }
        f->headers = hs;
        f->header_cnt = json_array_size(v);
        return 0;
    }
    return -1;
}

static void vectors_free(void) {
    for (size_t i = 0; i < n_owned; i++) free(owned[i]);
    free(owned);
    free(goldens);
    free(refuseds);
    json_decref(vectors);
    owned = NULL;
    goldens = NULL;
    refuseds = NULL;
    vectors = NULL;
    n_owned = N_GOLDEN = n_refused = 0;
}

/* Reads proto/vectors.json into goldens and refuseds. Returns 0, or -1
 * having said why on stderr. */
static int vectors_load(void) {
    json_error_t jerr;
    vectors = json_load_file(VECTORS_JSON, 0, &jerr);
    if (vectors == NULL) {
        fprintf(stderr, "%s:%d: %s\n", VECTORS_JSON, jerr.line, jerr.text);
        return -1;
    }
    json_t *frames = json_object_get(vectors, "frames"), *refs = json_object_get(vectors, "refused");
    if (!json_is_array(frames) || !json_is_array(refs) ||
        !json_is_integer(json_object_get(vectors, "max_frame")))
        return vec_bad("(file)", "wants \"frames\", \"refused\" and \"max_frame\"");
    vectors_max_frame = (size_t)json_integer_value(json_object_get(vectors, "max_frame"));
    N_GOLDEN = json_array_size(frames);
    goldens = own_array(N_GOLDEN, sizeof(*goldens));
    n_owned--;   /* freed by name in vectors_free */
    for (size_t i = 0; i < N_GOLDEN; i++) {
        json_t *v = json_array_get(frames, i);
        golden *g = &goldens[i];
        g->name = json_string_value(json_object_get(v, "name"));
        g->hex = json_string_value(json_object_get(v, "hex"));
        const char *type = json_string_value(json_object_get(v, "type"));
        json_t *fields = json_object_get(v, "fields");
        if (g->name == NULL || g->hex == NULL || type == NULL || !json_is_object(fields))
            return vec_bad(g->name ? g->name : "?", "wants name, type, fields and hex");
        for (uint64_t t = 1; t <= PROTO_TYPE_MAX; t++)
            if (strcmp(proto_type_name(t), type) == 0) g->frame.type = (proto_type)t;
        if (g->frame.type == 0) return vec_bad(g->name, "unknown type");
        const char *key;
        json_t *value;
        json_object_foreach(fields, key, value) {
            if (vec_field(&g->frame, key, value) < 0) return vec_bad(g->name, key);
        }
    }
    n_refused = json_array_size(refs);
    refuseds = own_array(n_refused, sizeof(*refuseds));
    n_owned--;
    for (size_t i = 0; i < n_refused; i++) {
        json_t *v = json_array_get(refs, i);
        refused *r = &refuseds[i];
        r->name = json_string_value(json_object_get(v, "name"));
        r->hex = json_string_value(json_object_get(v, "hex"));
        r->text = json_string_value(json_object_get(v, "text"));
        r->code = (proto_err)json_integer_value(json_object_get(v, "code"));
        const char *err = json_string_value(json_object_get(v, "error"));
        if (r->name == NULL || r->hex == NULL || r->text == NULL || err == NULL)
            return vec_bad(r->name ? r->name : "?", "wants name, hex, code, error and text");
        if (strcmp(proto_err_name(r->code), err) != 0) return vec_bad(r->name, "code and error disagree");
    }
    return 0;
}

static int group_setup(void **state) {
    if (vectors_load() < 0) {
        vectors_free();
        return -1;
    }
    return 0;
}

static int group_teardown(void **state) {
    vectors_free();
    return 0;
}

static void test_golden_covers_every_type(void **state) {
    int seen[PROTO_TYPE_MAX + 1] = { 0 };
    for (size_t i = 0; i < N_GOLDEN; i++) seen[goldens[i].frame.type]++;
    for (int t = 1; t <= PROTO_TYPE_MAX; t++)
        if (!seen[t]) fail_msg("no golden vector for %s", proto_type_name((uint64_t)t));
}

static void test_golden_covers_every_start_mode(void **state) {
    int seen[PROTO_START_MAX + 1] = { 0 };
    for (size_t i = 0; i < N_GOLDEN; i++)
        if (goldens[i].frame.type == PROTO_SUBSCRIBE) seen[goldens[i].frame.start_mode]++;
    for (int m = 0; m <= PROTO_START_MAX; m++)
        if (!seen[m]) fail_msg("no golden SUBSCRIBE vector with start mode %d", m);
}

static void test_golden_encode(void **state) {
    proto_buf all;
    proto_buf_init(&all);
    size_t all_len = 0;
    for (size_t i = 0; i < N_GOLDEN; i++) {
        const golden *g = &goldens[i];
        size_t want_len;
        char *want = unhex(g->hex, &want_len);
        proto_buf b = { 0 };
        if (proto_encode(&b, &g->frame) != 0) fail_msg("%s: encode failed", g->name);
        if (b.len != want_len || memcmp(b.data, want, want_len) != 0)
            fail_msg("%s: encoding differs from the golden vector", g->name);
        /* Encoding appends: all vectors in one buffer are their concatenation. */
        assert_int_equal(proto_encode(&all, &g->frame), 0);
        assert_memory_equal(all.data + all_len, want, want_len);
        all_len += want_len;
        assert_int_equal(all.len, all_len);
        proto_buf_free(&b);
        free(want);
    }
    proto_buf_free(&all);
}

static void test_golden_decode(void **state) {
    proto_decoder *d = proto_decoder_new(PROTO_DEFAULT_MAX_FRAME);
    assert_non_null(d);
    for (size_t i = 0; i < N_GOLDEN; i++) {
        const golden *g = &goldens[i];
        size_t len;
        char *buf = unhex(g->hex, &len);
        proto_frame f;
        size_t consumed = 0;
        if (proto_decode(d, buf, len, &consumed, &f) != PROTO_FRAME)
            fail_msg("%s: %s", g->name, proto_decoder_errstr(d));
        if (consumed != len) fail_msg("%s: consumed %zu of %zu", g->name, consumed, len);
        check_frame(g->name, &f, &g->frame);
        /* Byte strings point into the input, not into a copy. */
        const proto_bytes *bs[] = { &f.name, &f.topic, &f.key, &f.value, &f.text };
        for (size_t j = 0; j < sizeof(bs) / sizeof(bs[0]); j++)
            if (bs[j]->ptr && bs[j]->len && (bs[j]->ptr < buf || bs[j]->ptr >= buf + len))
                fail_msg("%s: a decoded byte string points outside the input", g->name);
        free(buf);
    }
    proto_decoder_free(d);
}

/* Every proper prefix of a frame is incomplete, never an error. */
static void test_golden_partial(void **state) {
    proto_decoder *d = proto_decoder_new(PROTO_DEFAULT_MAX_FRAME);
    assert_non_null(d);
    for (size_t i = 0; i < N_GOLDEN; i++) {
        size_t len;
        char *buf = unhex(goldens[i].hex, &len);
        for (size_t n = 0; n < len; n++) {
            /* A copy of exactly n bytes, so ASan catches any read past them. */
            char *part = malloc(n ? n : 1);
            assert_non_null(part);
            memcpy(part, buf, n);
            proto_frame f;
            size_t consumed = 99;
            proto_status st = proto_decode(d, part, n, &consumed, &f);
            if (st != PROTO_NEED_MORE || consumed != 0)
                fail_msg("%s: prefix of %zu bytes gave status %d, consumed %zu",
                         goldens[i].name, n, (int)st, consumed);
            free(part);
        }
        free(buf);
    }
    proto_decoder_free(d);
}


/* All vectors back to back decode in sequence, then the decoder wants more. */
static void test_back_to_back(void **state) {
    char *all = NULL;
    size_t all_len = 0;
    size_t *ends = malloc(N_GOLDEN * sizeof(*ends));
    assert_non_null(ends);
    for (size_t i = 0; i < N_GOLDEN; i++) {
        size_t len;
        char *buf = unhex(goldens[i].hex, &len);
        all = realloc(all, all_len + len);
        assert_non_null(all);
        memcpy(all + all_len, buf, len);
        all_len += len;
        ends[i] = all_len;
        free(buf);
    }

    proto_decoder *d = proto_decoder_new(PROTO_DEFAULT_MAX_FRAME);
    assert_non_null(d);
    size_t pos = 0;
    for (size_t i = 0; i < N_GOLDEN; i++) {
        proto_frame f;
        size_t consumed;
        if (proto_decode(d, all + pos, all_len - pos, &consumed, &f) != PROTO_FRAME)
            fail_msg("%s: %s", goldens[i].name, proto_decoder_errstr(d));
        check_frame(goldens[i].name, &f, &goldens[i].frame);
        pos += consumed;
        assert_int_equal(pos, ends[i]);
    }
    proto_frame f;
    size_t consumed = 1;
    assert_int_equal(proto_decode(d, all + pos, 0, &consumed, &f), PROTO_NEED_MORE);
    assert_int_equal(consumed, 0);

    /* Two frames where the second is cut short: the first still decodes. */
    size_t cut = ends[1] - 1;
    assert_int_equal(proto_decode(d, all, cut, &consumed, &f), PROTO_FRAME);
    check_frame("first of two", &f, &goldens[0].frame);
    assert_int_equal(proto_decode(d, all + consumed, cut - consumed, &consumed, &f),
                     PROTO_NEED_MORE);

    proto_decoder_free(d);
    free(all);
    free(ends);
}

/* Each refused vector: its code and text, at once when the prefix decides,
 * else once the frame is complete; only UNKNOWN_TYPE consumes the frame. */
static void test_refused(void **state) {
    assert_true(n_refused > 0);
    proto_decoder *d = proto_decoder_new(vectors_max_frame);
    assert_non_null(d);
    for (size_t i = 0; i < n_refused; i++) {
        const refused *r = &refuseds[i];
        size_t len;
        char *buf = unhex(r->hex, &len);
        check_error(r->name, d, buf, len, r->code, r->text, r->code == PROTO_E_UNKNOWN_TYPE ? len : 0);
        free(buf);
    }
    proto_decoder_free(d);
}

/* ========================================================= oversize frames */

static void test_oversize(void **state) {
    proto_decoder *d = proto_decoder_new(PROTO_DEFAULT_MAX_FRAME);
    assert_non_null(d);
    char hdr[4];

    /* Refused from the 4-byte prefix alone, without waiting for the body. */
    put_be32(hdr, 2000000);
    check_error("2000000", d, hdr, 4, PROTO_E_FRAME_TOO_LARGE,
                "frame of 2000000 bytes exceeds the 1048576-byte limit", 0);
    put_be32(hdr, 1048577);
    check_error("limit + 1", d, hdr, 4, PROTO_E_FRAME_TOO_LARGE,
                "frame of 1048577 bytes exceeds the 1048576-byte limit", 0);
    put_be32(hdr, UINT32_MAX);
    check_error("UINT32_MAX", d, hdr, 4, PROTO_E_FRAME_TOO_LARGE,
                "frame of 4294967295 bytes exceeds the 1048576-byte limit", 0);
    /* Exactly the limit is fine: the decoder waits for the body. */
    put_be32(hdr, 1048576);
    proto_frame f;
    size_t consumed;
    assert_int_equal(proto_decode(d, hdr, 4, &consumed, &f), PROTO_NEED_MORE);
    proto_decoder_free(d);

    /* A limit below PROTO_MIN_MAX_FRAME is raised to it. */
    d = proto_decoder_new(10);
    assert_non_null(d);
    put_be32(hdr, 65);
    check_error("min limit", d, hdr, 4, PROTO_E_FRAME_TOO_LARGE,
                "frame of 65 bytes exceeds the 64-byte limit", 0);
    /* A 64-byte body: GOAWAY with a 60-byte text (str8). */
    char buf[4 + 64];
    put_be32(buf, 64);
    memcpy(buf + 4, "\x92\x0e\xd9\x3c", 4);
    memset(buf + 8, 'x', 60);
    assert_int_equal(proto_decode(d, buf, sizeof(buf), &consumed, &f), PROTO_FRAME);
    assert_int_equal(consumed, sizeof(buf));
    assert_int_equal(f.type, PROTO_GOAWAY);
    assert_int_equal(f.text.len, 60);
    proto_decoder_free(d);
}

/* ========================================================== bad input */

typedef struct bad_case {
    const char *name;
    const char *body_hex;     /* the length prefix is computed */
    proto_err code;
    const char *text;
} bad_case;

static const bad_case bad_cases[] = {
    /* MALFORMED: not exactly one msgpack value filling the body */
    { "empty body", "", PROTO_E_MALFORMED, "frame body is empty" },
    { "byte 0xc1", "c1", PROTO_E_MALFORMED, "frame body is not valid msgpack" },
    { "0xc1 inside", "92 0a c1", PROTO_E_MALFORMED, "frame body is not valid msgpack" },
    { "short array", "92 0a", PROTO_E_MALFORMED, "frame body ends inside a msgpack value" },
    { "short str", "92 0e a5 61", PROTO_E_MALFORMED,
      "frame body ends inside a msgpack value" },
    { "short uint16", "92 0a cd 01", PROTO_E_MALFORMED,
      "frame body ends inside a msgpack value" },
    { "short str8 length", "92 0e d9", PROTO_E_MALFORMED,
      "frame body ends inside a msgpack value" },
    { "array32 of 2^32-1", "dd ffffffff", PROTO_E_MALFORMED,
      "frame body ends inside a msgpack value" },
    { "map32 of 2^32-1", "df ffffffff", PROTO_E_MALFORMED,
      "frame body ends inside a msgpack value" },
    { "bin32 of 2^32-1", "92 0e c6 ffffffff", PROTO_E_MALFORMED,
      "frame body ends inside a msgpack value" },
    { "ext32 of 2^32-1", "92 0e c9 ffffffff 01", PROTO_E_MALFORMED,
      "frame body ends inside a msgpack value" },
    { "trailing byte", "92 0a 01 00", PROTO_E_MALFORMED,
      "frame body has 1 byte after its msgpack value" },
    { "trailing garbage", "92 0a 01 de ad be", PROTO_E_MALFORMED,
      "frame body has 3 bytes after its msgpack value" },
    { "two values", "92 0a 01 92 0a 01", PROTO_E_MALFORMED,
      "frame body has 3 bytes after its msgpack value" },

    /* BAD_FRAME: not an array with a positive type first */
    { "int body", "0a", PROTO_E_BAD_FRAME, "frame body is not an array" },
    { "nil body", "c0", PROTO_E_BAD_FRAME, "frame body is not an array" },
    { "str body", "a2 6869", PROTO_E_BAD_FRAME, "frame body is not an array" },
    { "map body", "81 01 02", PROTO_E_BAD_FRAME, "frame body is not an array" },
    { "empty array", "90", PROTO_E_BAD_FRAME, "frame body is an empty array" },
    { "type 0", "91 00", PROTO_E_BAD_FRAME, "frame type must be a positive integer" },
    { "type -1", "91 ff", PROTO_E_BAD_FRAME, "frame type must be a positive integer" },
    { "type str", "91 a1 31", PROTO_E_BAD_FRAME, "frame type must be a positive integer" },
    { "type nil", "91 c0", PROTO_E_BAD_FRAME, "frame type must be a positive integer" },
    { "type float", "91 cb 3ff0000000000000", PROTO_E_BAD_FRAME,
      "frame type must be a positive integer" },

    /* UNKNOWN_TYPE: recoverable, *consumed covers the frame */
    { "type 18", "91 12", PROTO_E_UNKNOWN_TYPE, "unknown frame type 18" },
    { "type 18 with LIVE's fields", "93 12 01 90", PROTO_E_UNKNOWN_TYPE,
      "unknown frame type 18" },
    { "type 99 with fields", "93 63 01 02", PROTO_E_UNKNOWN_TYPE, "unknown frame type 99" },
    { "type 2^64-1", "91 cf ffffffffffffffff", PROTO_E_UNKNOWN_TYPE,
      "unknown frame type 18446744073709551615" },

    /* BAD_FRAME: field counts */
    { "HELLO no fields", "91 01", PROTO_E_BAD_FRAME, "HELLO: expected 2 or 3 fields, got 0" },
    { "HELLO 4 fields", "95 01 01 a0 a0 c0", PROTO_E_BAD_FRAME,
      "HELLO: expected 2 or 3 fields, got 4" },
    { "HELLO token nil", "94 01 03 a0 c0", PROTO_E_BAD_FRAME, "HELLO: field 3 (token) must be str or bin" },
    { "PING 2 fields", "93 0a 01 02", PROTO_E_BAD_FRAME, "PING: expected 1 field, got 2" },
    { "GOAWAY no text", "91 0e", PROTO_E_BAD_FRAME, "GOAWAY: expected 1 field, got 0" },
    { "MESSAGE 5 fields", "96 07 01 02 03 04 c0", PROTO_E_BAD_FRAME,
      "MESSAGE: expected 6 or 7 fields, got 5" },
    { "MESSAGE 8 fields", "99 07 01 02 03 04 c0 c0 90 c0", PROTO_E_BAD_FRAME,
      "MESSAGE: expected 6 or 7 fields, got 8" },
    { "SUBSCRIBE 2 fields", "93 03 01 a174", PROTO_E_BAD_FRAME,
      "SUBSCRIBE: expected 3 or 4 fields, got 2" },
    { "SUBSCRIBE 5 fields", "96 03 01 a174 c0 920400 c0", PROTO_E_BAD_FRAME,
      "SUBSCRIBE: expected 3 or 4 fields, got 5" },
    { "LIVE 1 field", "92 0f 01", PROTO_E_BAD_FRAME, "LIVE: expected 2 fields, got 1" },
    { "LIVE 3 fields", "94 0f 01 90 90", PROTO_E_BAD_FRAME, "LIVE: expected 2 fields, got 3" },

    /* BAD_FRAME: field types, some for every frame type */
    { "HELLO version -1", "93 01 ff a0", PROTO_E_BAD_FRAME,
      "HELLO: field 1 (version) must be an unsigned integer" },
    { "HELLO name nil", "93 01 01 c0", PROTO_E_BAD_FRAME,
      "HELLO: field 2 (client_name) must be str or bin" },
    { "WELCOME node_id int", "95 02 01 01 00 00", PROTO_E_BAD_FRAME,
      "WELCOME: field 2 (node_id) must be str or bin" },
    { "WELCOME heartbeat str", "95 02 01 a0 a0 00", PROTO_E_BAD_FRAME,
      "WELCOME: field 3 (heartbeat_ms) must be an unsigned integer" },
    { "WELCOME max_frame float", "95 02 01 a0 00 ca00000000", PROTO_E_BAD_FRAME,
      "WELCOME: field 4 (max_frame) must be an unsigned integer" },
    { "SUBSCRIBE req_id -1", "94 03 ff a174 c0", PROTO_E_BAD_FRAME,
      "SUBSCRIBE: field 1 (req_id) must be an unsigned integer" },
    { "SUBSCRIBE topic nil", "94 03 01 c0 c0", PROTO_E_BAD_FRAME,
      "SUBSCRIBE: field 2 (topic) must be str or bin" },
    { "SUBSCRIBE key int", "94 03 01 a174 05", PROTO_E_BAD_FRAME,
      "SUBSCRIBE: field 3 (key) must be bin, str or nil" },
    { "SUBSCRIBE key true", "94 03 01 a174 c3", PROTO_E_BAD_FRAME,
      "SUBSCRIBE: field 3 (key) must be bin, str or nil" },
    { "SUBSCRIBE key array", "94 03 01 a174 90", PROTO_E_BAD_FRAME,
      "SUBSCRIBE: field 3 (key) must be bin, str or nil" },
    { "SUBSCRIBED feed -1", "94 04 01 ff 90", PROTO_E_BAD_FRAME,
      "SUBSCRIBED: field 2 (feed) must be an unsigned integer" },
    { "SUBSCRIBED partitions map", "94 04 01 02 80", PROTO_E_BAD_FRAME,
      "SUBSCRIBED: field 3 (partitions) must be an array" },
    { "SUBSCRIBED partitions nil", "94 04 01 02 c0", PROTO_E_BAD_FRAME,
      "SUBSCRIBED: field 3 (partitions) must be an array" },
    { "SUBSCRIBED partition -1", "94 04 01 02 92 00 ff", PROTO_E_BAD_FRAME,
      "SUBSCRIBED: partitions[1] must be an unsigned integer" },
    { "SUBSCRIBED partition str", "94 04 01 02 91 a0", PROTO_E_BAD_FRAME,
      "SUBSCRIBED: partitions[0] must be an unsigned integer" },
    { "SUBSCRIBED partition 2^32", "94 04 01 02 91 cf0000000100000000", PROTO_E_BAD_FRAME,
      "SUBSCRIBED: partitions[0] must be at most 4294967295" },
    { "UNSUBSCRIBE feed nil", "93 05 01 c0", PROTO_E_BAD_FRAME,
      "UNSUBSCRIBE: field 2 (feed) must be an unsigned integer" },
    { "UNSUBSCRIBED req_id str", "93 06 a0 01", PROTO_E_BAD_FRAME,
      "UNSUBSCRIBED: field 1 (req_id) must be an unsigned integer" },
    { "MESSAGE feed bin", "97 07 c400 05 06 07 c0 c0", PROTO_E_BAD_FRAME,
      "MESSAGE: field 1 (feed) must be an unsigned integer" },
    { "MESSAGE partition -1", "97 07 03 ff 06 07 c0 c0", PROTO_E_BAD_FRAME,
      "MESSAGE: field 2 (partition) must be an unsigned integer" },
    { "MESSAGE partition 2^32", "97 07 03 cf0000000100000000 06 07 c0 c0", PROTO_E_BAD_FRAME,
      "MESSAGE: field 2 (partition) must be at most 4294967295" },
    { "MESSAGE offset -1", "97 07 03 05 ff 07 c0 c0", PROTO_E_BAD_FRAME,
      "MESSAGE: field 3 (offset) must be an unsigned integer" },
    { "MESSAGE timestamp float", "97 07 03 05 06 ca00000000 c0 c0", PROTO_E_BAD_FRAME,
      "MESSAGE: field 4 (timestamp_ms) must be an integer" },
    { "MESSAGE timestamp 2^63", "97 07 03 05 06 cf8000000000000000 c0 c0", PROTO_E_BAD_FRAME,
      "MESSAGE: field 4 (timestamp_ms) must be at most 9223372036854775807" },
    { "MESSAGE key int", "97 07 03 05 06 07 01 c0", PROTO_E_BAD_FRAME,
      "MESSAGE: field 5 (key) must be bin, str or nil" },
    { "MESSAGE value array", "97 07 03 05 06 07 c0 90", PROTO_E_BAD_FRAME,
      "MESSAGE: field 6 (value) must be bin, str or nil" },
    { "MESSAGE headers nil", "98 07 03 05 06 07 c0 c0 c0", PROTO_E_BAD_FRAME,
      "MESSAGE: field 7 (headers) must be an array" },
    { "MESSAGE header not array", "98 07 03 05 06 07 c0 c0 91 a0", PROTO_E_BAD_FRAME,
      "MESSAGE: headers[0] must be a 2-element array" },
    { "MESSAGE header of 1", "98 07 03 05 06 07 c0 c0 91 91 a0", PROTO_E_BAD_FRAME,
      "MESSAGE: headers[0] must be a 2-element array" },
    { "MESSAGE header of 3", "98 07 03 05 06 07 c0 c0 91 93 a0 c0 c0", PROTO_E_BAD_FRAME,
      "MESSAGE: headers[0] must be a 2-element array" },
    { "MESSAGE header name nil", "98 07 03 05 06 07 c0 c0 92 92a0c0 92c0c0", PROTO_E_BAD_FRAME,
      "MESSAGE: headers[1] name must be str or bin" },
    { "MESSAGE header value int", "98 07 03 05 06 07 c0 c0 91 92a001", PROTO_E_BAD_FRAME,
      "MESSAGE: headers[0] value must be bin, str or nil" },
    { "PUBLISH topic int", "95 08 01 05 c0 c0", PROTO_E_BAD_FRAME,
      "PUBLISH: field 2 (topic) must be str or bin" },
    { "PUBLISH key map", "95 08 01 a174 80 c0", PROTO_E_BAD_FRAME,
      "PUBLISH: field 3 (key) must be bin, str or nil" },
    { "PUBLISH value int", "95 08 01 a174 c0 05", PROTO_E_BAD_FRAME,
      "PUBLISH: field 4 (value) must be bin, str or nil" },
    { "PUBACK partition 2^32", "94 09 01 cf0000000100000000 02", PROTO_E_BAD_FRAME,
      "PUBACK: field 2 (partition) must be at most 4294967295" },
    { "PUBACK offset -128", "94 09 01 02 d080", PROTO_E_BAD_FRAME,
      "PUBACK: field 3 (offset) must be an unsigned integer" },
    { "PING token float", "92 0a cb0000000000000000", PROTO_E_BAD_FRAME,
      "PING: field 1 (token) must be an unsigned integer" },
    { "PONG token -1", "92 0b ff", PROTO_E_BAD_FRAME,
      "PONG: field 1 (token) must be an unsigned integer" },
    { "ERROR code str", "94 0c 00 a0 a0", PROTO_E_BAD_FRAME,
      "ERROR: field 2 (code) must be an unsigned integer" },
    { "ERROR text nil", "94 0c 00 01 c0", PROTO_E_BAD_FRAME,
      "ERROR: field 3 (text) must be str or bin" },
    { "DROPPED count -1", "93 0d 01 ff", PROTO_E_BAD_FRAME,
      "DROPPED: field 2 (count) must be an unsigned integer" },
    { "GOAWAY text int", "92 0e 01", PROTO_E_BAD_FRAME,
      "GOAWAY: field 1 (text) must be str or bin" },
    { "LIVE feed -1", "93 0f ff 90", PROTO_E_BAD_FRAME,
      "LIVE: field 1 (feed) must be an unsigned integer" },

    /* BAD_FRAME: SUBSCRIBE start (version 2) */
    { "start nil", "95 03 01 a174 c0 c0", PROTO_E_BAD_FRAME,
      "SUBSCRIBE: field 4 (start) must be a 2-element array" },
    { "start int", "95 03 01 a174 c0 04", PROTO_E_BAD_FRAME,
      "SUBSCRIBE: field 4 (start) must be a 2-element array" },
    { "start map", "95 03 01 a174 c0 81 04 00", PROTO_E_BAD_FRAME,
      "SUBSCRIBE: field 4 (start) must be a 2-element array" },
    { "start empty array", "95 03 01 a174 c0 90", PROTO_E_BAD_FRAME,
      "SUBSCRIBE: field 4 (start) must be a 2-element array" },
    { "start of 1", "95 03 01 a174 c0 91 04", PROTO_E_BAD_FRAME,
      "SUBSCRIBE: field 4 (start) must be a 2-element array" },
    { "start of 3", "95 03 01 a174 c0 93 04 00 00", PROTO_E_BAD_FRAME,
      "SUBSCRIBE: field 4 (start) must be a 2-element array" },
    { "start mode 0", "95 03 01 a174 c0 92 00 00", PROTO_E_BAD_FRAME,
      "SUBSCRIBE: start mode must be 1..5" },
    { "start mode 6", "95 03 01 a174 c0 92 06 00", PROTO_E_BAD_FRAME,
      "SUBSCRIBE: start mode must be 1..5" },
    { "start mode -1", "95 03 01 a174 c0 92 ff 00", PROTO_E_BAD_FRAME,
      "SUBSCRIBE: start mode must be 1..5" },
    { "start mode 2^64-1", "95 03 01 a174 c0 92 cfffffffffffffffff 00", PROTO_E_BAD_FRAME,
      "SUBSCRIBE: start mode must be 1..5" },
    { "start mode str", "95 03 01 a174 c0 92 a131 00", PROTO_E_BAD_FRAME,
      "SUBSCRIBE: start mode must be 1..5" },
    { "start beginning 1", "95 03 01 a174 c0 92 04 01", PROTO_E_BAD_FRAME,
      "SUBSCRIBE: start mode 4 (beginning) takes 0" },
    { "start beginning -1", "95 03 01 a174 c0 92 04 ff", PROTO_E_BAD_FRAME,
      "SUBSCRIBE: start mode 4 (beginning) takes 0" },
    { "start beginning nil", "95 03 01 a174 c0 92 04 c0", PROTO_E_BAD_FRAME,
      "SUBSCRIBE: start mode 4 (beginning) takes 0" },
    { "start last -1", "95 03 01 a174 c0 92 03 ff", PROTO_E_BAD_FRAME,
      "SUBSCRIBE: start mode 3 takes an integer >= 0" },
    { "start last int64 min", "95 03 01 a174 c0 92 03 d38000000000000000", PROTO_E_BAD_FRAME,
      "SUBSCRIBE: start mode 3 takes an integer >= 0" },
    { "start last 2^63", "95 03 01 a174 c0 92 03 cf8000000000000000", PROTO_E_BAD_FRAME,
      "SUBSCRIBE: start mode 3 takes an integer >= 0" },
    { "start last str", "95 03 01 a174 c0 92 03 a131", PROTO_E_BAD_FRAME,
      "SUBSCRIBE: start mode 3 takes an integer >= 0" },
    { "start offset -128", "95 03 01 a174 c0 92 05 d080", PROTO_E_BAD_FRAME,
      "SUBSCRIBE: start mode 5 takes an integer >= 0" },
    { "start offset 2^63", "95 03 01 a174 c0 92 05 cf8000000000000000", PROTO_E_BAD_FRAME,
      "SUBSCRIBE: start mode 5 takes an integer >= 0" },
    { "start offset positions", "95 03 01 a174 c0 92 05 90", PROTO_E_BAD_FRAME,
      "SUBSCRIBE: start mode 5 takes an integer >= 0" },
    { "start timestamp 2^63", "95 03 01 a174 c0 92 02 cf8000000000000000", PROTO_E_BAD_FRAME,
      "SUBSCRIBE: start mode 2 takes an integer" },
    { "start timestamp float", "95 03 01 a174 c0 92 02 cb0000000000000000", PROTO_E_BAD_FRAME,
      "SUBSCRIBE: start mode 2 takes an integer" },
    { "start timestamp nil", "95 03 01 a174 c0 92 02 c0", PROTO_E_BAD_FRAME,
      "SUBSCRIBE: start mode 2 takes an integer" },
    { "start positions nil", "95 03 01 a174 c0 92 01 c0", PROTO_E_BAD_FRAME,
      "SUBSCRIBE: start positions must be an array" },
    { "start positions int", "95 03 01 a174 c0 92 01 00", PROTO_E_BAD_FRAME,
      "SUBSCRIBE: start positions must be an array" },
    { "start positions map", "95 03 01 a174 c0 92 01 81 00 0c", PROTO_E_BAD_FRAME,
      "SUBSCRIBE: start positions must be an array" },
    { "start position int", "95 03 01 a174 c0 92 01 91 05", PROTO_E_BAD_FRAME,
      "SUBSCRIBE: positions[0] must be [partition, offset], a uint32 and an int64 >= 0" },
    { "start position of 1", "95 03 01 a174 c0 92 01 91 91 00", PROTO_E_BAD_FRAME,
      "SUBSCRIBE: positions[0] must be [partition, offset], a uint32 and an int64 >= 0" },
    { "start position of 3", "95 03 01 a174 c0 92 01 92 92000c 93000c00", PROTO_E_BAD_FRAME,
      "SUBSCRIBE: positions[1] must be [partition, offset], a uint32 and an int64 >= 0" },
    { "start position map", "95 03 01 a174 c0 92 01 91 81 00 0c", PROTO_E_BAD_FRAME,
      "SUBSCRIBE: positions[0] must be [partition, offset], a uint32 and an int64 >= 0" },
    { "start partition 2^32", "95 03 01 a174 c0 92 01 91 92 cf0000000100000000 00",
      PROTO_E_BAD_FRAME,
      "SUBSCRIBE: positions[0] must be [partition, offset], a uint32 and an int64 >= 0" },
    { "start partition -1", "95 03 01 a174 c0 92 01 91 92 ff 00", PROTO_E_BAD_FRAME,
      "SUBSCRIBE: positions[0] must be [partition, offset], a uint32 and an int64 >= 0" },
    { "start partition nil", "95 03 01 a174 c0 92 01 91 92 c0 00", PROTO_E_BAD_FRAME,
      "SUBSCRIBE: positions[0] must be [partition, offset], a uint32 and an int64 >= 0" },
    { "start offset in positions 2^63",
      "95 03 01 a174 c0 92 01 91 92 00 cf8000000000000000", PROTO_E_BAD_FRAME,
      "SUBSCRIBE: positions[0] must be [partition, offset], a uint32 and an int64 >= 0" },
    { "start offset in positions -1", "95 03 01 a174 c0 92 01 91 92 00 ff", PROTO_E_BAD_FRAME,
      "SUBSCRIBE: positions[0] must be [partition, offset], a uint32 and an int64 >= 0" },
    { "start offset in positions str", "95 03 01 a174 c0 92 01 91 92 00 a131", PROTO_E_BAD_FRAME,
      "SUBSCRIBE: positions[0] must be [partition, offset], a uint32 and an int64 >= 0" },

    /* BAD_FRAME: LIVE positions (version 2) */
    { "LIVE positions nil", "93 0f 01 c0", PROTO_E_BAD_FRAME,
      "LIVE: field 2 (positions) must be an array" },
    { "LIVE positions map", "93 0f 01 80", PROTO_E_BAD_FRAME,
      "LIVE: field 2 (positions) must be an array" },
    { "LIVE position int", "93 0f 01 91 00", PROTO_E_BAD_FRAME,
      "LIVE: positions[0] must be [partition, offset], a uint32 and an int64 >= 0" },
    { "LIVE position of 3", "93 0f 01 92 920000 93000000", PROTO_E_BAD_FRAME,
      "LIVE: positions[1] must be [partition, offset], a uint32 and an int64 >= 0" },
    { "LIVE partition 2^32", "93 0f 01 91 92 cf0000000100000000 00", PROTO_E_BAD_FRAME,
      "LIVE: positions[0] must be [partition, offset], a uint32 and an int64 >= 0" },
    { "LIVE offset 2^63", "93 0f 01 91 92 00 cf8000000000000000", PROTO_E_BAD_FRAME,
      "LIVE: positions[0] must be [partition, offset], a uint32 and an int64 >= 0" },
    { "LIVE offset -1", "93 0f 01 91 92 00 ff", PROTO_E_BAD_FRAME,
      "LIVE: positions[0] must be [partition, offset], a uint32 and an int64 >= 0" },
};

static void test_bad_input(void **state) {
    proto_decoder *d = proto_decoder_new(PROTO_DEFAULT_MAX_FRAME);
    assert_non_null(d);
    size_t ping_len;
    char *ping = unhex("00000003 92 0a 2a", &ping_len);
    for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
        const bad_case *c = &bad_cases[i];
        size_t len;
        char *frame = frame_of_body(c->body_hex, &len);
        size_t want_consumed = c->code == PROTO_E_UNKNOWN_TYPE ? len : 0;
        check_error(c->name, d, frame, len, c->code, c->text, want_consumed);

        /* A following frame changes nothing; after an unknown type it decodes. */
        char *two = malloc(len + ping_len);
        assert_non_null(two);
        memcpy(two, frame, len);
        memcpy(two + len, ping, ping_len);
        check_error(c->name, d, two, len + ping_len, c->code, c->text, want_consumed);
        if (c->code == PROTO_E_UNKNOWN_TYPE) {
            proto_frame f;
            size_t consumed;
            if (proto_decode(d, two + len, ping_len, &consumed, &f) != PROTO_FRAME)
                fail_msg("%s: frame after the unknown one: %s", c->name,
                         proto_decoder_errstr(d));
            assert_int_equal(f.type, PROTO_PING);
            assert_int_equal(f.token, 42);
        }

        /* The body is judged only once complete (an empty one at once). */
        for (size_t n = 0; len > 4 && n < len; n++) {
            proto_frame f;
            size_t consumed;
            if (proto_decode(d, frame, n, &consumed, &f) != PROTO_NEED_MORE)
                fail_msg("%s: prefix of %zu bytes is not PROTO_NEED_MORE", c->name, n);
        }
        free(two);
        free(frame);
    }
    free(ping);
    proto_decoder_free(d);
}

/* ===================================================== field-by-field sweep */

enum { W_UINT, W_INT, W_TEXT, W_BYTES, W_ARRAY, W_PAIR };

static const char *const want_text[] = {
    [W_UINT] = "an unsigned integer",
    [W_INT] = "an integer",
    [W_TEXT] = "str or bin",
    [W_BYTES] = "bin, str or nil",
    [W_ARRAY] = "an array",
    [W_PAIR] = "a 2-element array",
};

/* The field list of proto.h, written out again independently of codec.c. */
typedef struct sweep_spec {
    unsigned nfields, nopt;
    const char *names[9];
    int want[9];
} sweep_spec;

static const sweep_spec sweep_specs[PROTO_TYPE_MAX + 1] = {
    [PROTO_HELLO] = { 2, 1, { "version", "client_name", "token" }, { W_UINT, W_TEXT, W_TEXT } },
    [PROTO_WELCOME] = { 4, 5, { "version", "node_id", "heartbeat_ms", "max_frame", "heartbeat_timeout_ms",
                                "max_key", "max_subs", "client", "expires_ms" },
                        { W_UINT, W_TEXT, W_UINT, W_UINT, W_UINT, W_UINT, W_UINT, W_TEXT, W_UINT } },
    [PROTO_SUBSCRIBE] = { 3, 1, { "req_id", "topic", "key", "start" },
                          { W_UINT, W_TEXT, W_BYTES, W_PAIR } },
    [PROTO_SUBSCRIBED] = { 3, 0, { "req_id", "feed", "partitions" },
                           { W_UINT, W_UINT, W_ARRAY } },
    [PROTO_UNSUBSCRIBE] = { 2, 0, { "req_id", "feed" }, { W_UINT, W_UINT } },
    [PROTO_UNSUBSCRIBED] = { 2, 0, { "req_id", "feed" }, { W_UINT, W_UINT } },
    [PROTO_MESSAGE] = { 6, 1, { "feed", "partition", "offset", "timestamp_ms", "key", "value",
                                "headers" },
                        { W_UINT, W_UINT, W_UINT, W_INT, W_BYTES, W_BYTES, W_ARRAY } },
    [PROTO_PUBLISH] = { 4, 0, { "req_id", "topic", "key", "value" },
                        { W_UINT, W_TEXT, W_BYTES, W_BYTES } },
    [PROTO_PUBACK] = { 3, 0, { "req_id", "partition", "offset" }, { W_UINT, W_UINT, W_UINT } },
    [PROTO_PING] = { 1, 0, { "token" }, { W_UINT } },
    [PROTO_PONG] = { 1, 0, { "token" }, { W_UINT } },
    [PROTO_ERROR] = { 3, 0, { "req_id", "code", "text" }, { W_UINT, W_UINT, W_TEXT } },
    [PROTO_DROPPED] = { 2, 0, { "feed", "count" }, { W_UINT, W_UINT } },
    [PROTO_GOAWAY] = { 1, 0, { "text" }, { W_TEXT } },
    [PROTO_LIVE] = { 2, 0, { "feed", "positions" }, { W_UINT, W_ARRAY } },
    [PROTO_AUTH] = { 2, 0, { "req_id", "token" }, { W_UINT, W_TEXT } },
    [PROTO_AUTHED] = { 2, 0, { "req_id", "expires_ms" }, { W_UINT, W_UINT } },
};

/* A frame whose body is root's array cut or padded with nil to `count`
 * elements, element `replace` (if < count) swapped for `true`. malloc'd. */
static char *repack(const msgpack_object *root, uint32_t count, uint32_t replace, size_t *len) {
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    assert_int_equal(msgpack_pack_array(&pk, count), 0);
    for (uint32_t i = 0; i < count; i++) {
        if (i == replace)
            msgpack_pack_true(&pk);
        else if (i < root->via.array.size)
            msgpack_pack_object(&pk, root->via.array.ptr[i]);
        else
            msgpack_pack_nil(&pk);
    }
    char *out = malloc(sb.size + 4);
    assert_non_null(out);
    put_be32(out, (uint32_t)sb.size);
    memcpy(out + 4, sb.data, sb.size);
    *len = sb.size + 4;
    msgpack_sbuffer_destroy(&sb);
    return out;
}

static void count_text(char *out, size_t size, uint64_t type, uint32_t got) {
    const sweep_spec *s = &sweep_specs[type];
    if (s->nopt)
        snprintf(out, size, "%s: expected %u or %u fields, got %" PRIu32,
                 proto_type_name(type), s->nfields, s->nfields + s->nopt, got);
    else
        snprintf(out, size, "%s: expected %u field%s, got %" PRIu32, proto_type_name(type),
                 s->nfields, s->nfields == 1 ? "" : "s", got);
}

/* Each golden vector with each field in turn replaced by `true` (wrong for
 * every field), with one field fewer and with one more. */
static void test_field_sweep(void **state) {
    proto_decoder *d = proto_decoder_new(PROTO_DEFAULT_MAX_FRAME);
    assert_non_null(d);
    for (size_t i = 0; i < N_GOLDEN; i++) {
        const golden *g = &goldens[i];
        const sweep_spec *s = &sweep_specs[g->frame.type];
        size_t glen;
        char *gbuf = unhex(g->hex, &glen);
        msgpack_zone z;
        assert_true(msgpack_zone_init(&z, 1024));
        msgpack_object root;
        size_t off = 0;
        assert_int_equal(msgpack_unpack(gbuf + 4, glen - 4, &off, &z, &root),
                         MSGPACK_UNPACK_SUCCESS);
        uint32_t size = root.via.array.size;
        char what[128], text[160];

        for (uint32_t fno = 1; fno < size; fno++) {
            size_t len;
            char *frame = repack(&root, size, fno, &len);
            snprintf(what, sizeof(what), "%s, field %" PRIu32 " = true", g->name, fno);
            snprintf(text, sizeof(text), "%s: field %" PRIu32 " (%s) must be %s",
                     proto_type_name(g->frame.type), fno, s->names[fno - 1],
                     want_text[s->want[fno - 1]]);
            check_error(what, d, frame, len, PROTO_E_BAD_FRAME, text, 0);
            free(frame);
        }

        /* One field fewer: a frame with optional fields stays valid (MESSAGE
         * headers, SUBSCRIBE start, HELLO token, WELCOME's last limit), as
         * the same frame without that field. */
        size_t len;
        char *frame = repack(&root, size - 1, UINT32_MAX, &len);
        snprintf(what, sizeof(what), "%s, last field dropped", g->name);
        if (size - 2 >= s->nfields) {
            proto_frame f;
            size_t consumed;
            if (proto_decode(d, frame, len, &consumed, &f) != PROTO_FRAME)
                fail_msg("%s: %s", what, proto_decoder_errstr(d));
            proto_frame want = g->frame;
            want.headers = NULL;
            want.header_cnt = 0;
            want.start_mode = PROTO_START_NONE;
            want.start_arg = 0;
            want.positions = NULL;
            want.position_cnt = 0;
            want.auth = (proto_bytes){ NULL, 0 };   /* HELLO's token */
            want.expires_ms = 0;                     /* WELCOME's last */
            check_frame(what, &f, &want);
        } else {
            count_text(text, sizeof(text), g->frame.type, size - 2);
            check_error(what, d, frame, len, PROTO_E_BAD_FRAME, text, 0);
        }
        free(frame);

        /* One field more (nil): an optional field that must not be nil, or too many. */
        frame = repack(&root, size + 1, UINT32_MAX, &len);
        snprintf(what, sizeof(what), "%s, nil field added", g->name);
        if (size <= s->nfields + s->nopt)
            snprintf(text, sizeof(text), "%s: field %" PRIu32 " (%s) must be %s",
                     proto_type_name(g->frame.type), size, s->names[size - 1],
                     want_text[s->want[size - 1]]);
        else
            count_text(text, sizeof(text), g->frame.type, size);
        check_error(what, d, frame, len, PROTO_E_BAD_FRAME, text, 0);
        free(frame);

        msgpack_zone_destroy(&z);
        free(gbuf);
    }
    proto_decoder_free(d);
}

/* ===================================================== lenient decoding */

typedef struct lenient_case {
    const char *name;
    const char *body_hex;
    proto_frame frame;
} lenient_case;

/* Encodings no encoder here writes, which decoders must still accept. */
static const lenient_case lenient_cases[] = {
    { "type and token as uint16/uint8", "92 cc0a cd0102",
      { .type = PROTO_PING, .token = 258 } },
    { "positive int8 type and version, bin name", "93 d001 d001 c4026869",
      { .type = PROTO_HELLO, .version = 1, .name = B("hi") } },
    { "uint64 req_id, bin topic, str key", "94 03 cf0000000000000007 c40174 a16b",
      { .type = PROTO_SUBSCRIBE, .req_id = 7, .topic = B("t"), .key = B("k") } },
    { "empty str key is not nil", "94 03 01 a174 a0",
      { .type = PROTO_SUBSCRIBE, .req_id = 1, .topic = B("t"), .key = B("") } },
    { "str16 and str32 topic", "95 08 01 da000174 db0000000174 c0",
      { .type = PROTO_PUBLISH, .req_id = 1, .topic = B("t"), .key = B("t"),
        .value = { NULL, 0 } } },
    { "timestamp INT64_MIN, partition UINT32_MAX",
      "97 07 00 ceffffffff 00 d38000000000000000 c0 c0",
      { .type = PROTO_MESSAGE, .partition = UINT32_MAX, .timestamp_ms = INT64_MIN } },
    { "timestamp INT64_MAX, str value", "97 07 00 00 00 cf7fffffffffffffff c0 a3616263",
      { .type = PROTO_MESSAGE, .timestamp_ms = INT64_MAX, .value = B("abc") } },
    { "timestamp as int16", "97 07 00 00 00 d1fc18 c0 c0",
      { .type = PROTO_MESSAGE, .timestamp_ms = -1000 } },
    { "empty headers array", "98 07 01 02 03 04 c0 c0 90",
      { .type = PROTO_MESSAGE, .feed = 1, .partition = 2, .offset = 3, .timestamp_ms = 4 } },
    { "header name bin, value str", "98 07 01 02 03 04 c0 c0 91 92c4016ba176",
      { .type = PROTO_MESSAGE, .feed = 1, .partition = 2, .offset = 3, .timestamp_ms = 4,
        .headers = (const proto_header[]){ { B("k"), B("v") } }, .header_cnt = 1 } },
    { "partitions as uint32 and uint64", "94 04 01 02 92 ce00000007 cf00000000ffffffff",
      { .type = PROTO_SUBSCRIBED, .req_id = 1, .feed = 2,
        .partitions = (const uint32_t[]){ 7, UINT32_MAX }, .partition_cnt = 2 } },
    { "ERROR with a code this codec does not know", "94 0c 00 cd03e7 a0",
      { .type = PROTO_ERROR, .code = 999, .text = B("") } },
    { "WELCOME with a future version", "95 02 02 a0 00 00",
      { .type = PROTO_WELCOME, .version = 2, .name = B("") } },
    { "max uint64 values", "93 0d cfffffffffffffffff cfffffffffffffffff",
      { .type = PROTO_DROPPED, .feed = UINT64_MAX, .count = UINT64_MAX } },
    { "start mode as uint64, position at the limits as uint64",
      "95 03 01 a174 c0 92 cf0000000000000001 91 92 cf00000000ffffffff cf7fffffffffffffff",
      { .type = PROTO_SUBSCRIBE, .req_id = 1, .topic = B("t"),
        .start_mode = PROTO_START_POSITIONS,
        .positions = (const proto_position[]){ { UINT32_MAX, INT64_MAX } },
        .position_cnt = 1 } },
    { "start positions as array16, repeated partition kept",
      "95 03 01 a174 c0 92 01 dc0002 920102 920103",
      { .type = PROTO_SUBSCRIBE, .req_id = 1, .topic = B("t"),
        .start_mode = PROTO_START_POSITIONS,
        .positions = (const proto_position[]){ { 1, 2 }, { 1, 3 } }, .position_cnt = 2 } },
    { "start timestamp INT64_MIN", "95 03 01 a174 c0 92 02 d38000000000000000",
      { .type = PROTO_SUBSCRIBE, .req_id = 1, .topic = B("t"),
        .start_mode = PROTO_START_TIMESTAMP, .start_arg = INT64_MIN } },
    { "start timestamp INT64_MAX", "95 03 01 a174 c0 92 02 cf7fffffffffffffff",
      { .type = PROTO_SUBSCRIBE, .req_id = 1, .topic = B("t"),
        .start_mode = PROTO_START_TIMESTAMP, .start_arg = INT64_MAX } },
    { "start timestamp 0 as int8", "95 03 01 a174 c0 92 02 d000",
      { .type = PROTO_SUBSCRIBE, .req_id = 1, .topic = B("t"),
        .start_mode = PROTO_START_TIMESTAMP, .start_arg = 0 } },
    { "start beginning 0 as uint64", "95 03 01 a174 c0 92 04 cf0000000000000000",
      { .type = PROTO_SUBSCRIBE, .req_id = 1, .topic = B("t"),
        .start_mode = PROTO_START_BEGINNING } },
    { "start last 0 as int16", "95 03 01 a174 c0 92 03 d10000",
      { .type = PROTO_SUBSCRIBE, .req_id = 1, .topic = B("t"),
        .start_mode = PROTO_START_LAST, .start_arg = 0 } },
    { "start offset INT64_MAX, str key", "95 03 01 a174 a16b 92 05 cf7fffffffffffffff",
      { .type = PROTO_SUBSCRIBE, .req_id = 1, .topic = B("t"), .key = B("k"),
        .start_mode = PROTO_START_OFFSET, .start_arg = INT64_MAX } },
    { "LIVE positions as array32 of int8 and uint32",
      "93 0f 01 dd00000001 92 d007 ce00010000",
      { .type = PROTO_LIVE, .feed = 1,
        .positions = (const proto_position[]){ { 7, 65536 } }, .position_cnt = 1 } },
};

static void test_lenient_decode(void **state) {
    proto_decoder *d = proto_decoder_new(PROTO_DEFAULT_MAX_FRAME);
    assert_non_null(d);
    for (size_t i = 0; i < sizeof(lenient_cases) / sizeof(lenient_cases[0]); i++) {
        const lenient_case *c = &lenient_cases[i];
        size_t len;
        char *frame = frame_of_body(c->body_hex, &len);
        proto_frame f;
        size_t consumed;
        if (proto_decode(d, frame, len, &consumed, &f) != PROTO_FRAME)
            fail_msg("%s: %s", c->name, proto_decoder_errstr(d));
        assert_int_equal(consumed, len);
        check_frame(c->name, &f, &c->frame);
        free(frame);
    }
    proto_decoder_free(d);
}

/* ===================================================== limits */

/* A frame: the body prefix in hex, an array32 header of n, n copies of item. */
static char *big_array_frame(const char *prefix_hex, uint32_t n, const char *item,
                             size_t item_len, size_t *len) {
    size_t plen;
    char *prefix = unhex(prefix_hex, &plen);
    size_t body = plen + 5 + (size_t)n * item_len;
    char *out = malloc(4 + body);
    assert_non_null(out);
    put_be32(out, (uint32_t)body);
    memcpy(out + 4, prefix, plen);
    char *p = out + 4 + plen;
    *p++ = (char)0xdd;
    put_be32(p, n);
    p += 4;
    for (uint32_t i = 0; i < n; i++, p += item_len) memcpy(p, item, item_len);
    free(prefix);
    *len = 4 + body;
    return out;
}

static void test_limits(void **state) {
    proto_decoder *d = proto_decoder_new(PROTO_DEFAULT_MAX_FRAME);
    assert_non_null(d);
    proto_frame f;
    size_t consumed, len;
    char *frame;

    frame = big_array_frame("94 04 01 02", 100000, "\x07", 1, &len);
    assert_int_equal(proto_decode(d, frame, len, &consumed, &f), PROTO_FRAME);
    assert_int_equal(f.partition_cnt, 100000);
    assert_int_equal(f.partitions[99999], 7);
    free(frame);
    frame = big_array_frame("94 04 01 02", 100001, "\x07", 1, &len);
    check_error("100001 partitions", d, frame, len, PROTO_E_BAD_FRAME,
                "SUBSCRIBED: 100001 partitions exceed the 100000 limit", 0);
    free(frame);

    /* SUBSCRIBE start positions and LIVE positions: at most 100000 too. */
    frame = big_array_frame("95 03 01 a174 c0 92 01", 100000, "\x92\x07\x2a", 3, &len);
    assert_int_equal(proto_decode(d, frame, len, &consumed, &f), PROTO_FRAME);
    assert_int_equal(f.start_mode, PROTO_START_POSITIONS);
    assert_int_equal(f.position_cnt, 100000);
    assert_int_equal(f.positions[99999].partition, 7);
    assert_int_equal(f.positions[99999].offset, 42);
    free(frame);
    frame = big_array_frame("95 03 01 a174 c0 92 01", 100001, "\x92\x07\x2a", 3, &len);
    check_error("100001 start positions", d, frame, len, PROTO_E_BAD_FRAME,
                "SUBSCRIBE: 100001 positions exceed the 100000 limit", 0);
    free(frame);
    frame = big_array_frame("93 0f 01", 100000, "\x92\x07\x2a", 3, &len);
    assert_int_equal(proto_decode(d, frame, len, &consumed, &f), PROTO_FRAME);
    assert_int_equal(f.position_cnt, 100000);
    assert_int_equal(f.positions[99999].offset, 42);
    free(frame);
    frame = big_array_frame("93 0f 01", 100001, "\x92\x07\x2a", 3, &len);
    check_error("100001 LIVE positions", d, frame, len, PROTO_E_BAD_FRAME,
                "LIVE: 100001 positions exceed the 100000 limit", 0);
    free(frame);

    frame = big_array_frame("98 07 01 02 03 04 c0 c0", 10000, "\x92\xa1k\xc0", 4, &len);
    assert_int_equal(proto_decode(d, frame, len, &consumed, &f), PROTO_FRAME);
    assert_int_equal(f.header_cnt, 10000);
    assert_int_equal(f.headers[9999].name.len, 1);
    assert_null(f.headers[9999].value.ptr);
    free(frame);
    frame = big_array_frame("98 07 01 02 03 04 c0 c0", 10001, "\x92\xa1k\xc0", 4, &len);
    check_error("10001 headers", d, frame, len, PROTO_E_BAD_FRAME,
                "MESSAGE: 10001 headers exceed the 10000 limit", 0);
    free(frame);

    /* Nesting: 32 containers are msgpack (then a bad frame), 33 are not. */
    char buf[4 + 40];
    memset(buf + 4, 0x91, 32);
    buf[4 + 32] = 0x01;
    put_be32(buf, 33);
    check_error("32 levels", d, buf, 4 + 33, PROTO_E_BAD_FRAME,
                "frame type must be a positive integer", 0);
    buf[4 + 31] = (char)0x90;   /* the 32nd container empty */
    put_be32(buf, 32);
    check_error("32 levels, innermost empty", d, buf, 4 + 32, PROTO_E_BAD_FRAME,
                "frame type must be a positive integer", 0);
    memset(buf + 4, 0x91, 33);
    buf[4 + 33] = 0x01;
    put_be32(buf, 34);
    check_error("33 levels", d, buf, 4 + 34, PROTO_E_MALFORMED,
                "frame body nests deeper than 32 levels", 0);
    buf[4 + 32] = (char)0x90;   /* the 33rd container empty */
    put_be32(buf, 33);
    check_error("33 levels, innermost empty", d, buf, 4 + 33, PROTO_E_MALFORMED,
                "frame body nests deeper than 32 levels", 0);
    memcpy(buf + 4 + 33, "\x81\x01", 2);   /* a map as the 33rd */
    put_be32(buf, 35);
    check_error("33 levels, innermost map", d, buf, 4 + 35, PROTO_E_MALFORMED,
                "frame body nests deeper than 32 levels", 0);

    proto_decoder_free(d);
}

/* Big and small frames in turn: the zone is reused and nothing goes stale. */
static void test_zone_reuse(void **state) {
    proto_decoder *d = proto_decoder_new(PROTO_DEFAULT_MAX_FRAME);
    assert_non_null(d);
    size_t big_len, small_len;
    char *big = big_array_frame("94 04 01 02", 5000, "\xcd\x01\x2c", 3, &big_len);
    char *small = unhex(goldens[0].hex, &small_len);
    for (int i = 0; i < 200; i++) {
        proto_frame f;
        size_t consumed;
        if (i % 3 == 0) {
            assert_int_equal(proto_decode(d, big, big_len, &consumed, &f), PROTO_FRAME);
            assert_int_equal(f.partition_cnt, 5000);
            assert_int_equal(f.partitions[0], 300);
            assert_int_equal(f.partitions[4999], 300);
        } else {
            assert_int_equal(proto_decode(d, small, small_len, &consumed, &f), PROTO_FRAME);
            check_frame("small", &f, &goldens[0].frame);
        }
    }
    free(big);
    free(small);
    proto_decoder_free(d);
    proto_decoder_free(NULL);
}

/* ===================================================== encoder edge cases */

static void test_encode_errors(void **state) {
    proto_buf b;
    proto_buf_init(&b);
    proto_frame ping = { .type = PROTO_PING, .token = 1 };
    assert_int_equal(proto_encode(&b, &ping), 0);
    size_t len0 = b.len;
    char before[16];
    memcpy(before, b.data, len0);

    /* Each refusal leaves the buffer as it was. */
    proto_frame bad[] = {
        { .type = (proto_type)0 },
        { .type = (proto_type)18 },
        { .type = PROTO_SUBSCRIBED, .partitions = NULL, .partition_cnt = 2 },
        { .type = PROTO_SUBSCRIBED, .partitions = (const uint32_t[1]){ 0 },
          .partition_cnt = 100001 },
        { .type = PROTO_MESSAGE, .headers = NULL, .header_cnt = 1 },
        { .type = PROTO_MESSAGE, .headers = (const proto_header[1]){ { B("a"), B("b") } },
          .header_cnt = 10001 },
        /* Version 2: what a decoder would refuse in start and LIVE. */
        { .type = PROTO_SUBSCRIBE, .start_mode = PROTO_START_MAX + 1 },
        { .type = PROTO_SUBSCRIBE, .start_mode = UINT64_MAX },
        { .type = PROTO_SUBSCRIBE, .start_mode = PROTO_START_LAST, .start_arg = -1 },
        { .type = PROTO_SUBSCRIBE, .start_mode = PROTO_START_OFFSET, .start_arg = INT64_MIN },
        { .type = PROTO_SUBSCRIBE, .start_mode = PROTO_START_POSITIONS, .positions = NULL,
          .position_cnt = 1 },
        { .type = PROTO_SUBSCRIBE, .start_mode = PROTO_START_POSITIONS,
          .positions = (const proto_position[1]){ { 0, (uint64_t)INT64_MAX + 1 } },
          .position_cnt = 1 },
        { .type = PROTO_SUBSCRIBE, .start_mode = PROTO_START_POSITIONS,
          .positions = (const proto_position[1]){ { 0, 0 } }, .position_cnt = 100001 },
        { .type = PROTO_LIVE, .positions = NULL, .position_cnt = 2 },
        { .type = PROTO_LIVE, .positions = (const proto_position[2]){ { 0, 0 }, { 1, UINT64_MAX } },
          .position_cnt = 2 },
        { .type = PROTO_LIVE, .positions = (const proto_position[1]){ { 0, 0 } },
          .position_cnt = 100001 },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (proto_encode(&b, &bad[i]) != -1) fail_msg("bad frame %zu was encoded", i);
        assert_int_equal(b.len, len0);
        assert_memory_equal(b.data, before, len0);
    }

    /* Text is never nil on the wire: NULL text goes out as "". */
    proto_buf_reset(&b);
    assert_int_equal(b.len, 0);
    proto_frame goaway = { .type = PROTO_GOAWAY };
    assert_int_equal(proto_encode(&b, &goaway), 0);
    assert_int_equal(b.len, 7);
    assert_memory_equal(b.data, "\x00\x00\x00\x03\x92\x0e\xa0", 7);
    proto_frame hdr = { .type = PROTO_MESSAGE, .header_cnt = 1,
                        .headers = (const proto_header[1]){ { { NULL, 0 }, { NULL, 0 } } } };
    proto_buf_reset(&b);
    assert_int_equal(proto_encode(&b, &hdr), 0);
    assert_int_equal(b.len, 16);
    assert_memory_equal(b.data, "\x00\x00\x00\x0c\x98\x07\x00\x00\x00\x00\xc0\xc0\x91\x92\xa0\xc0",
                        16);

    /* headers set but header_cnt 0: no headers element. */
    proto_frame nohdr = { .type = PROTO_MESSAGE, .headers = headers_a, .header_cnt = 0 };
    proto_buf_reset(&b);
    assert_int_equal(proto_encode(&b, &nohdr), 0);
    assert_int_equal(b.len, 12);
    assert_memory_equal(b.data, "\x00\x00\x00\x08\x97\x07\x00\x00\x00\x00\xc0\xc0", 12);

    /* positions set but no start mode: no start element. */
    proto_frame nostart = { .type = PROTO_SUBSCRIBE, .topic = B("t"),
                            .positions = start_positions_a, .position_cnt = 2 };
    proto_buf_reset(&b);
    assert_int_equal(proto_encode(&b, &nostart), 0);
    assert_int_equal(b.len, 10);
    assert_memory_equal(b.data, "\x00\x00\x00\x06\x94\x03\x00\xa1t\xc0", 10);
    /* BEGINNING always goes out with 0, whatever start_arg holds. */
    proto_frame begin = { .type = PROTO_SUBSCRIBE, .topic = B("t"), .key = { NULL, 0 },
                          .start_mode = PROTO_START_BEGINNING, .start_arg = 5 };
    proto_buf_reset(&b);
    assert_int_equal(proto_encode(&b, &begin), 0);
    assert_int_equal(b.len, 13);
    assert_memory_equal(b.data, "\x00\x00\x00\x09\x95\x03\x00\xa1t\xc0\x92\x04\x00", 13);

    proto_buf_free(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    proto_buf_free(&b);
    proto_buf_free(NULL);
}

/* A large value goes out with 32-bit lengths and comes back intact. */
static void test_round_trip_large(void **state) {
    size_t vlen = 70000;
    char *v = malloc(vlen);
    assert_non_null(v);
    for (size_t i = 0; i < vlen; i++) v[i] = (char)(i * 7);
    proto_frame m = { .type = PROTO_PUBLISH, .req_id = 1, .topic = B("t"),
                      .key = B("k"), .value = { v, vlen } };
    proto_buf b = { 0 };
    assert_int_equal(proto_encode(&b, &m), 0);
    assert_int_equal(proto_peek_length(b.data), b.len - 4);
    assert_int_equal((unsigned char)b.data[4 + 1 + 1 + 1 + 2 + 3], 0xc6);   /* bin32 */

    proto_decoder *d = proto_decoder_new(PROTO_DEFAULT_MAX_FRAME);
    assert_non_null(d);
    proto_frame f;
    size_t consumed;
    assert_int_equal(proto_decode(d, b.data, b.len, &consumed, &f), PROTO_FRAME);
    check_frame("large PUBLISH", &f, &m);
    proto_decoder_free(d);
    proto_buf_free(&b);
    free(v);
}

/* ===================================================== names and helpers */

static void test_names(void **state) {
    static const char *const types[] = {
        "UNKNOWN", "HELLO", "WELCOME", "SUBSCRIBE", "SUBSCRIBED", "UNSUBSCRIBE",
        "UNSUBSCRIBED", "MESSAGE", "PUBLISH", "PUBACK", "PING", "PONG", "ERROR", "DROPPED",
        "GOAWAY", "LIVE", "AUTH", "AUTHED", "UNKNOWN",
    };
    for (uint64_t t = 0; t < sizeof(types) / sizeof(types[0]); t++)
        assert_string_equal(proto_type_name(t), types[t]);
    assert_string_equal(proto_type_name(UINT64_MAX), "UNKNOWN");

    static const char *const errs[] = {
        "NONE", "VERSION", "FRAME_TOO_LARGE", "MALFORMED", "BAD_FRAME", "UNKNOWN_TYPE",
        "HELLO_REQUIRED", "TOO_MANY_SUBS", "TOO_MANY_CONNS", "INVALID_ARG", "UNKNOWN_TOPIC",
        "ALREADY_SUBSCRIBED", "NOT_SUBSCRIBED", "KAFKA", "HEARTBEAT_TIMEOUT", "SLOW_CONSUMER",
        "SHUTTING_DOWN", "UNAVAILABLE", "INTERNAL", "UNAUTHORIZED", "FORBIDDEN", "UNKNOWN",
    };
    for (uint64_t e = 0; e < sizeof(errs) / sizeof(errs[0]); e++)
        assert_string_equal(proto_err_name(e), errs[e]);
    assert_string_equal(proto_err_name(UINT64_MAX), "UNKNOWN");
    assert_int_equal(PROTO_ERR_MAX, 20);
    assert_int_equal(PROTO_TYPE_MAX, 17);
}

static void test_peek_length(void **state) {
    assert_int_equal(proto_peek_length("\x00\x00\x00\x00"), 0);
    assert_int_equal(proto_peek_length("\x00\x10\x00\x00"), 1048576);
    assert_int_equal(proto_peek_length("\xff\xfe\xfd\xfc"), 0xfffefdfcu);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden_covers_every_type),
        cmocka_unit_test(test_golden_covers_every_start_mode),
        cmocka_unit_test(test_golden_encode),
        cmocka_unit_test(test_golden_decode),
        cmocka_unit_test(test_golden_partial),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_back_to_back),
        cmocka_unit_test(test_oversize),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_field_sweep),
        cmocka_unit_test(test_lenient_decode),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_zone_reuse),
        cmocka_unit_test(test_encode_errors),
        cmocka_unit_test(test_round_trip_large),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_peek_length),
    };
    return cmocka_run_group_tests_name("proto", tests, group_setup, group_teardown);
}
