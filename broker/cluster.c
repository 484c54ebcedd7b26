/* cluster.c -- a feed's cluster role (owner, relay, pending): coordination calls and answers, leases and fencing, relay gaps and repair, linger. */
#include "broker/cluster.h"

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "broker/fanout.h"
#include "broker/freetopic.h"
#include "broker/histogram.h"
#include "broker/log.h"
#include "broker/timeval.h"
#include "broker/partition.h"
#include "broker/relaywire.h"
#include "broker/sub.h"

static void claim_done(void *cb_data, const coord_result *r);
static void repair_check(feed_table *ft, feed *f);
static void send_marker(feed_table *ft, feed *f, relaywire_kind kind);
static void relay_again(feed_table *ft, feed *f);

/* ------------------------------------------------------------------ leases */

/* A call that may grant (or keep) ownership is about to go out. */
static void grant_send(feed *f) {
    if (f->grants_inflight++ == 0) f->grant_sent = monotonic_ms();
}

/* Its answer. Owning, the lease counts from when the oldest unanswered such
 * call was sent (the store counts it from when it ran, later), shortened by
 * a fifth for clock-rate drift: this node stops acting as owner before the
 * lease can run out in the store. Later calls keep the older send time: a
 * shorter lease, never a longer one. */
static void grant_answer(feed_table *ft, feed *f, const coord_result *r) {
    uint64_t sent = f->grant_sent;
    if (f->grants_inflight > 0) f->grants_inflight--;
    if (r->status == COORD_ERROR || !r->own || !ft->lease_safe_ms) return;
    uint64_t until = sent + ft->lease_safe_ms;
    if (until > f->lease_until) f->lease_until = until;
    if (f->fenced && monotonic_ms() < f->lease_until) {
        f->fenced = 0;
        log_info("feed %s: lease renewed; acting as owner again", feed_label(f));
        if (f->relay_on) relay_again(ft, f);
    }
}

/* ------------------------------------------------------------------ roles */

static void update_counts(feed *f, const coord_result *r) {
    f->cluster_count = r->count;
    f->nodes = r->nodes;
}

/* Other nodes hold the feed: they need its records. */
static int others_hold(const feed *f, long nodes) {
    return nodes > (f->local > 0 ? 1 : 0);
}

/* Appends (p, at) to the pairs in ft->repair_starts, k of them so far. */
static void put_pair(feed_table *ft, size_t *k, int32_t p, int64_t at) {
    if (*k >= COORD_MAX_OFFSETS) return;
    ft->repair_starts[2 * *k] = p;
    ft->repair_starts[2 * *k + 1] = at;
    (*k)++;
}

static void become_owner(feed_table *ft, feed *f, const coord_result *r) {
    if (f->role != ROLE_OWNER) {
        log_info_limited("feed %s: this node (%s) is the owner now", feed_label(f), ft->b->node_id);
        f->role = ROLE_OWNER;
        f->repairing = 0;
        coord_feed cf = feed_coord(f);
        coord_watch(ft->b->coord, &cf, COORD_WATCH_NOTICES);
        if (f->has_parts) {
            /* Already reading (a repair): its batches start where it is,
             * and a relay that had less sees the gap and reads it. */
            size_t n = fanout_resume_offsets(ft, f);
            for (size_t i = 0; i < n; i++) f->rpos[ft->relay_offsets[2 * i]] = ft->relay_offsets[2 * i + 1];
        } else {
            /* Where the old owner stopped, or where this node's own
             * subscribers are if that is further back (it missed batches)
             * or the store lost the offsets (it came back empty). */
            int32_t a, z;
            feed_range(f, &a, &z);
            size_t k = 0;
            for (int32_t p = a; p <= z; p++) {
                int64_t at = f->rpos[p];
                for (size_t i = 0; i < r->noffsets; i++)
                    if (r->offsets[2 * i] == p && (at < 0 || r->offsets[2 * i + 1] < at)) at = r->offsets[2 * i + 1];
                if (at < 0) continue;
                f->rpos[p] = at;
                put_pair(ft, &k, p, at);
            }
            part_take(ft, f, ft->repair_starts, k);
        }
    }
    /* Only turned on here: a count read before other nodes re-asserted (or
     * joined) says nothing about them. Only an ordered 'leave' notice turns
     * relaying off, so no relay misses records in between. */
    if (others_hold(f, r->nodes) && !f->relay_on) relay_again(ft, f);
    if (part_all_assigned(f)) sub_feed_ready(ft, f);
}

