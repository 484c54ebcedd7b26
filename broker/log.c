/* log.c -- leveled logging to stderr for the node. */
#include "broker/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int log_level = LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

int log_level_parse(const char *s) {
    for (int i = 0; i < 4; i++)
        if (strcmp(s, level_names[i]) == 0) return i;
    return -1;
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
        fprintf(stderr, "subway: %s\n", line);
    else
        fprintf(stderr, "subway: %s: %s\n", level_names[level], line);
}
