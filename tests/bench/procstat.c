/* procstat.c -- a process's CPU seconds, RSS, peak RSS, threads and Kafka sockets, from /proc. */
#include "tests/bench/bench.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* /proc/PID/stat: field 4 is the parent, 14-17 utime, stime, cutime,
 * cstime; the command (field 2) may hold spaces, so counting starts after
 * its closing ')'. */
int procstat_ticks(pid_t pid, pid_t *ppid, unsigned long long *ticks, unsigned long long *child_ticks) {
    char path[64], buf[2048];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    if (!p) return -1;
    int pp = 0;
    unsigned long long ut, st, cut, cst;
    if (sscanf(p + 2, "%*c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %llu %llu", &pp, &ut, &st, &cut, &cst) != 5)
        return -1;
    if (ppid) *ppid = pp;
    if (ticks) *ticks = ut + st;
    if (child_ticks) *child_ticks = cut + cst;
    return 0;
}

int procstat_read(pid_t pid, procstat *ps) {
    char path[64], line[256];
    memset(ps, 0, sizeof(*ps));
    unsigned long long ticks;
    if (procstat_ticks(pid, NULL, &ticks, NULL) < 0) return -1;
    ps->cpu_s = (double)ticks / (double)sysconf(_SC_CLK_TCK);
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, "VmRSS:", 6) == 0) ps->rss_kb = strtol(line + 6, NULL, 10);
        else if (strncmp(line, "VmHWM:", 6) == 0) ps->hwm_kb = strtol(line + 6, NULL, 10);
        else if (strncmp(line, "Threads:", 8) == 0) ps->threads = strtol(line + 8, NULL, 10);
    }
    fclose(f);
    return 0;
}

/* ------------------------------------------------------------ sockets */

static int cmp_ul(const void *a, const void *b) {
    unsigned long x = *(const unsigned long *)a, y = *(const unsigned long *)b;
    return x < y ? -1 : x > y;
}

/* Sorted socket inodes of pid's fds into *out (malloc'd). Returns the count or -1. */
static long socket_inodes(pid_t pid, unsigned long **out) {
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
    DIR *d = opendir(path);
    if (!d) return -1;
    size_t n = 0, cap = 256;
    unsigned long *v = malloc(cap * sizeof(*v));
    struct dirent *e;
    while (v && (e = readdir(d))) {
        char lp[320], target[64];
        if (e->d_name[0] == '.') continue;
        snprintf(lp, sizeof(lp), "%s/%s", path, e->d_name);
        ssize_t len = readlink(lp, target, sizeof(target) - 1);
        if (len <= 0) continue;
        target[len] = '\0';
        if (strncmp(target, "socket:[", 8) != 0) continue;
        if (n == cap) {
            unsigned long *g = realloc(v, 2 * cap * sizeof(*v));
            if (!g) break;
            v = g;
            cap *= 2;
        }
        v[n++] = strtoul(target + 8, NULL, 10);
    }
    closedir(d);
    if (!v) return -1;
    qsort(v, n, sizeof(*v), cmp_ul);
    *out = v;
    return (long)n;
}

/* Lines of /proc/net/tcp: "sl local rem st ... uid timeout inode"; the
 * remote address is HEXIP:HEXPORT, state 01 is ESTABLISHED. */
static int count_in(const char *table, const unsigned long *inodes, long ninodes, const int *ports, int nports) {
    FILE *f = fopen(table, "r");
    if (!f) return 0;
    char line[512];
    int count = 0;
    if (!fgets(line, sizeof(line), f)) {
        fclose(f);
        return 0;
    }
    while (fgets(line, sizeof(line), f)) {
        char local[64], rem[64];
        unsigned st;
        unsigned long inode;
        if (sscanf(line, "%*d: %63s %63s %x %*s %*s %*s %*s %*s %lu", local, rem, &st, &inode) != 4) continue;
        if (st != 1) continue;
        char *colon = strrchr(rem, ':');
        if (!colon) continue;
        int port = (int)strtol(colon + 1, NULL, 16);
        int want = 0;
        for (int i = 0; i < nports; i++)
            if (ports[i] == port) want = 1;
        if (!want) continue;
        if (bsearch(&inode, inodes, (size_t)ninodes, sizeof(*inodes), cmp_ul)) count++;
    }
    fclose(f);
    return count;
}

int procstat_tcp_conns(pid_t pid, const int *ports, int nports) {
    unsigned long *inodes = NULL;
    long n = socket_inodes(pid, &inodes);
    if (n < 0) return -1;
    int c = count_in("/proc/net/tcp", inodes, n, ports, nports) + count_in("/proc/net/tcp6", inodes, n, ports, nports);
    free(inodes);
    return c;
}