/* Asks for ownership (taken if nobody holds it), and with announce for a
 * sync marker from the owner. */
static void claim(feed_table *ft, feed *f, int announce) {
    coord_feed cf = feed_coord(f);
    grant_send(f);
    coord_claim(ft->b->coord, &cf, announce, claim_done, ticket_new(ft, f));
}

/* Reads f's partitions from Kafka here, from where the relay left off,
 * until it meets the live relay (repair_check); the relay's batches wait
 * meanwhile. starts: (partition, offset) pairs, n of them. */
static void repair_begin(feed_table *ft, feed *f, const int64_t *starts, size_t n) {
    f->repairing = 1;
    ft->repairs++;
    part_take(ft, f, starts, n);
}

static void become_relay(feed_table *ft, feed *f) {
    if (f->role == ROLE_RELAY) return;
    int32_t a, z;
    feed_range(f, &a, &z);
    f->role = ROLE_RELAY;
    f->relay_on = 0;
    f->fenced = 0;
    f->lease_until = 0;
    if (f->has_parts && f->ready) {
        /* Lost it (to a takeover while paused or cut off): keep reading
         * until this node's subscribers reach the new owner's relay, so
         * nothing that passed meanwhile is lost. */
        size_t n = fanout_resume_offsets(ft, f);
        for (size_t i = 0; i < n; i++) f->rpos[ft->relay_offsets[2 * i]] = ft->relay_offsets[2 * i + 1];
        for (int32_t p = a; p <= z; p++) f->live[p] = REPAIR_UNKNOWN;
        f->repairing = 1;
        ft->repairs++;
        log_info("feed %s: lost ownership; reading Kafka until the new owner's relay is reached", feed_label(f));
    } else {
        part_drop(ft, f);
        if (f->ready) log_info("feed %s: lost ownership; relaying", feed_label(f));
    }
    coord_feed cf = feed_coord(f);
    coord_watch(ft->b->coord, &cf, COORD_WATCH_RELAY);
    /* Now that the relay channel is watched, tell the owner we wait: it
     * answers with a sync marker, after which nothing it reads is missed
     * (or, repairing, which says how far the relay is). */
    if (!f->ready || f->repairing) claim(ft, f, 1);
}

/* ------------------------------------------------------ coordination answers */

