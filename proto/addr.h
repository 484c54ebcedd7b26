/* addr.h -- the one HOST:PORT parser, shared by the node's options and the client library. */
#ifndef SUBWAY_PROTO_ADDR_H
#define SUBWAY_PROTO_ADDR_H

#include <stddef.h>

/* Splits "HOST:PORT" or "[V6ADDR]:PORT" (brackets required around an IPv6
 * address) into host, NUL-terminated and without brackets, at most
 * hostlen - 1 bytes, and a port in 1..65535 (decimal digits only). Returns
 * 0, or -1 with host and port untouched and a message in err that quotes
 * addr and says what is wrong, for example
 *   'localhost' has no port: want HOST:PORT
 *   '::1:80': put an IPv6 address in brackets, [IPV6]:PORT
 *   'h:0': port must be 1..65535
 * Nothing is resolved: a host name stays a name. Internal to libsubway (not
 * exported from the shared library). */
int proto_addr_split(const char *addr, char *host, size_t hostlen, int *port, char *err, size_t errlen);

#endif
