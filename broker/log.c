/* log.c -- leveled logging to stderr for the node. */
#include "broker/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

int log_level = LOG_INFO;

/* "subway", then "subway[NODE]" once the node knows its id: lines of
 * several nodes in one journal or terminal say whose they are. */
static char log_tag[128] = "subway";

void log_set_node(const char *node_id) {
    snprintf(log_tag, sizeof(log_tag), "subway[%s]", node_id);
}

static const char *const level_names[] = {"debug", "info", "warn", "error"};

int log_level_parse(const char *s) {
    for (int i = 0; i < 4; i++)
        if (strcmp(s, level_names[i]) == 0) return i;
    return -1;
}

int log_allow(log_limit *l) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t now = (uint64_t)ts.tv_sec;
    if (now != l->second) {
        if (l->suppressed) log_msg(LOG_INFO, "(%u lines like the next one were left out)", l->suppressed);
        l->second = now;
        l->printed = l->suppressed = 0;
    }
    if (l->printed < LOG_LIMIT_PER_S) {
        l->printed++;
        return 1;
    }
    if (l->suppressed++ == 0)
        log_msg(LOG_INFO, "(more lines like the last one left out this second: at most %d a second)", LOG_LIMIT_PER_S);
    return 0;
}

void log_msg(int level, const char *fmt, ...) {
    if (level < log_level) return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    /* info lines carry no tag so the common ones read naturally. */
    if (level == LOG_INFO)
        fprintf(stderr, "%s: %s\n", log_tag, line);
    else
        fprintf(stderr, "%s: %s: %s\n", log_tag, level_names[level], line);
}
