/* keyfile.h -- reads secrets (tokens, keys) from files, and compares them in constant time. */
#ifndef SUBWAY_KEYFILE_H
#define SUBWAY_KEYFILE_H

#include <stddef.h>

#define KEYFILE_MAX (1u << 20)    /* no secret or key file is larger */

/* Reads path whole into a NUL-terminated malloc'd buffer (*len without the
 * NUL). trim drops trailing newlines and spaces (tokens, not PEM). Refuses
 * an empty file or one over KEYFILE_MAX. Returns the buffer, or NULL with a
 * message naming the file in err. */
char *keyfile_read(const char *path, int trim, size_t *len, char *err, size_t errlen);

/* 1 when a[0..alen) equals b[0..blen); the time taken depends on the
 * lengths only, not on where they differ. */
int keyfile_equal(const char *a, size_t alen, const char *b, size_t blen);

#endif
