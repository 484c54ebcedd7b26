/* cli_split.h -- subway-cli sub --split-by-key DIR: one file per record key in DIR, named safely. */
#ifndef SUBWAY_CLI_SPLIT_H
#define SUBWAY_CLI_SPLIT_H

#include <stddef.h>
#include <stdio.h>

/* Longest file name cli_split_name() produces, without the NUL (under
 * NAME_MAX, 255, on every common file system). */
#define CLI_SPLIT_NAME_MAX 200

typedef struct cli_split cli_split;

/* Opens (creating it, one level, if missing) the directory dir. header,
 * when not NULL, is written with a newline as the first line of every file
 * this creates (not of files that already existed: those are appended to).
 * Keeps both pointers, which must outlive the result. Returns NULL with the
 * reason in errbuf. */
cli_split *cli_split_new(const char *dir, const char *header, char *errbuf, size_t errlen);

/* The stream for records of key (NULL: a record without a key), opened on
 * first use in append mode; the caller writes one record and calls
 * cli_split_flush(). At most a few dozen files stay open: the least
 * recently used is closed and reopened when needed. Returns NULL with the
 * reason in errbuf. The stream belongs to s. */
FILE *cli_split_file(cli_split *s, const char *key, size_t key_len, char *errbuf, size_t errlen);

/* Flushes the stream cli_split_file() returned, so that a reader of the
 * file sees the record at once. Returns 0, or -1 with errno set. */
int cli_split_flush(FILE *f);

/* Closes every file and frees s. Accepts NULL. */
void cli_split_free(cli_split *s);

/* Writes into out (size >= CLI_SPLIT_NAME_MAX + 1) the file name of key:
 * bytes A-Z a-z 0-9 _ - are kept, and . too except as the first byte;
 * every other byte (/, NUL, control bytes, %, spaces, non-ASCII, a leading
 * .) becomes %XX, two upper-case hex digits. The empty key is "%empty", a
 * record without a key "%nil" (no escape produces either). A name longer
 * than CLI_SPLIT_NAME_MAX keeps its first 180 bytes (not cutting an
 * escape) and ends in "%%" and the 16 hex digits of the whole key's 64-bit
 * FNV-1a hash. So no name is ".", "..", empty, or contains "/" or a byte
 * below 0x21, and different keys get different names (but for the hash).
 * Returns the name's length. */
size_t cli_split_name(const char *key, size_t key_len, char *out);

#endif
