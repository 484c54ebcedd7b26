/* admin.h -- the HTTP admin surface: its routes, its limits and its bearer token; GET /stats, /healthz and /readyz. */
#ifndef SUBWAY_ADMIN_H
#define SUBWAY_ADMIN_H

#include <stddef.h>

#include "broker/broker.h"

/* Serves the admin endpoints on --admin unless it is "off". Returns 0 or -1. */
int admin_start(broker *b, char *errstr, size_t errlen);
void admin_stop(broker *b);

#endif
