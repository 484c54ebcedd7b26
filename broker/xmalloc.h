/* xmalloc.h -- the node's one allocation rule: out of memory aborts, so no caller carries an untested branch. */
#ifndef SUBWAY_XMALLOC_H
#define SUBWAY_XMALLOC_H

#include <stddef.h>

/* Each returns what its libc namesake does, never NULL: on out of memory
 * it logs and aborts the node (as Redis's zmalloc does). Only the node and
 * its coordination use these; the client library returns errors instead. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
/* n elements of size bytes, the product checked for overflow. */
void *xreallocarray(void *p, size_t n, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* A copy of n bytes at p (n may be 0: a valid, empty allocation). */
void *xmemdup(const void *p, size_t n);

#endif
