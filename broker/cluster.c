/* cluster.c -- a feed's cluster role (owner, relay, pending): coordination calls and answers, leases, notices, linger. */
#include "broker/cluster.h"

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "broker/fanout.h"
#include "broker/freetopic.h"
#include "broker/log.h"
#include "broker/partition.h"
#include "broker/relaywire.h"
#include "broker/sub.h"

static void claim_done(void *cb_data, const coord_result *r);

/* ------------------------------------------------------------------ roles */

static void update_counts(feed *f, const coord_result *r) {
    f->cluster_count = r->count;
    f->nodes = r->nodes;
}

/* Other nodes hold the feed: they need its records. */
static int others_hold(const feed *f, long nodes) {
    return nodes > (f->local > 0 ? 1 : 0);
}

static void become_owner(feed_table *ft, feed *f, const coord_result *r) {
    if (f->role != ROLE_OWNER) {
        log_debug("feed %s: this node is the owner", f->t->name);
        f->role = ROLE_OWNER;
        coord_feed cf = feed_coord(f);
        coord_watch(ft->b->coord, &cf, COORD_WATCH_NOTICES);
    }
    /* Only turned on here: a count read before other nodes re-asserted (or
     * joined) says nothing about them. Only an ordered 'leave' notice turns
     * relaying off, so no relay misses records in between. */
    if (others_hold(f, r->nodes)) f->relay_on = 1;
    part_take(ft, f, r->offsets, r->noffsets);
    if (part_all_assigned(f)) sub_feed_ready(ft, f);
}

static void become_relay(feed_table *ft, feed *f) {
    if (f->role == ROLE_RELAY) return;
    if (f->role == ROLE_OWNER) log_info("feed %s: lost ownership; relaying", f->t->name);
    f->role = ROLE_RELAY;
    f->relay_on = 0;
    part_drop(ft, f);
    coord_feed cf = feed_coord(f);
    coord_watch(ft->b->coord, &cf, COORD_WATCH_RELAY);
    /* Now that the relay channel is watched, tell the owner we wait: it
     * answers with a sync marker, after which nothing it reads is missed. */
    if (!f->ready) coord_claim(ft->b->coord, &cf, 1, claim_done, ticket_new(ft, f));
}

/* ------------------------------------------------------ coordination answers */

static void acquire_done(void *cb_data, const coord_result *r) {
    feed *f = ticket_take(cb_data);
    if (!f) return;
    feed_table *ft = f->t->ft;
    if (r->status == COORD_ERROR) {
        log_warn("feed %s: coordination failed: %s", f->t->name, r->errstr);
        return;                   /* the waiters time out through claim retries */
    }
    update_counts(f, r);
    if (r->own)
        become_owner(ft, f, r);
    else if (f->role == ROLE_PENDING)
        become_relay(ft, f);
}

static void claim_done(void *cb_data, const coord_result *r) {
    feed *f = ticket_take(cb_data);
    if (!f || r->status == COORD_ERROR) return;
    update_counts(f, r);
    if (r->own) become_owner(f->t->ft, f, r);
}

static void renew_done(void *cb_data, const coord_result *r) {
    feed *f = ticket_take(cb_data);
    if (!f || r->status == COORD_ERROR || f->role != ROLE_OWNER) return;
    feed_table *ft = f->t->ft;
    update_counts(f, r);
    if (!r->own) {
        become_relay(ft, f);
        return;
    }
    if (others_hold(f, r->nodes)) f->relay_on = 1;
    cluster_check_idle(ft, f);
}

static void release_done(void *cb_data, const coord_result *r) {
    feed *f = ticket_take(cb_data);
    if (!f) return;
    if (r->status != COORD_ERROR) update_counts(f, r);
    cluster_check_idle(f->t->ft, f);
}

static void disown_done(void *cb_data, const coord_result *r) {
    feed *f = ticket_take(cb_data);
    if (!f) return;
    feed_table *ft = f->t->ft;
    if (r->status != COORD_ERROR && !r->own) {
        cluster_retire(ft, f);
        return;
    }
    /* Wanted again meanwhile (or the store is away): keep serving. */
    if (r->status != COORD_ERROR) update_counts(f, r);
    cluster_check_idle(ft, f);
}

static void assert_done(void *cb_data, const coord_result *r) {
    feed *f = ticket_take(cb_data);
    if (!f || r->status == COORD_ERROR) return;
    feed_table *ft = f->t->ft;
    update_counts(f, r);
    if (r->own)
        become_owner(ft, f, r);
    else
        become_relay(ft, f);
    cluster_check_idle(ft, f);
}

/* ------------------------------------------------------------- counting */

void cluster_acquire(feed_table *ft, feed *f) {
    if (f->lingering) {
        event_del(f->linger_ev);
        f->lingering = 0;
    }
    f->local++;
    coord_feed cf = feed_coord(f);
    coord_acquire(ft->b->coord, &cf, acquire_done, ticket_new(ft, f));
}

void cluster_release(feed_table *ft, feed *f) {
    f->local--;
    coord_feed cf = feed_coord(f);
    coord_release(ft->b->coord, &cf, f->local, release_done, ticket_new(ft, f));
}

/* ---------------------------------------------------------- idle and linger */

static void linger_expired(evutil_socket_t fd, short what, void *arg) {
    feed *f = arg;
    feed_table *ft = f->t->ft;
    f->lingering = 0;
    if (f->role == ROLE_OWNER) {
        log_debug("feed %s: linger over, giving it up", f->t->name);
        coord_feed cf = feed_coord(f);
        coord_disown(ft->b->coord, &cf, disown_done, ticket_new(ft, f));
        return;
    }
    cluster_retire(ft, f);
}

