/* json.c -- the node's one JSON string escaper. */
#include "broker/json.h"

#include <event2/buffer.h>

void json_add_str(struct evbuffer *out, const char *s, size_t len) {
    evbuffer_add(out, "\"", 1);
    size_t run = 0;               /* bytes at s + i - run that need no escape */
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch != '"' && ch != '\\' && ch >= 0x20 && ch < 0x7f) {
            run++;
            continue;
        }
        evbuffer_add(out, s + i - run, run);
        run = 0;
        if (ch == '"' || ch == '\\')
            evbuffer_add_printf(out, "\\%c", ch);
        else
            evbuffer_add_printf(out, "\\u%04x", ch);
    }
    evbuffer_add(out, s + len - run, run);
    evbuffer_add(out, "\"", 1);
}
