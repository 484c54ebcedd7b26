/* coord_memory.c -- the in-memory coordination backend: one node, counts in a hash table. */
#include "coord/coord.h"

#include <stdlib.h>
#include <string.h>

typedef struct mem_entry {
    struct mem_entry *next;
    uint64_t hash;
    long count;
    size_t len;                   /* of name */
    char name[];                  /* topic \0 flag key */
} mem_entry;

typedef struct coord_memory {
    coord base;
    mem_entry **buckets;
    size_t nbuckets;
    size_t nentries;
} coord_memory;

/* The entry name is topic, NUL, then '*' for the wildcard feed or '=' and
 * the key bytes, so an exact key "*" never collides with the wildcard. */
static size_t feed_name(const coord_feed *f, char *out) {
    size_t tl = strlen(f->topic);
    if (out) {
        memcpy(out, f->topic, tl + 1);
        out[tl + 1] = f->wildcard ? '*' : '=';
        if (!f->wildcard) memcpy(out + tl + 2, f->key, f->key_len);
    }
    return tl + 2 + (f->wildcard ? 0 : f->key_len);
}

static uint64_t fnv1a(const char *p, size_t len) {
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < len; i++) h = (h ^ (uint8_t)p[i]) * 1099511628211ull;
    return h;
}

static mem_entry **mem_find(coord_memory *m, const char *name, size_t len, uint64_t h) {
    mem_entry **pp = &m->buckets[h % m->nbuckets];
    for (; *pp; pp = &(*pp)->next)
        if ((*pp)->hash == h && (*pp)->len == len && memcmp((*pp)->name, name, len) == 0) break;
    return pp;
}

static int mem_grow(coord_memory *m) {
    size_t n = m->nbuckets * 2;
    mem_entry **b = calloc(n, sizeof(*b));
    if (!b) return -1;
    for (size_t i = 0; i < m->nbuckets; i++)
        for (mem_entry *e = m->buckets[i], *next; e; e = next) {
            next = e->next;
            e->next = b[e->hash % n];
            b[e->hash % n] = e;
        }
    free(m->buckets);
    m->buckets = b;
    m->nbuckets = n;
    return 0;
}

/* Finds the feed's entry (creating it when create is set); *where gets its link. */
static mem_entry *mem_lookup(coord_memory *m, const coord_feed *f, int create, mem_entry ***where) {
    size_t len = feed_name(f, NULL);
    char stackbuf[512];
    char *name = len <= sizeof(stackbuf) ? stackbuf : malloc(len);
    if (!name) return NULL;
    feed_name(f, name);
    uint64_t h = fnv1a(name, len);
    mem_entry **pp = mem_find(m, name, len, h);
    mem_entry *e = *pp;
    if (!e && create) {
        e = malloc(sizeof(*e) + len);
        if (e) {
            e->next = NULL;
            e->hash = h;
            e->count = 0;
            e->len = len;
            memcpy(e->name, name, len);
            *pp = e;
            m->nentries++;
        }
    }
    if (name != stackbuf) free(name);
    if (where) *where = pp;
    return e;
}

static void mem_done(coord_cb *cb, void *cb_data, coord_status st, long count, const char *errstr) {
    coord_result r = {.status = st, .count = count, .nodes = count > 0, .own = st != COORD_ERROR,
                      .owner = "", .errstr = errstr};
    cb(cb_data, &r);
}

static void mem_acquire(coord *c, const coord_feed *f, coord_cb *cb, void *cb_data) {
    coord_memory *m = (coord_memory *)c;
    if (m->nentries >= m->nbuckets && mem_grow(m) < 0) {
        mem_done(cb, cb_data, COORD_ERROR, 0, "out of memory");
        return;
    }
    mem_entry *e = mem_lookup(m, f, 1, NULL);
    if (!e) {
        mem_done(cb, cb_data, COORD_ERROR, 0, "out of memory");
        return;
    }
    e->count++;
    mem_done(cb, cb_data, e->count == 1 ? COORD_FIRST : COORD_OK, e->count, NULL);
}

static void mem_release(coord *c, const coord_feed *f, long local_after, coord_cb *cb, void *cb_data) {
    coord_memory *m = (coord_memory *)c;
    mem_entry **pp;
    mem_entry *e = mem_lookup(m, f, 0, &pp);
    if (!e) {
        mem_done(cb, cb_data, COORD_ERROR, 0, "release of a feed with no subscriptions");
        return;
    }
    if (--e->count > 0) {
        mem_done(cb, cb_data, COORD_OK, e->count, NULL);
        return;
    }
    *pp = e->next;
    free(e);
    m->nentries--;
    mem_done(cb, cb_data, COORD_LAST, 0, NULL);
}

/* One node: it always owns, and has nobody to relay to or hear from. */
static void mem_own(coord *c, const coord_feed *f, coord_cb *cb, void *cb_data) {
    mem_entry *e = mem_lookup((coord_memory *)c, f, 0, NULL);
    mem_done(cb, cb_data, COORD_OK, e ? e->count : 0, NULL);
}

static void mem_claim(coord *c, const coord_feed *f, int announce, coord_cb *cb, void *cb_data) {
    mem_own(c, f, cb, cb_data);
}

static void mem_disown(coord *c, const coord_feed *f, coord_cb *cb, void *cb_data) {
    mem_entry *e = mem_lookup((coord_memory *)c, f, 0, NULL);
    coord_result r = {.status = COORD_OK, .count = e ? e->count : 0, .own = e != NULL, .owner = ""};
    cb(cb_data, &r);
}

static void mem_assert(coord *c, const coord_feed *f, long local, int own, coord_cb *cb, void *cb_data) {
    mem_own(c, f, cb, cb_data);
}

static void mem_relay(coord *c, const coord_feed *f, const char *data, size_t len, const int64_t *offsets,
                      size_t noffsets) {}

static void mem_watch(coord *c, const coord_feed *f, coord_watch_kind kind) {}

static int mem_up(coord *c) {
    return 1;
}

static long mem_count(coord *c, const coord_feed *f) {
    mem_entry *e = mem_lookup((coord_memory *)c, f, 0, NULL);
    return e ? e->count : 0;
}

static void mem_free(coord *c) {
    coord_memory *m = (coord_memory *)c;
    if (!m) return;
    for (size_t i = 0; m->buckets && i < m->nbuckets; i++)
        for (mem_entry *e = m->buckets[i], *next; e; e = next) {
            next = e->next;
            free(e);
        }
    free(m->buckets);
    free(m);
}

static const coord_backend memory_backend = {
    "memory", mem_acquire, mem_release, mem_claim, mem_own, mem_disown, mem_assert,
    mem_relay, mem_watch, mem_up, mem_count, mem_free,
};

coord *coord_memory_new(void) {
    coord_memory *m = calloc(1, sizeof(*m));
    if (!m) return NULL;
    m->base.backend = &memory_backend;
    m->nbuckets = 64;
    m->buckets = calloc(m->nbuckets, sizeof(*m->buckets));
    if (!m->buckets) {
        mem_free(&m->base);
        return NULL;
    }
    return &m->base;
}