static void acquire_done(void *cb_data, const coord_result *r) {
    feed *f = ticket_take(cb_data);
    if (!f) return;
    feed_table *ft = f->t->ft;
    grant_answer(ft, f, r);
    if (r->status == COORD_ERROR) {
        log_warn("feed %s: coordination failed: %s", feed_label(f), r->errstr);
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
    if (!f) return;
    grant_answer(f->t->ft, f, r);
    if (r->status == COORD_ERROR) return;
    update_counts(f, r);
    if (r->own) become_owner(f->t->ft, f, r);
}

static void renew_done(void *cb_data, const coord_result *r) {
    feed *f = ticket_take(cb_data);
    if (!f) return;
    feed_table *ft = f->t->ft;
    grant_answer(ft, f, r);
    if (r->status == COORD_ERROR || f->role != ROLE_OWNER) return;
    update_counts(f, r);
    if (!r->own) {
        become_relay(ft, f);
        return;
    }
    if (others_hold(f, r->nodes) && !f->relay_on) relay_again(ft, f);
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
    /* The store is away: keep serving; its return re-asserts the feed,
     * whose answer checks idleness again. Not now: with --linger-ms 0 that
     * would disown again at once, fail at once, and recurse. */
    if (r->status == COORD_ERROR) return;
    /* Wanted again meanwhile: keep serving. */
    update_counts(f, r);
    cluster_check_idle(ft, f);
}

static void assert_done(void *cb_data, const coord_result *r) {
    feed *f = ticket_take(cb_data);
    if (!f) return;
    feed_table *ft = f->t->ft;
    grant_answer(ft, f, r);
    if (r->status == COORD_ERROR) return;
    update_counts(f, r);
    /* A new session: batches may have been lost either way while the
     * store was away. The owner says where its stream is; a relay asks
     * until a sync marker answers (the owner may not listen yet). */
    if (r->own) {
        become_owner(ft, f, r);
        if (f->relay_on && fanout_may_relay(f)) send_marker(ft, f, RELAYWIRE_SYNC);
    } else {
        int was_relay = f->role == ROLE_RELAY;
        become_relay(ft, f);
        /* Asked from the next lease tick on, not now: a claim now could
         * take the feed from its owner before the owner re-asserted, and a
         * store restart would move feeds. */
        if (was_relay && f->ready) f->need_sync = 1;
    }
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
    grant_send(f);
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
        log_debug("feed %s: linger over, giving it up", feed_label(f));
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
        log_error("cannot set the linger timer of feed %s", feed_label(f));
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

/* Owner: f's relay stream positions (where its last batch ended) as
 * (partition, offset) pairs in ft->repair_starts; returns how many. */
static size_t stream_positions(feed_table *ft, const feed *f) {
    int32_t a, z;
    feed_range(f, &a, &z);
    size_t k = 0;
    for (int32_t p = a; p <= z; p++)
        if (f->rpos[p] >= 0) put_pair(ft, &k, p, f->rpos[p]);
    return k;
}

/* Owner: a sync (or check) marker with where the feed is now (its resume offsets,
 * recorded with it too, for a feed that has had no record to relay yet). A
 * joining node delivers from there; a node that already delivers and is
 * further back reads the difference from Kafka. Not the end of the last
 * batch: while no one listened (no subscriber here, no relay: the others
 * were reaped while cut off) nothing was batched, yet records went by. */
static void send_marker(feed_table *ft, feed *f, relaywire_kind kind) {
    size_t n = fanout_resume_offsets(ft, f);
    if (kind == RELAYWIRE_CHECK)
        relaywire_check(&ft->relay_buf, ft->b->node_id, ft->relay_offsets, n);
    else
        relaywire_sync(&ft->relay_buf, ft->b->node_id, ft->relay_offsets, n);
    coord_feed cf = feed_coord(f);
    coord_relay(ft->b->coord, &cf, ft->relay_buf.data, ft->relay_buf.len, ft->relay_offsets, n);
}

/* Owner: relays again after a while it did not (no other node held the
 * feed, as far as it knew, or it was fenced). Records went by unbatched
 * meanwhile: a check marker tells every relay where the feed is now, and
 * one further back reads the difference from Kafka. */
static void relay_again(feed_table *ft, feed *f) {
    f->relay_on = 1;
    if (fanout_may_relay(f)) send_marker(ft, f, RELAYWIRE_CHECK);
}

void cluster_on_notice(feed_table *ft, const coord_feed *cf, coord_notice what, const char *node, long nodes) {
    feed *f = feed_of(ft, cf);
    if (!f || f->role != ROLE_OWNER) return;
    f->nodes = nodes;
    if (nodes == 0) f->cluster_count = 0;
    if (what == COORD_JOIN && strcmp(node, ft->b->node_id) != 0) {
        /* Relay from now on, and tell the joiner where "now" is: it starts
         * delivering at this marker, so no record read after it is lost. */
        f->relay_on = 1;
        if (fanout_may_relay(f)) send_marker(ft, f, RELAYWIRE_SYNC);
        return;
    }
    if (what == COORD_LEAVE) {
        f->relay_on = others_hold(f, nodes);
        cluster_check_idle(ft, f);
    }
}

/* Relay: the header's positions of partitions f reads. */
static long header_positions(feed_table *ft, feed *f, const char *data, size_t body) {
    long n = relaywire_positions(data, body, ft->relay_pos, COORD_MAX_OFFSETS);
    if (n < 0) {
        log_warn("feed %s: relay header with unreadable positions; ignored", feed_label(f));
        return 0;
    }
    int32_t a, z;
    feed_range(f, &a, &z);
    long k = 0;
    for (long i = 0; i < n; i++)
        if (ft->relay_pos[i].partition >= a && ft->relay_pos[i].partition <= z) ft->relay_pos[k++] = ft->relay_pos[i];
    return k;
}

/* The one partition whose position a relay header moves, or -1: a batch
 * of a DROPPED alone (the owner's Kafka lost records) moves only the
 * partition that lost them. */
static int32_t moved_partition(const relaywire_pos *pos, long n) {
    int32_t p = -1;
    for (long i = 0; i < n; i++) {
        if (pos[i].from >= pos[i].to) continue;
        if (p >= 0) return -1;
        p = pos[i].partition;
    }
    return p;
}

/* Relay: the stream went from pos[].from, while this node is at rpos.
 * Starts a repair from rpos when it missed something; returns 1 then. */
static int gap(feed_table *ft, feed *f, const relaywire_pos *pos, long n) {
    int missed = 0;
    for (long i = 0; i < n; i++) {
        int32_t p = pos[i].partition;
        if (f->rpos[p] >= 0 && pos[i].from > f->rpos[p]) missed = 1;
    }
    if (!missed) return 0;
    int32_t a, z;
    feed_range(f, &a, &z);
    size_t k = 0;
    for (int32_t p = a; p <= z; p++) {
        int64_t at = f->rpos[p];
        f->live[p] = -1;
        for (long i = 0; i < n; i++)
            if (pos[i].partition == p) {
                if (at < 0) at = pos[i].from;
                f->live[p] = pos[i].to;
            }
        if (at >= 0) put_pair(ft, &k, p, at);
    }
    log_warn("feed %s: the relay skipped records (a Redis outage, a cut, a takeover); reading them from Kafka",
             feed_label(f));
    repair_begin(ft, f, ft->repair_starts, k);
    return 1;
}

/* Relay, repairing: the live relay has got to pos[].to. A sync marker
 * says where it is for every partition; one it leaves out has nothing to
 * wait for. */
static void live_at(feed *f, const relaywire_pos *pos, long n, int sync) {
    int32_t a, z;
    feed_range(f, &a, &z);
    if (sync)
        for (int32_t p = a; p <= z; p++)
            if (f->live[p] == REPAIR_UNKNOWN) f->live[p] = -1;
    for (long i = 0; i < n; i++) {
        int32_t p = pos[i].partition;
        if (f->live[p] == REPAIR_UNKNOWN || f->live[p] < pos[i].to) f->live[p] = pos[i].to;
    }
}

/* Repairing: done once this node's own reads reached the live relay in
 * every partition. Then the relay takes over, from where it is. */
static void repair_check(feed_table *ft, feed *f) {
    if (!f->repairing || f->role != ROLE_RELAY) return;
    int32_t a, z;
    feed_range(f, &a, &z);
    for (int32_t p = a; p <= z; p++) {
        if (f->live[p] == REPAIR_UNKNOWN) return;
        if (f->live[p] < 0) continue;
        const tpart *tp = &f->t->parts[p];
        if (tp->state != PART_ASSIGNED || tp->next < f->live[p]) return;
    }
    for (int32_t p = a; p <= z; p++) {
        if (f->live[p] > f->rpos[p]) f->rpos[p] = f->live[p];
        f->live[p] = -1;
    }
    f->repairing = 0;
    part_drop(ft, f);
    log_info("feed %s: caught up with the relay", feed_label(f));
}

void cluster_on_relay(feed_table *ft, const coord_feed *cf, const char *data, size_t len) {
    feed *f = feed_of(ft, cf);
    if (!f || f->role != ROLE_RELAY) return;
    const char *owner;
    size_t owner_len, off;
    relaywire_kind kind = relaywire_parse(data, len, &owner, &owner_len, &off);
    if (kind == RELAYWIRE_GONE) {
        claim(ft, f, 0);          /* the owner stopped: take the feed over now */
        return;
    }
    if (kind == RELAYWIRE_BAD) return;
    long n = header_positions(ft, f, data, off);
    const relaywire_pos *pos = ft->relay_pos;
    if (kind == RELAYWIRE_SYNC || kind == RELAYWIRE_CHECK) {
        /* Markers answer joiners; a node that delivers already compares
         * only a check, or the sync it asked for after a session start (the
         * feed's position runs ahead of its batches, over other keys'
         * records, so any other marker would look like a gap). */
        int resync = f->need_sync || kind == RELAYWIRE_CHECK;
        f->need_sync = 0;
        if (!f->ready) {
            for (long i = 0; i < n; i++) f->rpos[pos[i].partition] = pos[i].to;
            sub_feed_ready(ft, f);
        } else if (f->repairing) {
            live_at(f, pos, n, 1);
        } else if (resync && !gap(ft, f, pos, n)) {
            for (long i = 0; i < n; i++)
                if (f->rpos[pos[i].partition] < 0) f->rpos[pos[i].partition] = pos[i].to;
        }
        repair_check(ft, f);
        return;
    }
    if (!f->ready) return;
    if (f->repairing) {
        live_at(f, pos, n, 0);
        repair_check(ft, f);
        return;
    }
    if (gap(ft, f, pos, n)) return;   /* the repair reads this batch too */
    /* A DROPPED does not name its partition: it is the one of the record
     * after it (the gap is right before that record). */
    uint64_t lost = 0;
    while (off < len) {
        size_t used;
        proto_frame fr;
        if (proto_decode(ft->relay_dec, data + off, len - off, &used, &fr) != PROTO_FRAME) {
            log_warn("feed %s: undecodable relay data dropped", feed_label(f));
            break;
        }
        off += used;
        if (fr.type == PROTO_MESSAGE) {
            if (lost) fanout_append_lost(ft, f, (int32_t)fr.partition, lost);   /* records the owner's Kafka lost */
            lost = 0;
            histogram_observe_age(&node_hist.relay_lag, fr.timestamp_ms);
            fanout_append(ft, f, (int32_t)fr.partition, (int64_t)fr.offset, fr.timestamp_ms, fr.key.ptr, fr.key.len,
                          fr.value.ptr, fr.value.len, fr.headers, fr.header_cnt);
        } else if (fr.type == PROTO_DROPPED) {
            lost += fr.count;
        }
    }
    if (lost) fanout_append_lost(ft, f, moved_partition(pos, n), lost);
    for (long i = 0; i < n; i++)
        if (pos[i].to > f->rpos[pos[i].partition]) f->rpos[pos[i].partition] = pos[i].to;
    fanout_flush(ft);
}

void cluster_on_state(feed_table *ft, int up) {
    log_info("coordination store %s from node %s", up ? "reachable: re-asserting this node's feeds" : "unreachable",
             ft->b->node_id);
    if (!up) return;
    TABLE_FOR_EACH_TOPIC(ft, t)
        for (feed *f = t->feeds; f; f = f->tnext) {
            coord_feed cf = feed_coord(f);
            /* A fenced owner asks for its lease back; if another node took
             * it meanwhile, this one becomes a relay and catches up. */
            grant_send(f);
            coord_assert(ft->b->coord, &cf, f->local, f->role == ROLE_OWNER, assert_done, ticket_new(ft, f));
        }
}

void cluster_on_batch_end(feed_table *ft) {
    fanout_flush(ft);
    if (!ft->repairs) return;
    ft->repairs = 0;
    TABLE_FOR_EACH_TOPIC(ft, t)
        for (feed *f = t->feeds; f; f = f->tnext) {
            repair_check(ft, f);
            if (f->repairing) ft->repairs++;
        }
}

void cluster_resign_all(feed_table *ft) {
    if (!config_cluster(ft->b->cfg)) return;
    TABLE_FOR_EACH_TOPIC(ft, t)
        for (feed *f = t->feeds; f; f = f->tnext) {
            if (!fanout_may_relay(f)) continue;
            /* The successor resumes where the relay stream is: every record
             * of the feed below it was relayed, and the relays are there. */
            size_t n = stream_positions(ft, f);
            relaywire_gone(&ft->relay_buf, ft->b->node_id);
            coord_feed cf = feed_coord(f);
            coord_resign(ft->b->coord, &cf, ft->relay_buf.data, ft->relay_buf.len, ft->repair_starts, n);
            f->role = ROLE_PENDING;
        }
}

/* Every third of a lease: owners renew, the others check the owner lives. */
static void lease_tick(evutil_socket_t fd, short what, void *arg) {
    feed_table *ft = arg;
    if (!coord_up(ft->b->coord)) return;
    TABLE_FOR_EACH_TOPIC(ft, t)
        for (feed *f = t->feeds; f; f = f->tnext) {
            if (f->role == ROLE_OWNER) {
                coord_feed cf = feed_coord(f);
                grant_send(f);
                coord_renew(ft->b->coord, &cf, renew_done, ticket_new(ft, f));
            } else {
                claim(ft, f, !f->ready || f->repairing || f->need_sync);
            }
        }
}

/* Every tenth of a lease: owners whose lease ran out (as this node counts
 * it) stop acting as owner; repairs that met the relay end. */
static void fence_tick(evutil_socket_t fd, short what, void *arg) {
    feed_table *ft = arg;
    ft->repairs = 0;
    TABLE_FOR_EACH_TOPIC(ft, t)
        for (feed *f = t->feeds; f; f = f->tnext) {
            if (f->role == ROLE_OWNER) fanout_may_relay(f);
            repair_check(ft, f);
            if (f->repairing) ft->repairs++;
        }
}

int cluster_init(feed_table *ft) {
    broker *b = ft->b;
    if (!(ft->relay_dec = proto_decoder_new(64u << 20))) return -1;
    if (config_cluster(b->cfg)) {
        ft->lease_safe_ms = b->cfg->lease_ms * 8 / 10;
        uint64_t every = b->cfg->lease_ms / 3 ? b->cfg->lease_ms / 3 : 1;
        struct timeval tv = ms_timeval(every);
        ft->tick_ev = event_new(b->base, -1, EV_PERSIST, lease_tick, ft);
        if (!ft->tick_ev || event_add(ft->tick_ev, &tv) < 0) return -1;
        every = b->cfg->lease_ms / 10 ? b->cfg->lease_ms / 10 : 1;
        tv = ms_timeval(every);
        ft->fence_ev = event_new(b->base, -1, EV_PERSIST, fence_tick, ft);
        if (!ft->fence_ev || event_add(ft->fence_ev, &tv) < 0) return -1;
    }
    return 0;
}

void cluster_fini(feed_table *ft) {
    if (ft->tick_ev) event_free(ft->tick_ev);
    if (ft->fence_ev) event_free(ft->fence_ev);
    ft->tick_ev = ft->fence_ev = NULL;
    proto_decoder_free(ft->relay_dec);
    ft->relay_dec = NULL;
}
