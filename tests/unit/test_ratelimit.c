/* test_ratelimit.c -- the token bucket behind --publish-rate: burst, refill, debt, unlimited. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "broker/ratelimit.h"

static void test_burst_of_one_second_then_wait(void **state) {
    ratelimit r;
    ratelimit_init(&r, 100, 1000);
    for (int i = 0; i < 99; i++) assert_int_equal(ratelimit_take(&r, 1, 1000), 0);
    /* The 100th empties the bucket: input waits until it refills. */
    assert_int_equal(ratelimit_take(&r, 1, 1000), 1);
    assert_true(ratelimit_wait_ms(&r, 1000) > 0);
    assert_int_equal(ratelimit_wait_ms(&r, 1011), 0);
}

static void test_refill_is_capped_at_one_burst(void **state) {
    ratelimit r;
    ratelimit_init(&r, 10, 0);
    assert_int_equal(ratelimit_take(&r, 10, 0), 1);
    /* An hour idle still allows only one second's worth. */
    assert_int_equal(ratelimit_take(&r, 9, 3600000), 0);
    assert_true(ratelimit_take(&r, 1, 3600000) > 0);
}

static void test_a_request_larger_than_the_burst_costs_a_second(void **state) {
    ratelimit r;
    ratelimit_init(&r, 1000, 0);
    assert_int_equal(ratelimit_take(&r, 1u << 30, 0), 1); /* a huge PUBLISH goes through */
    assert_true(ratelimit_take(&r, 1u << 30, 0) > 900);  /* the debt: about a second */
    assert_int_equal(ratelimit_wait_ms(&r, 2001), 0);
}

static void test_rate_zero_is_unlimited(void **state) {
    ratelimit r;
    ratelimit_init(&r, 0, 0);
    for (int i = 0; i < 100000; i++) assert_int_equal(ratelimit_take(&r, 1u << 20, 0), 0);
}

static void test_clock_going_back_is_harmless(void **state) {
    ratelimit r;
    ratelimit_init(&r, 10, 5000);
    assert_int_equal(ratelimit_take(&r, 10, 5000), 1);
    assert_true(ratelimit_wait_ms(&r, 4000) > 0);    /* no refill, no wrap-around */
    assert_int_equal(ratelimit_wait_ms(&r, 5101), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_burst_of_one_second_then_wait),
        cmocka_unit_test(test_refill_is_capped_at_one_burst),
        cmocka_unit_test(test_a_request_larger_than_the_burst_costs_a_second),
        cmocka_unit_test(test_rate_zero_is_unlimited),
        cmocka_unit_test(test_clock_going_back_is_harmless),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
