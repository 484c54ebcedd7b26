/* test_partitioner.c -- murmur2 and crc32 against the Kafka Java client's and librdkafka's known values. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "broker/partitioner.h"

/* Values from the Kafka Java client's UtilsTest.testMurmur2. */
static const struct {
    const char *key;
    int32_t hash;
} java_murmur2[] = {
    {"21", -973932308},
    {"foobar", -790332482},
    {"a-little-bit-long-string", -985981536},
    {"a-little-bit-longer-string", -1486304829},
    {"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971},
    {"abc", 479470107},
};

static void test_murmur2_java_values(void **state) {
    for (size_t i = 0; i < sizeof(java_murmur2) / sizeof(java_murmur2[0]); i++)
        assert_int_equal(partitioner_murmur2(java_murmur2[i].key, strlen(java_murmur2[i].key)), java_murmur2[i].hash);
}

static void test_murmur2_partition_is_to_positive_mod(void **state) {
    /* toPositive(-973932308) = -973932308 & 0x7fffffff = 1173551340 */
    assert_int_equal(partitioner_partition(PARTITIONER_MURMUR2, "21", 2, 12), 1173551340 % 12);
    assert_int_equal(partitioner_partition(PARTITIONER_MURMUR2, "abc", 3, 7), 479470107 % 7);
    /* every tail length (0..3 extra bytes) lands in range */
    for (size_t len = 1; len <= 9; len++) {
        int32_t p = partitioner_partition(PARTITIONER_MURMUR2, "123456789", len, 5);
        assert_true(p >= 0 && p < 5);
    }
}

static void test_crc32_known_values(void **state) {
    /* IEEE CRC-32 check value, and zlib.crc32(b"user-1"). */
    assert_int_equal(partitioner_crc32("123456789", 9), 0xcbf43926u);
    assert_int_equal(partitioner_crc32("", 0), 0);
    assert_int_equal(partitioner_partition(PARTITIONER_CRC32, "123456789", 9, 6), (int32_t)(0xcbf43926u % 6));
}

static void test_all_and_bad_counts(void **state) {
    assert_int_equal(partitioner_partition(PARTITIONER_ALL, "k", 1, 6), -1);
    assert_int_equal(partitioner_partition(PARTITIONER_MURMUR2, "k", 1, 0), -1);
}

static void test_names(void **state) {
    assert_int_equal(partitioner_parse("murmur2"), PARTITIONER_MURMUR2);
    assert_int_equal(partitioner_parse("crc32"), PARTITIONER_CRC32);
    assert_int_equal(partitioner_parse("all"), PARTITIONER_ALL);
    assert_int_equal(partitioner_parse("random"), -1);
    assert_string_equal(partitioner_name(PARTITIONER_CRC32), "crc32");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_murmur2_java_values),
        cmocka_unit_test(test_murmur2_partition_is_to_positive_mod),
        cmocka_unit_test(test_crc32_known_values),
        cmocka_unit_test(test_all_and_bad_counts),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
