/* test_config.c -- node options: defaults, flags, config files, validation messages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include <cmocka.h>

#include "broker/config.h"

static int parse(config *c, char *err, size_t errlen, int argc, char **argv) {
    assert_int_equal(config_defaults(c), 0);
    return config_parse_args(c, argc, argv, err, errlen);
}

static void test_defaults(void **state) {
    config c;
    assert_int_equal(config_defaults(&c), 0);
    assert_string_equal(c.listen, "127.0.0.1:7700");
    assert_string_equal(c.admin, "127.0.0.1:7701");
    assert_int_equal(c.heartbeat_ms, 5000);
    assert_int_equal(config_heartbeat_timeout_ms(&c), 15000);
    c.heartbeat_ms = 200;                          /* the timeout follows the interval */
    assert_int_equal(config_heartbeat_timeout_ms(&c), 600);
    c.heartbeat_timeout_ms = 1000;                 /* unless given */
    assert_int_equal(config_heartbeat_timeout_ms(&c), 1000);
    c.heartbeat_ms = 5000;
    c.heartbeat_timeout_ms = 0;
    assert_int_equal(c.max_frame, 1048576);
    assert_int_equal(c.max_subs, 1024);
    assert_int_equal(c.max_conns, 10000);
    assert_int_equal(c.out_soft_limit, 1048576);
    assert_int_equal(c.out_hard_limit, 8388608);
    assert_int_equal(c.linger_ms, 5000);
    assert_null(c.kafka);
    config_free(&c);
}

static void test_flags_both_forms(void **state) {
    config c;
    char err[256];
    char *argv[] = {"subway", "--kafka", "k:9092", "--max-subs=7", "--partitioner", "t=crc32",
                    "--partitioner=u=all", "--kafka-opt", "fetch.wait.max.ms=5", NULL};
    assert_int_equal(parse(&c, err, sizeof(err), 9, argv), 0);
    assert_string_equal(c.kafka, "k:9092");
    assert_int_equal(c.max_subs, 7);
    assert_int_equal(c.partitioner_cnt, 2);
    assert_string_equal(c.partitioners[1].name, "u");
    assert_string_equal(c.partitioners[1].value, "all");
    assert_string_equal(c.kafka_opts[0].name, "fetch.wait.max.ms");
    assert_int_equal(config_validate(&c, err, sizeof(err)), 0);
    config_free(&c);
}

static void test_no_kafka_names_both_choices(void **state) {
    config c;
    char err[256];
    char *argv[] = {"subway", NULL};
    assert_int_equal(parse(&c, err, sizeof(err), 1, argv), 0);
    assert_int_equal(config_validate(&c, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "--kafka"));
    assert_non_null(strstr(err, "--dev"));
    config_free(&c);
}

static void test_bad_values(void **state) {
    config c;
    char err[256];
    char *a1[] = {"subway", "--max-frame", "-3", NULL};
    assert_int_equal(parse(&c, err, sizeof(err), 3, a1), -1);
    assert_string_equal(err, "--max-frame: '-3' is not a non-negative integer");
    config_free(&c);
    char *a2[] = {"subway", "--bogus", NULL};
    assert_int_equal(parse(&c, err, sizeof(err), 2, a2), -1);
    assert_string_equal(err, "unknown option '--bogus' (see --help)");
    config_free(&c);
    char *a3[] = {"subway", "--dev", "--partitioner", "t=random", NULL};
    assert_int_equal(parse(&c, err, sizeof(err), 4, a3), 0);
    assert_int_equal(config_validate(&c, err, sizeof(err)), -1);
    assert_string_equal(err, "--partitioner t: 'random' is not murmur2, crc32 or all");
    config_free(&c);
    char *a4[] = {"subway", "--dev", "--out-soft-limit", "10", "--out-hard-limit", "5", NULL};
    assert_int_equal(parse(&c, err, sizeof(err), 6, a4), 0);
    assert_int_equal(config_validate(&c, err, sizeof(err)), -1);
    assert_string_equal(err, "--out-hard-limit must be >= --out-soft-limit >= 1");
    config_free(&c);
    /* A key sized like the frame limit once reached the stack. */
    char *a5[] = {"subway", "--dev", "--max-frame", "67108864", "--max-key", "65537", NULL};
    assert_int_equal(parse(&c, err, sizeof(err), 6, a5), 0);
    assert_int_equal(config_validate(&c, err, sizeof(err)), -1);
    assert_string_equal(err, "--max-key must be at most 65536 bytes (got 65537)");
    config_free(&c);
    char *a6[] = {"subway", "--dev", "--max-key", "65536", NULL};
    assert_int_equal(parse(&c, err, sizeof(err), 4, a6), 0);
    assert_int_equal(config_validate(&c, err, sizeof(err)), 0);
    config_free(&c);
}

