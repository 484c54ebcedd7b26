/* test_addr.c -- table-driven tests of proto_addr_split, the one HOST:PORT parser. */

#include "proto/addr.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#define HOSTLEN 256                  /* as the client's buffer: hosts up to 255 bytes */

static void test_accepted(void **state) {
    static const struct {
        const char *addr;
        const char *host;
        int port;
    } cases[] = {
        { "host:1", "host", 1 },
        { "127.0.0.1:7700", "127.0.0.1", 7700 },
        { "[::1]:7701", "::1", 7701 },
        { "localhost:65535", "localhost", 65535 },
        { "0.0.0.0:00080", "0.0.0.0", 80 },                 /* leading zeros: still five digits */
        { "[fe80::1%eth0]:9", "fe80::1%eth0", 9 },          /* a zone stays in the host */
        { "[127.0.0.1]:2", "127.0.0.1", 2 },                /* brackets are allowed around any host */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char host[HOSTLEN], err[256] = "";
        int port = -1;
        int rc = proto_addr_split(cases[i].addr, host, sizeof(host), &port, err, sizeof(err));
        if (rc != 0) print_error("case %zu '%s': %s\n", i, cases[i].addr, err);
        assert_int_equal(rc, 0);
        assert_string_equal(host, cases[i].host);
        assert_int_equal(port, cases[i].port);
        assert_string_equal(err, "");
    }
}

static void test_refused(void **state) {
    static const struct {
        const char *addr;
        const char *err;
    } cases[] = {
        { "", "empty address: want HOST:PORT or [IPV6]:PORT" },
        { NULL, "empty address: want HOST:PORT or [IPV6]:PORT" },
        { "localhost", "'localhost' has no port: want HOST:PORT" },
        { "host:", "'host:': port must be 1..65535" },
        { "host:0", "'host:0': port must be 1..65535" },
        { "host:65536", "'host:65536': port must be 1..65535" },
        { "host:100000", "'host:100000': port must be 1..65535" },
        { "host:12a", "'host:12a': port must be 1..65535" },
        { "host:+80", "'host:+80': port must be 1..65535" },
        { "host:-1", "'host:-1': port must be 1..65535" },
        { "host: 80", "'host: 80': port must be 1..65535" },
        { "host:99999999999999999999", "'host:99999999999999999999': port must be 1..65535" },
        { ":80", "':80' has no host: want HOST:PORT" },
        { "[]:80", "'[]:80' has no host: want HOST:PORT" },
        { "::1:80", "'::1:80': put an IPv6 address in brackets, [IPV6]:PORT" },
        { "::1", "'::1': put an IPv6 address in brackets, [IPV6]:PORT" },
        { "[::1]80", "'[::1]80': want [IPV6]:PORT" },
        { "[::1]", "'[::1]': want [IPV6]:PORT" },
        { "[::1:80", "'[::1:80': want [IPV6]:PORT" },
        { "[::1]:", "'[::1]:': port must be 1..65535" },
        { "[::1]:80:81", "'[::1]:80:81': port must be 1..65535" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char host[HOSTLEN] = "untouched", err[256] = "";
        int port = -7;
        int rc = proto_addr_split(cases[i].addr, host, sizeof(host), &port, err, sizeof(err));
        if (rc != -1 || strcmp(err, cases[i].err) != 0)
            print_error("case %zu '%s': rc %d, err \"%s\"\n", i, cases[i].addr ? cases[i].addr : "(null)",
                        rc, err);
        assert_int_equal(rc, -1);
        assert_string_equal(err, cases[i].err);
        assert_string_equal(host, "untouched");
        assert_int_equal(port, -7);
    }
}

/* The host's length bound is the caller's buffer: hostlen - 1 bytes fit,
 * one more is refused, bracketed or not. */
static void test_host_length(void **state) {
    char addr[HOSTLEN + 16], host[HOSTLEN], err[HOSTLEN + 64];
    int port = 0;

    memset(addr, 'a', HOSTLEN - 1);
    snprintf(addr + HOSTLEN - 1, 16, ":80");
    assert_int_equal(proto_addr_split(addr, host, sizeof(host), &port, err, sizeof(err)), 0);
    assert_int_equal(strlen(host), HOSTLEN - 1);
    assert_int_equal(port, 80);

    memset(addr, 'a', HOSTLEN);
    snprintf(addr + HOSTLEN, 16, ":80");
    char want[sizeof(err)];
    snprintf(want, sizeof(want), "'%s': host longer than 255 bytes", addr);
    assert_int_equal(proto_addr_split(addr, host, sizeof(host), &port, err, sizeof(err)), -1);
    assert_string_equal(err, want);

    /* A small buffer: "[::1]" does not fit in 3 bytes, "::" does. */
    char small[3];
    assert_int_equal(proto_addr_split("[::1]:1", small, sizeof(small), &port, err, sizeof(err)), -1);
    assert_string_equal(err, "'[::1]:1': host longer than 2 bytes");
    assert_int_equal(proto_addr_split("[::]:1", small, sizeof(small), &port, err, sizeof(err)), 0);
    assert_string_equal(small, "::");

    /* A short err buffer truncates the text, never overflows. */
    char tiny[8];
    assert_int_equal(proto_addr_split("localhost", host, sizeof(host), &port, tiny, sizeof(tiny)), -1);
    assert_string_equal(tiny, "'localh");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepted),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_host_length),
    };
    return cmocka_run_group_tests_name("addr", tests, NULL, NULL);
}
