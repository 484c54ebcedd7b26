/* fuzz_proto.c -- libFuzzer target: proto_decode() on any byte stream, and encode(decode(x)) decodes back to itself. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/proto.h"
#include "tests/fuzz/fuzz.h"


/* Before HELLO a node decodes with 16 KiB, after it with --max-frame;
 * round trips get room for anything an encoder may write. */
static proto_decoder *hello_dec, *conn_dec, *rt_dec;
static proto_buf e1, e2;

/* f was just decoded: encoding it must work (a node echoes and relays
 * what it decodes), and decoding that encoding and encoding again must
 * give the same bytes (the encoder's output is a fixed point). */
static void round_trip(const proto_frame *f) {
    proto_buf_reset(&e1);
    proto_buf_reset(&e2);
    CHECK(proto_encode(&e1, f) == 0);
    size_t used = 0;
    proto_frame g;
    CHECK(proto_decode(rt_dec, e1.data, e1.len, &used, &g) == PROTO_FRAME);
    CHECK(used == e1.len);
    CHECK(g.type == f->type);
    CHECK(proto_encode(&e2, &g) == 0);
    CHECK(e2.len == e1.len && memcmp(e1.data, e2.data, e1.len) == 0);
}

static void decode_stream(proto_decoder *d, const uint8_t *data, size_t size) {
    size_t off = 0;
    for (int frames = 0; frames < 64 && off <= size; frames++) {
        size_t used = 12345;
        proto_frame f;
        proto_status st = proto_decode(d, (const char *)data + off, size - off, &used, &f);
        if (st == PROTO_NEED_MORE) {
            CHECK(used == 0);
            return;
        }
        if (st == PROTO_FRAME) {
            CHECK(used > PROTO_HEADER_SIZE && used <= size - off);
            CHECK(f.type >= 1 && f.type <= PROTO_TYPE_MAX);
            /* Any shorter prefix of a whole frame is not yet a frame. */
            size_t cut = used / 2;
            size_t u2;
            proto_frame h;
            CHECK(proto_decode(rt_dec, (const char *)data + off, cut, &u2, &h) == PROTO_NEED_MORE);
            round_trip(&f);
            off += used;
            continue;
        }
        CHECK(st == PROTO_BAD_INPUT);
        proto_err code = proto_decoder_err(d);
        CHECK(code > PROTO_E_NONE && code <= PROTO_ERR_MAX);
        CHECK(proto_decoder_errstr(d)[0] != '\0');
        if (code != PROTO_E_UNKNOWN_TYPE) {
            CHECK(used == 0);
            return;
        }
        CHECK(used > PROTO_HEADER_SIZE && used <= size - off);
        off += used;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!hello_dec) {
        hello_dec = proto_decoder_new(16384);
        conn_dec = proto_decoder_new(PROTO_DEFAULT_MAX_FRAME);
        rt_dec = proto_decoder_new((size_t)1 << 26);
        CHECK(hello_dec && conn_dec && rt_dec);
        proto_buf_init(&e1);
        proto_buf_init(&e2);
    }
    decode_stream(hello_dec, data, size);
    decode_stream(conn_dec, data, size);
    return 0;
}
