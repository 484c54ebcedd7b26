/* test_cli_split.c -- subway-cli's --split-by-key: the key -> file name rule (table and property tests) and the files. */

#include "proto/cli_split.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

static void test_names(void **state) {
    static const struct {
        const char *key;
        size_t len;
        const char *name;
    } cases[] = {
        { "abc", 3, "abc" },
        { "M", 1, "M" },
        { "a.b-c_D9", 8, "a.b-c_D9" },
        { ".", 1, "%2E" },
        { "..", 2, "%2E." },
        { ".hidden", 7, "%2Ehidden" },
        { "../x", 4, "%2E.%2Fx" },
        { "/etc/passwd", 11, "%2Fetc%2Fpasswd" },
        { "a\0b", 3, "a%00b" },
        { "\n\t\x1f\x7f", 4, "%0A%09%1F%7F" },
        { "\xc3\xa9\xff", 3, "%C3%A9%FF" },
        { "%41", 3, "%2541" },
        { "a b", 3, "a%20b" },
        { "", 0, "%empty" },
        { NULL, 0, "%nil" },
    };
    char out[CLI_SPLIT_NAME_MAX + 1];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t n = cli_split_name(cases[i].key, cases[i].len, out);
        assert_string_equal(out, cases[i].name);
        assert_int_equal(n, strlen(cases[i].name));
    }
}

static void test_long_names(void **state) {
    char key[400], out[CLI_SPLIT_NAME_MAX + 1], other[CLI_SPLIT_NAME_MAX + 1];
    memset(key, 'a', sizeof(key));
    /* 200 bytes fit as they are; 201 do not. */
    assert_int_equal(cli_split_name(key, 200, out), 200);
    assert_int_equal(cli_split_name(key, 201, out), 180 + 2 + 16);
    assert_memory_equal(out, key, 180);
    assert_memory_equal(out + 180, "%%", 2);
    /* An escape straddling byte 180 is not cut: the prefix stops before it. */
    key[179] = '/';
    assert_int_equal(cli_split_name(key, 300, out), 179 + 2 + 16);
    assert_memory_equal(out + 179, "%%", 2);
    /* Keys differing only past the prefix get different names. */
    key[299] = 'b';
    cli_split_name(key, 300, other);
    assert_string_not_equal(out, other);
}

static int unhex(char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Random keys: every name is a safe single path component, and a name
 * without the hash decodes back to its key (so different keys differ). */
static void test_random_keys_are_safe(void **state) {
    char key[120], out[CLI_SPLIT_NAME_MAX + 1], back[120];
    srand(14);
    for (int round = 0; round < 20000; round++) {
        size_t len = 1 + (size_t)rand() % sizeof(key);
        for (size_t i = 0; i < len; i++) key[i] = (char)(rand() % 4 ? "./%a\0\n"[rand() % 6] : rand());
        size_t n = cli_split_name(key, len, out);
        assert_true(n > 0 && n <= CLI_SPLIT_NAME_MAX);
        assert_int_equal(strlen(out), n);
        assert_true(out[0] != '.');
        for (size_t i = 0; i < n; i++) assert_true(out[i] > 0x20 && out[i] < 0x7f && out[i] != '/');
        if (strstr(out, "%%")) continue;
        size_t m = 0;
        for (size_t i = 0; i < n; i++) {
            if (out[i] == '%') {
                assert_true(unhex(out[i + 1]) >= 0 && unhex(out[i + 2]) >= 0);
                back[m++] = (char)(unhex(out[i + 1]) * 16 + unhex(out[i + 2]));
                i += 2;
            } else {
                back[m++] = out[i];
            }
        }
        assert_int_equal(m, len);
        assert_memory_equal(back, key, len);
    }
}

static char *slurp(const char *dir, const char *name) {
    static char buf[4096];
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    if (f == NULL) return NULL;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

static void test_files(void **state) {
    char dir[] = "/tmp/test_cli_split.XXXXXX", sub[64], err[256], path[128];
    assert_non_null(mkdtemp(dir));
    snprintf(sub, sizeof(sub), "%s/out", dir);
    cli_split *s = cli_split_new(sub, "h1,h2", err, sizeof(err));   /* creates DIR */
    assert_non_null(s);
    /* More keys than files kept open: each reopened file is appended to, its header written once. */
    for (int round = 0; round < 2; round++)
        for (int k = 0; k < 40; k++) {
            char key[8];
            snprintf(key, sizeof(key), "k%d", k);
            FILE *f = cli_split_file(s, key, strlen(key), err, sizeof(err));
            assert_non_null(f);
            fprintf(f, "%s-%d\n", key, round);
            assert_int_equal(cli_split_flush(f), 0);
        }
    assert_string_equal(slurp(sub, "k0"), "h1,h2\nk0-0\nk0-1\n");   /* readable at once: flushed */
    assert_string_equal(slurp(sub, "k39"), "h1,h2\nk39-0\nk39-1\n");
    assert_non_null(cli_split_file(s, "../x", 4, err, sizeof(err)));
    assert_non_null(slurp(sub, "%2E.%2Fx"));
    assert_null(slurp(dir, "x"));
    /* A symlink (or anything but a regular file) in DIR is refused. */
    snprintf(path, sizeof(path), "%s/trap", sub);
    assert_int_equal(symlink("/tmp", path), 0);
    assert_null(cli_split_file(s, "trap", 4, err, sizeof(err)));
    assert_string_equal(err, "trap: Too many levels of symbolic links");
    snprintf(path, sizeof(path), "%s/fifo", sub);
    assert_int_equal(mkfifo(path, 0600), 0);
    assert_null(cli_split_file(s, "fifo", 4, err, sizeof(err)));
    assert_string_equal(err, "fifo: not a regular file");
    cli_split_free(s);
    cli_split_free(NULL);
    /* A DIR that cannot be made. */
    assert_null(cli_split_new("/nonexistent/deeper/dir", NULL, err, sizeof(err)));
    assert_string_equal(err, "--split-by-key /nonexistent/deeper/dir: No such file or directory");
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_long_names),
        cmocka_unit_test(test_random_keys_are_safe),
        cmocka_unit_test(test_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
