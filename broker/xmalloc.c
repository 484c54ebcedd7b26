/* xmalloc.c -- the node's one allocation rule: out of memory aborts, so no caller carries an untested branch. */
#include "broker/xmalloc.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void oom(size_t n) {
    /* No allocation here: stderr is unbuffered. */
    fprintf(stderr, "subway: out of memory allocating %zu bytes\n", n);
    abort();
}

void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) oom(n);
    return p;
}

void *xcalloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) oom(n * size);
    return p;
}

void *xrealloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (!q) oom(n);
    return q;
}

void *xreallocarray(void *p, size_t n, size_t size) {
    if (size && n > SIZE_MAX / size) oom(SIZE_MAX);
    return xrealloc(p, n * size);
}

char *xstrdup(const char *s) {
    return xmemdup(s, strlen(s) + 1);
}

char *xstrndup(const char *s, size_t n) {
    size_t len = strnlen(s, n);
    char *d = xmalloc(len + 1);
    memcpy(d, s, len);
    d[len] = '\0';
    return d;
}

void *xmemdup(const void *p, size_t n) {
    void *d = xmalloc(n);
    if (n) memcpy(d, p, n);
    return d;
}
