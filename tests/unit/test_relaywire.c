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
    int64_t from[3] = {-1, 7, 20};
    int64_t pairs[] = {0, 5, 1, 9, 2, 21};           /* partition 0: no from yet */
    relaywire_records(&b, "node-1", from, pairs, 3, "\x01\x02", 2);
    const char *want = "R node-1 0:-1:5 1:7:9 2:20:21\n\x01\x02";
    assert_int_equal(b.len, strlen("R node-1 0:-1:5 1:7:9 2:20:21\n") + 2);
    assert_memory_equal(b.data, want, b.len);
    const char *owner;
    size_t olen, body;
    assert_int_equal(relaywire_parse(b.data, b.len, &owner, &olen, &body), RELAYWIRE_RECORDS);
    assert_int_equal(olen, 6);
    assert_memory_equal(owner, "node-1", 6);
    assert_int_equal(body, b.len - 2);
    relaywire_pos pos[4];
    assert_int_equal(relaywire_positions(b.data, body, pos, 4), 3);
    assert_int_equal(pos[0].partition, 0);
    assert_int_equal(pos[0].from, -1);
    assert_int_equal(pos[0].to, 5);
    assert_int_equal(pos[1].partition, 1);
    assert_int_equal(pos[1].from, 7);
    assert_int_equal(pos[1].to, 9);
    assert_int_equal(pos[2].partition, 2);
    assert_int_equal(pos[2].from, 20);
    assert_int_equal(pos[2].to, 21);
    assert_int_equal(relaywire_positions(b.data, body, pos, 1), 1);   /* at most max */

    int64_t at[] = {3, 100};
    relaywire_sync(&b, "n2", at, 1);                /* resets: the buffer is reused */
    assert_int_equal(b.len, 11);
    assert_memory_equal(b.data, "S n2 3:100\n", 11);
    assert_int_equal(relaywire_parse(b.data, b.len, &owner, &olen, &body), RELAYWIRE_SYNC);
    assert_int_equal(olen, 2);
    assert_int_equal(body, b.len);
    assert_int_equal(relaywire_positions(b.data, body, pos, 4), 1);
    assert_int_equal(pos[0].partition, 3);
    assert_int_equal(pos[0].from, 100);
    assert_int_equal(pos[0].to, 100);

    relaywire_sync(&b, "n2", at, 0);
    assert_memory_equal(b.data, "S n2\n", 5);
    assert_int_equal(relaywire_parse(b.data, b.len, &owner, &olen, &body), RELAYWIRE_SYNC);
    assert_int_equal(relaywire_positions(b.data, body, pos, 4), 0);

    relaywire_check(&b, "n2", at, 1);
    assert_memory_equal(b.data, "C n2 3:100\n", 11);
    assert_int_equal(relaywire_parse(b.data, b.len, &owner, &olen, &body), RELAYWIRE_CHECK);
    assert_int_equal(relaywire_positions(b.data, body, pos, 4), 1);

    relaywire_gone(&b, "n3");
    assert_memory_equal(b.data, "G n3\n", 5);
    assert_int_equal(relaywire_parse(b.data, b.len, &owner, &olen, &body), RELAYWIRE_GONE);
    proto_buf_free(&b);
}

static void test_positions_refuse_garbage(void **state) {
    static const char *const bad[] = {
        "R n1 x\n", "R n1 1\n", "R n1 1:\n", "R n1 1:2:\n", "R n1 1:2:3x\n", "R n1 -1:2\n",
        "R n1 1:99999999999999999999\n",
    };
    relaywire_pos pos[4];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *owner;
        size_t olen, body;
        assert_int_equal(relaywire_parse(bad[i], strlen(bad[i]), &owner, &olen, &body), RELAYWIRE_RECORDS);
        assert_int_equal(relaywire_positions(bad[i], body, pos, 4), -1);
    }
}

static void test_parse_refuses_what_is_not_relay_bytes(void **state) {
    static const struct {
        const char *data;
        size_t len;
    } bad[] = {
        {"", 0}, {"R", 1}, {"R ", 2}, {"R \n", 3},  /* no owner */
        {"R n1", 4},                                /* no newline */
        {"Rn1\n", 4}, {"X n1\n", 5}, {"r n1\n", 5}, {"R  1:2\n", 7}, /* empty owner */
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
        cmocka_unit_test(test_positions_refuse_garbage),
        cmocka_unit_test(test_resume_offsets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
