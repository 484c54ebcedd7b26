/* test_relaywire.c -- the relay's bytes: markers encoded and parsed, and where a successor resumes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "broker/relaywire.h"

static void test_records_and_sync_round_trip(void **state) {
    proto_buf b;
    proto_buf_init(&b);
    relaywire_records(&b, "node-1", "\x01\x02", 2);
    assert_int_equal(b.len, 11);
    assert_memory_equal(b.data, "R node-1\n\x01\x02", 11);
    const char *owner;
    size_t olen, body;
    assert_int_equal(relaywire_parse(b.data, b.len, &owner, &olen, &body), RELAYWIRE_RECORDS);
    assert_int_equal(olen, 6);
    assert_memory_equal(owner, "node-1", 6);
    assert_int_equal(body, 9);
    relaywire_sync(&b, "n2");                       /* resets: the buffer is reused */
    assert_int_equal(b.len, 5);
    assert_memory_equal(b.data, "S n2\n", 5);
    assert_int_equal(relaywire_parse(b.data, b.len, &owner, &olen, &body), RELAYWIRE_SYNC);
    assert_int_equal(body, b.len);
    proto_buf_free(&b);
}

static void test_parse_refuses_what_is_not_relay_bytes(void **state) {
    static const struct {
        const char *data;
        size_t len;
    } bad[] = {
        {"", 0}, {"R", 1}, {"R ", 2}, {"R \n", 3},  /* no owner */
        {"R n1", 4},                                /* no newline */
        {"Rn1\n", 4}, {"X n1\n", 5}, {"r n1\n", 5},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *owner = NULL;
        size_t olen = 0, body = 0;
        assert_int_equal(relaywire_parse(bad[i].data, bad[i].len, &owner, &olen, &body), RELAYWIRE_BAD);
    }
}

static void test_resume_offsets(void **state) {
    tpart parts[4];
    memset(parts, 0, sizeof(parts));
    for (int i = 0; i < 4; i++) parts[i].next = parts[i].head = parts[i].rewind = -1;
    int64_t next_off[4] = {10, -1, 30, 40};
    parts[0].state = PART_ASSIGNED, parts[0].next = 15;   /* consumer further on: take it */
    parts[2].state = PART_ASSIGNED, parts[2].next = 20;   /* behind the feed: the feed's own */
    parts[3].state = PART_QUERYING, parts[3].next = 99;   /* not assigned: not the consumer's */
    int64_t out[8];
    size_t n = relaywire_resume_offsets(next_off, parts, 0, 3, 1, out, 4);
    assert_int_equal(n, 3);                                /* partition 1 unknown: left out */
    int64_t want[] = {0, 15, 2, 30, 3, 40};
    assert_memory_equal(out, want, sizeof(want));
    n = relaywire_resume_offsets(next_off, parts, 0, 3, 0, out, 4);   /* a relay: its own only */
    assert_int_equal(n, 3);
    assert_int_equal(out[1], 10);
    n = relaywire_resume_offsets(next_off, parts, 2, 3, 1, out, 1);   /* bounded */
    assert_int_equal(n, 1);
    assert_int_equal(out[0], 2);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_records_and_sync_round_trip),
        cmocka_unit_test(test_parse_refuses_what_is_not_relay_bytes),
        cmocka_unit_test(test_resume_offsets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
