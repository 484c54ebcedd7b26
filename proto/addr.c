/* addr.c -- the one HOST:PORT parser, shared by the node's options and the client library. */
#include "proto/addr.h"

#include <stdio.h>
#include <string.h>

int proto_addr_split(const char *addr, char *host, size_t hostlen, int *port, char *err, size_t errlen) {
    if (addr == NULL || addr[0] == '\0') {
        snprintf(err, errlen, "empty address: want HOST:PORT or [IPV6]:PORT");
        return -1;
    }
    const char *h = addr, *colon;
    size_t hlen;
    if (addr[0] == '[') {
        const char *end = strchr(addr, ']');
        if (end == NULL || end[1] != ':') {
            snprintf(err, errlen, "'%s': want [IPV6]:PORT", addr);
            return -1;
        }
        h = addr + 1;
        hlen = (size_t)(end - h);
        colon = end + 1;
    } else {
        colon = strrchr(addr, ':');
        if (colon == NULL) {
            snprintf(err, errlen, "'%s' has no port: want HOST:PORT", addr);
            return -1;
        }
        hlen = (size_t)(colon - addr);
        if (memchr(addr, ':', hlen)) {
            snprintf(err, errlen, "'%s': put an IPv6 address in brackets, [IPV6]:PORT", addr);
            return -1;
        }
    }
    if (hlen == 0) {
        snprintf(err, errlen, "'%s' has no host: want HOST:PORT", addr);
        return -1;
    }
    if (hlen >= hostlen) {
        snprintf(err, errlen, "'%s': host longer than %zu bytes", addr, hostlen ? hostlen - 1 : 0);
        return -1;
    }
    /* Digits only (no sign, no blanks), at most five, so the value cannot
     * overflow before the range check. */
    const char *p = colon + 1;
    size_t digits = strspn(p, "0123456789");
    long v = 0;
    for (size_t i = 0; i < digits && i < 5; i++) v = v * 10 + (p[i] - '0');
    if (digits == 0 || digits > 5 || p[digits] != '\0' || v < 1 || v > 65535) {
        snprintf(err, errlen, "'%s': port must be 1..65535", addr);
        return -1;
    }
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    *port = (int)v;
    return 0;
}
