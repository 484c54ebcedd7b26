/* keyfile.c -- reads secrets (tokens, keys) from files, and compares them in constant time. */
#include "broker/keyfile.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/xmalloc.h"

char *keyfile_read(const char *path, int trim, size_t *len, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = xmalloc(KEYFILE_MAX + 1);
    size_t n = fread(buf, 1, KEYFILE_MAX + 1, f);
    int bad = ferror(f);
    fclose(f);
    if (bad || n > KEYFILE_MAX) {
        snprintf(err, errlen, "cannot read %s: %s", path, bad ? "read error" : "larger than 1 MiB");
        free(buf);
        return NULL;
    }
    while (trim && n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ' || buf[n - 1] == '\t'))
        n--;
    if (n == 0) {
        snprintf(err, errlen, "%s is empty", path);
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return xrealloc(buf, n + 1);
}

int keyfile_equal(const char *a, size_t alen, const char *b, size_t blen) {
    if (alen != blen) return 0;
    unsigned char d = 0;
    for (size_t i = 0; i < alen; i++) d |= (unsigned char)(a[i] ^ b[i]);
    return d == 0;
}
