/* test_outq.c -- output queues: shared blocks, reference counts, partial writes over a real socket, slices for TLS. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>

#include <cmocka.h>

#include "broker/outq.h"

static outq_block *block_of(const char *s, uint32_t records) {
    size_t n = strlen(s);
    char *d = malloc(n);
    memcpy(d, s, n);
    return outq_block_adopt(d, n, n, records);
}

static void test_shared_block_refcount(void **state) {
    outq a, b;
    outq_init(&a);
    outq_init(&b);
    outq_block *blk = block_of("hello", 1);
    outq_push(&a, blk);
    outq_push(&b, blk);
    assert_int_equal(blk->refs, 3);
    /* both queues point at the same bytes: no copy per subscriber */
    assert_ptr_equal(a.ring[0].block->data, b.ring[0].block->data);
    outq_block_unref(blk);
    assert_int_equal(blk->refs, 2);
    outq_clear(&a);
    assert_int_equal(blk->refs, 1);
    assert_int_equal(b.bytes, 5);
    outq_clear(&b);               /* frees it; ASan would flag a leak or double free */
}

static void test_copy_appends_to_private_block(void **state) {
    outq q;
    outq_init(&q);
    outq_push_copy(&q, "ab", 2);
    outq_push_copy(&q, "cd", 2);
    assert_int_equal(q.count, 1);
    assert_int_equal(q.bytes, 4);
    assert_memory_equal(q.ring[0].block->data, "abcd", 4);
    /* a shared record block in between is never appended to */
    outq_block *blk = block_of("REC", 1);
    outq_push(&q, blk);
    outq_block_unref(blk);
    outq_push_copy(&q, "ef", 2);
    assert_int_equal(q.count, 3);
    assert_int_equal(q.bytes, 9);
    outq_clear(&q);
}

static void test_ring_growth_keeps_order(void **state) {
    outq q;
    outq_init(&q);
    char buf[8];
    int fds[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    for (int i = 0; i < 100; i++) {
        snprintf(buf, sizeof(buf), "%02d", i);
        outq_block *blk = block_of(buf, 1);
        outq_push(&q, blk);
        outq_block_unref(blk);
    }
    assert_int_equal(outq_write(&q, fds[0]), 200);
    assert_int_equal(q.count, 0);
    char got[201] = {0};
    assert_int_equal(read(fds[1], got, 200), 200);
    for (int i = 0; i < 100; i++) {
        snprintf(buf, sizeof(buf), "%02d", i);
        assert_memory_equal(got + 2 * i, buf, 2);
    }
    outq_clear(&q);
    close(fds[0]);
    close(fds[1]);
}

static void test_partial_writes_resume(void **state) {
    int fds[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    int small = 4096;
    setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
    fcntl(fds[0], F_SETFL, O_NONBLOCK);
    size_t n = 1 << 20;
    char *big = malloc(n);
    for (size_t i = 0; i < n; i++) big[i] = (char)(i * 7);
    outq q;
    outq_init(&q);
    outq_block *blk = outq_block_adopt(big, n, n, 1);
    outq_push(&q, blk);
    outq_block_unref(blk);
    char *got = malloc(n);
    size_t have = 0;
    int rounds = 0;
    while (q.bytes > 0) {
        ssize_t w = outq_write(&q, fds[0]);
        assert_true(w >= 0);
        ssize_t r = read(fds[1], got + have, n - have);
        assert_true(r > 0);
        have += (size_t)r;
        rounds++;
    }
    while (have < n) {
        ssize_t r = read(fds[1], got + have, n - have);
        assert_true(r > 0);
        have += (size_t)r;
    }
    assert_true(rounds > 1);      /* it really was partial */
    assert_int_equal(q.count, 0);
    for (size_t i = 0; i < n; i++)
        if (got[i] != (char)(i * 7)) fail_msg("byte %zu differs", i);
    free(got);
    outq_clear(&q);
    close(fds[0]);
    close(fds[1]);
}

static void test_write_error_reported(void **state) {
    int fds[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    close(fds[1]);
    outq q;
    outq_init(&q);
    outq_push_copy(&q, "x", 1);
    signal(SIGPIPE, SIG_IGN);
    assert_int_equal(outq_write(&q, fds[0]), -1);
    outq_clear(&q);
    close(fds[0]);
}


/* Three frames of 6, 2 and 6 body bytes: 10 + 6 + 10 bytes in one block. */
static outq_block *three_frames(void) {
    static const char f[] = "\0\0\0\6abcdef" "\0\0\0\2gh" "\0\0\0\6ijklmn";
    char *d = malloc(sizeof(f) - 1);
    memcpy(d, f, sizeof(f) - 1);
    return outq_block_adopt(d, sizeof(f) - 1, sizeof(f) - 1, 3);
}

static void test_peek_and_consume_walk_slices(void **state) {
    outq q;
    outq_init(&q);
    outq_block *blk = three_frames();
    outq_push_slice(&q, blk, 10, 6);   /* the middle frame only */
    outq_push(&q, blk);
    outq_block_unref(blk);
    const char *p;
    assert_int_equal(outq_peek(&q, &p), 6);
    assert_memory_equal(p, "\0\0\0\2gh", 6);
    outq_consume(&q, 4);
    assert_int_equal(outq_peek(&q, &p), 2);
    assert_memory_equal(p, "gh", 2);
    outq_consume(&q, 2 + 10);          /* the rest of one reference and part of the next */
    assert_int_equal(q.count, 1);
    assert_int_equal(q.bytes, 16);
    assert_int_equal(outq_peek(&q, &p), 16);
    assert_memory_equal(p, "\0\0\0\2gh", 6);
    outq_consume(&q, 16);
    assert_int_equal(outq_peek(&q, &p), 0);
    assert_int_equal(q.count, 0);
    outq_clear(&q);
}

/* After a WANT_WRITE the pinned bytes must survive a cut: a closing ERROR
 * goes after the end of the last frame they touch, not before. */
static void test_cut_keeps_pinned_bytes(void **state) {
    static const struct {
        size_t consumed, pinned, left; /* left: bytes queued after the cut (the ERROR not counted) */
    } cases[] = {
        {0, 0, 0},                    /* nothing started: everything goes */
        {0, 5, 10},                   /* pinned inside frame 1: frame 1 stays */
        {0, 10, 10},                  /* pinned exactly frame 1 */
        {0, 11, 16},                  /* one byte into frame 2: frame 2 stays too */
        {3, 0, 7},                    /* mid frame 1, nothing pinned: its rest */
        {3, 10, 13},                  /* mid frame 1, pinned into frame 2 */
        {10, 16, 16},                 /* frames 2 and 3 pinned whole */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        outq q;
        outq_init(&q);
        outq_block *blk = three_frames();
        outq_push(&q, blk);
        outq_block_unref(blk);
        outq_push_copy(&q, "more", 4);
        outq_consume(&q, cases[i].consumed);
        outq_pin(&q, cases[i].pinned);
        outq_cut_after_frame(&q);
        if (q.bytes != cases[i].left) fail_msg("case %zu: %zu bytes left, want %zu", i, q.bytes, cases[i].left);
        outq_consume(&q, q.bytes);
        assert_int_equal(q.pinned, 0);
        outq_clear(&q);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shared_block_refcount),
        cmocka_unit_test(test_copy_appends_to_private_block),
        cmocka_unit_test(test_ring_growth_keeps_order),
        cmocka_unit_test(test_partial_writes_resume),
        cmocka_unit_test(test_write_error_reported),
        cmocka_unit_test(test_peek_and_consume_walk_slices),
        cmocka_unit_test(test_cut_keeps_pinned_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
