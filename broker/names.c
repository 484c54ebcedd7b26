/* names.c -- the one validator of the names the node accepts: topics and node ids. */
#include "broker/names.h"

#include <string.h>

static int legal_chars(const char *s, size_t len) {
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' ||
              ch == '_' || ch == '-'))
            return 0;
    }
    return 1;
}

int names_topic_ok(const char *name, size_t len) {
    if (len < 1 || len > NAMES_TOPIC_MAX || !legal_chars(name, len)) return 0;
    return !(len == 1 && name[0] == '.') && !(len == 2 && name[0] == '.' && name[1] == '.');
}

int names_node_id_ok(const char *s) {
    size_t n = strlen(s);
    return n >= 1 && n <= NAMES_NODE_ID_MAX && legal_chars(s, n);
}
