/* json.h -- the node's one JSON string escaper. */
#ifndef SUBWAY_JSON_H
#define SUBWAY_JSON_H

#include <stddef.h>

struct evbuffer;

/* Appends s[0..len) to out as a quoted JSON string: '"' and '\\' escaped,
 * control bytes and bytes >= 0x7f as \u00XX (so any bytes give valid,
 * ASCII-only JSON). */
void json_add_str(struct evbuffer *out, const char *s, size_t len);

#endif