void cluster_check_idle(feed_table *ft, feed *f) {
    if (f->nsubs > 0 || f->waiters || f->local > 0 || f->lingering) return;
    if (f->role == ROLE_OWNER && f->cluster_count > 0) return;
    if (ft->b->cfg->linger_ms == 0 || (f->role != ROLE_OWNER && !f->ready)) {
        linger_expired(-1, 0, f);
        return;
    }
    if (!f->linger_ev && !(f->linger_ev = event_new(ft->b->base, -1, 0, linger_expired, f))) {
        log_error("cannot set the linger timer of feed %s", f->t->name);
        abort();
    }
    struct timeval tv = ms_timeval(ft->b->cfg->linger_ms);
    f->lingering = 1;
    event_add(f->linger_ev, &tv);
}

void cluster_retire(feed_table *ft, feed *f) {
    topic *t = f->t;
    fanout_forget(ft, f);
    coord_feed cf = feed_coord(f);
    if (f->role != ROLE_PENDING && ft->b->coord) coord_watch(ft->b->coord, &cf, COORD_WATCH_NONE);
    part_drop(ft, f);
    feed_free(ft, f);
    topic_maybe_free(ft, t);
}

/* ------------------------------------------------------ coordination events */

static feed *feed_of(feed_table *ft, const coord_feed *cf) {
    return feed_lookup(ft, cf->topic, cf->key, cf->key_len, cf->wildcard);
}

void cluster_on_notice(feed_table *ft, const coord_feed *cf, coord_notice what, const char *node, long nodes) {
    feed *f = feed_of(ft, cf);
    if (!f || f->role != ROLE_OWNER) return;
    f->nodes = nodes;
    if (nodes == 0) f->cluster_count = 0;
    if (what == COORD_JOIN && strcmp(node, ft->b->node_id) != 0) {
        /* Relay from now on, and tell the joiner where "now" is: it starts
         * delivering at this marker, so no record read after it is lost.
         * The marker records where a successor resumes, too, for a feed
         * that has had no record to relay yet. */
        f->relay_on = 1;
        relaywire_sync(&ft->relay_buf, ft->b->node_id);
        coord_relay(ft->b->coord, cf, ft->relay_buf.data, ft->relay_buf.len, ft->relay_offsets,
                    fanout_resume_offsets(ft, f));
        return;
    }
    if (what == COORD_LEAVE) {
        f->relay_on = others_hold(f, nodes);
        cluster_check_idle(ft, f);
    }
}

void cluster_on_relay(feed_table *ft, const coord_feed *cf, const char *data, size_t len) {
    feed *f = feed_of(ft, cf);
    if (!f || f->role != ROLE_RELAY) return;
    const char *owner;
    size_t owner_len, off;
    relaywire_kind kind = relaywire_parse(data, len, &owner, &owner_len, &off);
    if (kind == RELAYWIRE_SYNC) {
        sub_feed_ready(ft, f);
        return;
    }
    if (kind != RELAYWIRE_RECORDS || !f->ready) return;
    while (off < len) {
        size_t used;
        proto_frame fr;
        if (proto_decode(ft->relay_dec, data + off, len - off, &used, &fr) != PROTO_FRAME) {
            log_warn("feed %s: undecodable relay data dropped", f->t->name);
            break;
        }
        off += used;
        if (fr.type == PROTO_MESSAGE)
            fanout_append(ft, f, (int32_t)fr.partition, (int64_t)fr.offset, fr.timestamp_ms, fr.key.ptr, fr.key.len,
                          fr.value.ptr, fr.value.len, fr.headers, fr.header_cnt);
        else if (fr.type == PROTO_DROPPED)
            fanout_append_lost(ft, f, fr.count);   /* records the owner's Kafka lost */
    }
    fanout_flush(ft);
}

void cluster_on_state(feed_table *ft, int up) {
    log_info("coordination store %s", up ? "reachable: re-asserting this node's feeds" : "unreachable");
    if (!up) return;
    TABLE_FOR_EACH_TOPIC(ft, t)
        for (feed *f = t->feeds; f; f = f->tnext) {
            coord_feed cf = feed_coord(f);
            coord_assert(ft->b->coord, &cf, f->local, f->role == ROLE_OWNER, assert_done, ticket_new(ft, f));
        }
}

/* Every third of a lease: owners renew, the others check the owner lives. */
static void tick_cb(evutil_socket_t fd, short what, void *arg) {
    feed_table *ft = arg;
    if (!coord_up(ft->b->coord)) return;
    TABLE_FOR_EACH_TOPIC(ft, t)
        for (feed *f = t->feeds; f; f = f->tnext) {
            coord_feed cf = feed_coord(f);
            if (f->role == ROLE_OWNER)
                coord_renew(ft->b->coord, &cf, renew_done, ticket_new(ft, f));
            else
                coord_claim(ft->b->coord, &cf, !f->ready, claim_done, ticket_new(ft, f));
        }
}

int cluster_init(feed_table *ft) {
    broker *b = ft->b;
    if (!(ft->relay_dec = proto_decoder_new(64u << 20))) return -1;
    if (b->cfg->redis) {
        uint64_t every = b->cfg->lease_ms / 3 ? b->cfg->lease_ms / 3 : 1;
        struct timeval tv = ms_timeval(every);
        ft->tick_ev = event_new(b->base, -1, EV_PERSIST, tick_cb, ft);
        if (!ft->tick_ev || event_add(ft->tick_ev, &tv) < 0) return -1;
    }
    return 0;
}

void cluster_fini(feed_table *ft) {
    if (ft->tick_ev) event_free(ft->tick_ev);
    ft->tick_ev = NULL;
    proto_decoder_free(ft->relay_dec);
    ft->relay_dec = NULL;
}
