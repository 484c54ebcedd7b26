/* cluster.h -- a feed's cluster role (owner, relay, pending): coordination calls and answers, leases, notices, linger. */
#ifndef SUBWAY_CLUSTER_H
#define SUBWAY_CLUSTER_H

#include <stddef.h>

#include "broker/table.h"

/* Starts the lease tick (cluster mode) and the relay decoder. 0 or -1. */
int cluster_init(feed_table *ft);
void cluster_fini(feed_table *ft);

/* One more subscription of this node to f: counted with coordination,
 * which says who owns the feed; a lingering f is kept. */
void cluster_acquire(feed_table *ft, feed *f);

/* One subscription less. f may be gone when this returns (a synchronous
 * backend answers at once and the idle check runs then): callers must not
 * touch it after. */
void cluster_release(feed_table *ft, feed *f);

/* A feed nobody here needs lingers, then goes; an owner first waits for
 * the cluster-wide count to reach zero, since others rely on it. */
void cluster_check_idle(feed_table *ft, feed *f);

/* Frees f now: stops watching it, drops its partitions, unlinks it, and
 * frees its topic when that was the last use. */
void cluster_retire(feed_table *ft, feed *f);

/* Coordination events (see coord_events). */
void cluster_on_notice(feed_table *ft, const coord_feed *cf, coord_notice what, const char *node, long nodes);
void cluster_on_relay(feed_table *ft, const coord_feed *cf, const char *data, size_t len);
void cluster_on_state(feed_table *ft, int up);

/* Kafka's batch is in: fans it out, and ends the repairs it completed. */
void cluster_on_batch_end(feed_table *ft);

/* Stopping: every feed this node owns is handed over at once (resume
 * offsets recorded, lease freed, relays told to claim it). */
void cluster_resign_all(feed_table *ft);

#endif
