/* cli_split.c -- subway-cli sub --split-by-key DIR: one file per record key in DIR, named safely. */
#include "cli_split.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Files kept open at once; well under the usual 1024 descriptors. */
#define SPLIT_OPEN_MAX 32
/* A long name keeps this much of the escaped key before its hash. */
#define SPLIT_PREFIX_MAX 180

typedef struct split_file {
    char name[CLI_SPLIT_NAME_MAX + 1];
    FILE *f;                         /* NULL: slot free */
    uint64_t used;                   /* tick of its last use, for LRU */
} split_file;

struct cli_split {
    int dirfd;                       /* DIR, opened once: names resolve under it only */
    const char *header;              /* not owned; NULL: none */
    uint64_t tick;
    split_file files[SPLIT_OPEN_MAX];
};

/* ================================================================ names */

static bool keep_byte(unsigned char c, size_t pos) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) return true;
    if (c == '_' || c == '-') return true;
    return c == '.' && pos > 0;
}

static uint64_t fnv1a64(const char *p, size_t len) {
    uint64_t h = 14695981039346656037ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)p[i];
        h *= 1099511628211ULL;
    }
    return h;
}

size_t cli_split_name(const char *key, size_t key_len, char *out) {
    static const char hex[] = "0123456789ABCDEF";
    if (key == NULL) return (size_t)snprintf(out, CLI_SPLIT_NAME_MAX + 1, "%%nil");
    if (key_len == 0) return (size_t)snprintf(out, CLI_SPLIT_NAME_MAX + 1, "%%empty");
    size_t n = 0;
    for (size_t i = 0; i < key_len; i++) {
        unsigned char c = (unsigned char)key[i];
        size_t need = keep_byte(c, i) ? 1 : 3;
        if (n + need > CLI_SPLIT_NAME_MAX) {
            /* Too long: a prefix, cut between escapes, and the whole key's hash. */
            while (n > SPLIT_PREFIX_MAX) n -= (n >= 3 && out[n - 3] == '%') ? 3 : 1;
            n += (size_t)snprintf(out + n, CLI_SPLIT_NAME_MAX + 1 - n, "%%%%%016llx",
                                  (unsigned long long)fnv1a64(key, key_len));
            return n;
        }
        if (need == 1) {
            out[n++] = (char)c;
        } else {
            out[n++] = '%';
            out[n++] = hex[c >> 4];
            out[n++] = hex[c & 15];
        }
    }
    out[n] = '\0';
    return n;
}

/* ================================================================ files */

cli_split *cli_split_new(const char *dir, const char *header, char *errbuf, size_t errlen) {
    cli_split *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        snprintf(errbuf, errlen, "out of memory");
        return NULL;
    }
    s->header = header;
    if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
        snprintf(errbuf, errlen, "--split-by-key %s: %s", dir, strerror(errno));
        goto err;
    }
    s->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (s->dirfd < 0) {
        snprintf(errbuf, errlen, "--split-by-key %s: %s", dir, strerror(errno));
        goto err;
    }
    return s;
err:
    s->dirfd = -1;
    cli_split_free(s);
    return NULL;
}

/* Opens name under DIR for appending: never through a symlink, never
 * anything but a regular file (a FIFO planted there would block). Sets
 * *created when this call made the file. Returns the fd or -1. */
static int open_append(int dirfd, const char *name, bool *created) {
    int flags = O_WRONLY | O_APPEND | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC;
    int fd = openat(dirfd, name, flags | O_CREAT | O_EXCL, 0644);
    *created = fd >= 0;
    if (fd < 0 && errno == EEXIST) fd = openat(dirfd, name, flags);
    if (fd < 0 && errno == ENXIO) errno = EINVAL;   /* a FIFO without a reader */
    if (fd < 0) return -1;
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        errno = EINVAL;
        return -1;
    }
    fcntl(fd, F_SETFL, O_WRONLY | O_APPEND);
    return fd;
}

FILE *cli_split_file(cli_split *s, const char *key, size_t key_len, char *errbuf, size_t errlen) {
    char name[CLI_SPLIT_NAME_MAX + 1];
    cli_split_name(key, key_len, name);
    s->tick++;
    split_file *slot = NULL;
    for (size_t i = 0; i < SPLIT_OPEN_MAX; i++) {
        split_file *e = &s->files[i];
        if (e->f && strcmp(e->name, name) == 0) {
            e->used = s->tick;
            return e->f;
        }
        if (slot == NULL || (slot->f && (!e->f || e->used < slot->used))) slot = e;
    }
    if (slot->f) {                   /* every slot taken: close the least recently used */
        fclose(slot->f);
        slot->f = NULL;
    }
    bool created;
    int fd = open_append(s->dirfd, name, &created);
    FILE *f = fd < 0 ? NULL : fdopen(fd, "a");
    if (f == NULL) {
        snprintf(errbuf, errlen, "%s: %s", name, errno == EINVAL ? "not a regular file" : strerror(errno));
        if (fd >= 0) close(fd);
        return NULL;
    }
    if (created && s->header && (fprintf(f, "%s\n", s->header) < 0 || fflush(f) != 0)) {
        snprintf(errbuf, errlen, "%s: %s", name, strerror(errno));
        fclose(f);
        return NULL;
    }
    memcpy(slot->name, name, sizeof(name));
    slot->f = f;
    slot->used = s->tick;
    return f;
}

int cli_split_flush(FILE *f) {
    if (fflush(f) != 0 || ferror(f)) return -1;
    return 0;
}

void cli_split_free(cli_split *s) {
    if (s == NULL) return;
    for (size_t i = 0; i < SPLIT_OPEN_MAX; i++)
        if (s->files[i].f) fclose(s->files[i].f);
    if (s->dirfd >= 0) close(s->dirfd);
    free(s);
}