/* The TLS options come as a set: each refusal names what is missing. */
static void test_tls_combinations(void **state) {
    static const struct {
        const char *args[8];
        const char *err;          /* NULL: valid */
    } cases[] = {
        {{"--tls-listen", "127.0.0.1:7702"}, "--tls-listen needs --tls-cert-file and --tls-key-file"},
        {{"--tls-listen", "127.0.0.1:7702", "--tls-cert-file", "c.pem"}, "--tls-listen needs --tls-cert-file and --tls-key-file"},
        {{"--tls-cert-file", "c.pem", "--tls-key-file", "k.pem"},
         "--tls-cert-file, --tls-key-file, --tls-ca-file and --tls-ktls need --tls-listen"},
        {{"--tls-ktls"}, "--tls-cert-file, --tls-key-file, --tls-ca-file and --tls-ktls need --tls-listen"},
        {{"--tls-listen", "127.0.0.1:7702", "--tls-cert-file", "c.pem", "--tls-key-file", "k.pem"}, NULL},
        {{"--tls-listen", "127.0.0.1:7702", "--tls-cert-file", "c.pem", "--tls-key-file", "k.pem",
          "--tls-verify-client", "required"},
         "--tls-verify-client required needs --tls-ca-file to check certificates against"},
        {{"--tls-verify-client", "sometimes"}, "--tls-verify-client: 'sometimes' is not off, optional or required"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *argv[12] = {"subway", "--dev"};
        int argc = 2;
        for (size_t j = 0; j < 8 && cases[i].args[j]; j++) argv[argc++] = (char *)cases[i].args[j];
        config c;
        char err[256] = "";
        assert_int_equal(parse(&c, err, sizeof(err), argc, argv), 0);
        int rc = config_validate(&c, err, sizeof(err));
        if (cases[i].err) {
            assert_int_equal(rc, -1);
            assert_string_equal(err, cases[i].err);
        } else {
            assert_int_equal(rc, 0);
        }
        config_free(&c);
    }
}

static void test_config_file_then_flags(void **state) {
    char path[] = "/tmp/subway-test-config-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *text = "# a comment\nkafka = b:9092\n  max-conns = 12 \ndev = false\npartitioner = t=crc32\n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    config c;
    char err[256];
    char *argv[] = {"subway", "--config", path, "--max-conns", "13", NULL};
    assert_int_equal(parse(&c, err, sizeof(err), 5, argv), 0);
    assert_string_equal(c.kafka, "b:9092");
    assert_int_equal(c.max_conns, 13);   /* later flag wins */
    assert_int_equal(c.partitioner_cnt, 1);
    config_free(&c);

    fd = open(path, O_WRONLY | O_TRUNC);
    const char *bad = "kafka = x\nnope = 1\n";
    assert_int_equal(write(fd, bad, strlen(bad)), (ssize_t)strlen(bad));
    close(fd);
    char *argv2[] = {"subway", "--config", path, NULL};
    assert_int_equal(parse(&c, err, sizeof(err), 3, argv2), -1);
    char want[512];
    snprintf(want, sizeof(want), "%s:2: unknown option 'nope'", path);
    assert_string_equal(err, want);
    config_free(&c);
    unlink(path);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_flags_both_forms),
        cmocka_unit_test(test_no_kafka_names_both_choices),
        cmocka_unit_test(test_bad_values),
        cmocka_unit_test(test_tls_combinations),
        cmocka_unit_test(test_config_file_then_flags),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
