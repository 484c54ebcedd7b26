/* log.h -- leveled logging to stderr for the node. */
#ifndef SUBWAY_LOG_H
#define SUBWAY_LOG_H

#include <stdint.h>

enum { LOG_DEBUG = 0, LOG_INFO = 1, LOG_WARN = 2, LOG_ERROR = 3 };

/* Lines below this level are not printed (default LOG_INFO). */
extern int log_level;

/* Parses "debug", "info", "warn", "error"; returns the level or -1. */
int log_level_parse(const char *s);

/* Prints "subway: [level: ]message\n" to stderr when level >= log_level. */
void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* From now on every line starts "subway[node_id]: " instead of "subway: ". */
void log_set_node(const char *node_id);

/* A call site's budget of LOG_LIMIT_PER_S lines a second: a state change
 * that hits thousands of feeds at once (a takeover) logs a sample and how
 * many lines it left out, not thousands of lines. */
#define LOG_LIMIT_PER_S 10
typedef struct log_limit {
    uint64_t second;
    unsigned printed;
    unsigned suppressed;
} log_limit;

/* 1 when the line may be printed now. The first line left out in a second
 * says so at once; the next line printed says how many were. */
int log_allow(log_limit *l);

#define log_info_limited(...)                                    \
    do {                                                         \
        static log_limit log_site_;                              \
        if (log_allow(&log_site_)) log_msg(LOG_INFO, __VA_ARGS__); \
    } while (0)

#define log_debug(...) do { if (log_level <= LOG_DEBUG) log_msg(LOG_DEBUG, __VA_ARGS__); } while (0)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
