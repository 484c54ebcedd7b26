/* freetopic.c -- free topics: deleted a grace period after the last feed of them went, cluster-wide. */
#include "broker/freetopic.h"

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "broker/log.h"
#include "broker/upstream.h"
#include "broker/xmalloc.h"

static void doomed_remove(feed_table *ft, doomed *d) {
    doomed **pp = &ft->doomed;
    while (*pp != d) pp = &(*pp)->next;
    *pp = d->next;
    event_free(d->ev);
    free(d);
}

/* The in-use question outlives the doomed entry: it carries its own copy. */
typedef struct asking {
    feed_table *ft;
    char name[];
} asking;

static void in_use_answer(void *cb_data, int used) {
    asking *a = cb_data;
    feed_table *ft = a->ft;
    if (used != 0) {
        log_info("free topic %s: %s; not deleted", a->name,
                 used > 0 ? "in use on another node" : "cannot ask the coordination store");
    } else if (topic_find(ft, a->name, strlen(a->name))) {
        log_info("free topic %s: in use here again; not deleted", a->name);
    } else {
        coord_topic_forget(ft->b->coord, a->name);
        upstream_delete_topic(ft->b->up, a->name);
    }
    free(a);
}

static void doomed_expired(evutil_socket_t fd, short what, void *arg) {
    doomed *d = arg;
    feed_table *ft = d->ft;
    /* Unused here since (a new use would have spared it): delete it if no
     * other node uses it either. */
    size_t n = strlen(d->name);
    asking *a = xmalloc(sizeof(*a) + n + 1);
    a->ft = ft;
    memcpy(a->name, d->name, n + 1);
    doomed_remove(ft, d);
    coord_topic_in_use(ft->b->coord, a->name, in_use_answer, a);
}

void freetopic_doom(feed_table *ft, const char *name) {
    for (doomed *d = ft->doomed; d; d = d->next)
        if (strcmp(d->name, name) == 0) return;
    size_t n = strlen(name);
    doomed *d = xcalloc(1, sizeof(*d) + n + 1);
    d->ev = event_new(ft->b->base, -1, 0, doomed_expired, d);
    if (!d->ev) {
        log_error("cannot set the deletion timer of free topic %s", name);
        abort();
    }
    memcpy(d->name, name, n + 1);
    d->ft = ft;
    d->next = ft->doomed;
    ft->doomed = d;
    struct timeval tv = ms_timeval(ft->b->cfg->free_topic_grace_ms);
    event_add(d->ev, &tv);
}

void freetopic_spare(feed_table *ft, const char *name, size_t len) {
    for (doomed *d = ft->doomed; d; d = d->next)
        if (strlen(d->name) == len && memcmp(d->name, name, len) == 0) {
            doomed_remove(ft, d);
            return;
        }
}

void topic_maybe_free(feed_table *ft, topic *t) {
    if (!topic_unused(t)) return;
    /* Its subscribers left before Kafka answered: a lookup still in the
     * queue would only delay everyone else's (a flood of SUBSCRIBEs to
     * fresh names, then a hang-up). */
    if (!t->ready) upstream_cancel_topic(ft->b->up, t->name);
    if (t->ready && config_is_free_topic(ft->b->cfg, t->name)) freetopic_doom(ft, t->name);
    topic_free(ft, t);
}

void freetopic_fini(feed_table *ft) {
    while (ft->doomed) doomed_remove(ft, ft->doomed);
}
