/* test_outq.c -- output queues: shared blocks, reference counts, partial writes over a real socket. */
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

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shared_block_refcount),
        cmocka_unit_test(test_copy_appends_to_private_block),
        cmocka_unit_test(test_ring_growth_keeps_order),
        cmocka_unit_test(test_partial_writes_resume),
        cmocka_unit_test(test_write_error_reported),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
