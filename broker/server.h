/* server.h -- the node's loop: listener, output flushing, periodic checks, signals and the drain. */
#ifndef SUBWAY_SERVER_H
#define SUBWAY_SERVER_H

#include <stddef.h>

#include "broker/broker.h"

/* Binds --listen (and --tls-listen) and installs the flush, tick and signal events on b->base.
 * Returns 0 or -1 with errstr. */
int server_start(broker *b, char *errstr, size_t errlen);

/* Closes every connection and frees the listener and events. */
void server_stop(broker *b);

#endif
