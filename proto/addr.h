/* addr.h -- the one HOST:PORT parser, shared by the node's options and the client library. */
#ifndef SUBWAY_PROTO_ADDR_H
#define SUBWAY_PROTO_ADDR_H

#include <stddef.h>

/* Splits "HOST:PORT" or "[V6ADDR]:PORT" (brackets required around an IPv6
 * address) into host, NUL-terminated and without brackets, and a port in
 * 1..65535. Returns 0, or -1 with a message saying what is wrong in err
 * (host untouched). Nothing is resolved. */
int proto_addr_split(const char *addr, char *host, size_t hostlen, int *port, char *err, size_t errlen);

#endif
