/* coord_memory.c -- the in-memory coordination backend: one node, counts in a hash table. */
#include "coord/coord.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "broker/xmalloc.h"

/* A feed's count, or a topic's number of feeds with a count (for
 * coord_topic_in_use), told apart by their names (see entry_name). */
typedef struct mem_entry {
    struct mem_entry *next;
    uint64_t hash;
    long count;
    size_t len;                   /* of name */
    char name[];                  /* topic \0 flag [key] */
} mem_entry;

typedef struct coord_memory {
    coord base;
    char *node_id;                /* for demand events */
    mem_entry **buckets;
    size_t nbuckets;
    size_t nentries;
} coord_memory;

/* ------------------------------------------------------------ the table */

/* An entry's name is the topic, NUL, then '*' for the wildcard feed, '='
 * and the key bytes for an exact key (so a key "*" never collides with the
 * wildcard), or '#' alone for the topic's own entry. Writes it to out (when
 * not NULL) and returns its length. */
static size_t entry_name(const char *topic, char flag, const char *key, size_t key_len, char *out) {
    size_t tl = strlen(topic);
    if (flag != '=') key_len = 0;
    if (out) {
        memcpy(out, topic, tl + 1);
        out[tl + 1] = flag;
        if (key_len) memcpy(out + tl + 2, key, key_len);
    }
    return tl + 2 + key_len;
}

static uint64_t fnv1a(const char *p, size_t len) {
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < len; i++) h = (h ^ (uint8_t)p[i]) * 1099511628211ull;
    return h;
}

static void mem_grow(coord_memory *m) {
    size_t n = m->nbuckets * 2;
    mem_entry **b = xcalloc(n, sizeof(*b));
    for (size_t i = 0; i < m->nbuckets; i++)
        for (mem_entry *e = m->buckets[i], *next; e; e = next) {
            next = e->next;
            e->next = b[e->hash % n];
            b[e->hash % n] = e;
        }
    free(m->buckets);
    m->buckets = b;
    m->nbuckets = n;
}

/* Finds the entry named by (topic, flag, key), creating it with count 0
 * when create is set; *where (if asked) gets its link, for unlinking. */
static mem_entry *mem_lookup(coord_memory *m, const char *topic, char flag, const char *key, size_t key_len,
                             int create, mem_entry ***where) {
    if (create && m->nentries >= m->nbuckets) mem_grow(m);
    size_t len = entry_name(topic, flag, key, key_len, NULL);
    char stackbuf[512];
    char *name = len <= sizeof(stackbuf) ? stackbuf : xmalloc(len);
    entry_name(topic, flag, key, key_len, name);
    uint64_t h = fnv1a(name, len);
    mem_entry **pp = &m->buckets[h % m->nbuckets];
    for (; *pp; pp = &(*pp)->next)
        if ((*pp)->hash == h && (*pp)->len == len && memcmp((*pp)->name, name, len) == 0) break;
    mem_entry *e = *pp;
    if (!e && create) {
        e = xmalloc(sizeof(*e) + len);
        e->next = NULL;
        e->hash = h;
        e->count = 0;
        e->len = len;
        memcpy(e->name, name, len);
        *pp = e;
        m->nentries++;
    }
    if (name != stackbuf) free(name);
    if (where) *where = pp;
    return e;
}

static mem_entry *feed_lookup(coord_memory *m, const coord_feed *f, int create, mem_entry ***where) {
    return mem_lookup(m, f->topic, f->wildcard ? '*' : '=', f->key, f->key_len, create, where);
}

/* Adds delta to the entry's count; unlinks and frees it at zero. */
static void mem_add(coord_memory *m, mem_entry **pp, long delta) {
    mem_entry *e = *pp;
    if ((e->count += delta) > 0) return;
    *pp = e->next;
    free(e);
    m->nentries--;
}

/* ------------------------------------------------------- demand events */

/* Appends s (n bytes) to out as the inside of a JSON string: quote,
 * backslash and control characters escaped, other bytes as they are (as
 * Redis's cjson does, so both backends write a key the same way). out has
 * room for 6 * n bytes. Returns the bytes written. */
static size_t json_escape(char *out, const char *s, size_t n) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') {
            out[o++] = '\\';
            out[o++] = (char)ch;
        } else if (ch < 0x20 || ch == 0x7f) {
            o += (size_t)snprintf(out + o, 7, "\\u%04x", ch);
        } else {
            out[o++] = (char)ch;
        }
    }
    return o;
}

/* The event subway:demand carries in cluster mode, with the same fields,
 * built here with the local clock, handed to the demand event. */
static void mem_demand(coord_memory *m, const coord_feed *f, const char *event) {
    if (!m->base.ev.demand) return;
    size_t tl = strlen(f->topic), kl = f->wildcard ? 1 : f->key_len, nl = strlen(m->node_id);
    char *json = xmalloc(128 + 6 * (2 * tl + 2 * kl + 1 + nl));
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    size_t n = (size_t)sprintf(json, "{\"event\":\"%s\",\"feed\":\"", event);
    n += json_escape(json + n, f->topic, tl);
    json[n++] = '/';
    n += json_escape(json + n, f->wildcard ? "*" : f->key, kl);
    n += (size_t)sprintf(json + n, "\",\"topic\":\"");
    n += json_escape(json + n, f->topic, tl);
    if (f->wildcard) {
        n += (size_t)sprintf(json + n, "\",\"key\":null,\"node\":\"");
    } else {
        n += (size_t)sprintf(json + n, "\",\"key\":\"");
        n += json_escape(json + n, f->key, kl);
        n += (size_t)sprintf(json + n, "\",\"node\":\"");
    }
    n += json_escape(json + n, m->node_id, nl);
    n += (size_t)sprintf(json + n, "\",\"ts_ms\":%lld}", (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000);
    m->base.ev.demand(m->base.ev.cb_data, f, json, n);
    free(json);
}

/* ---------------------------------------------------------------- calls */

static void mem_done(coord_cb *cb, void *cb_data, coord_status st, long count, const char *errstr) {
    coord_result r = {.status = st, .count = count, .nodes = count > 0, .own = st != COORD_ERROR,
                      .owner = "", .errstr = errstr};
    cb(cb_data, &r);
}

static void mem_acquire(coord *c, const coord_feed *f, coord_cb *cb, void *cb_data) {
    coord_memory *m = (coord_memory *)c;
    mem_entry *e = feed_lookup(m, f, 1, NULL);
    e->count++;
    if (e->count == 1) {
        mem_entry **tp;
        mem_lookup(m, f->topic, '#', NULL, 0, 1, &tp);
        mem_add(m, tp, 1);
        mem_demand(m, f, "demand");
    }
    mem_done(cb, cb_data, e->count == 1 ? COORD_FIRST : COORD_OK, e->count, NULL);
}

static void mem_release(coord *c, const coord_feed *f, long local_after, coord_cb *cb, void *cb_data) {
    coord_memory *m = (coord_memory *)c;
    mem_entry **pp;
    mem_entry *e = feed_lookup(m, f, 0, &pp);
    if (!e) {
        mem_done(cb, cb_data, COORD_ERROR, 0, "release of a feed with no subscriptions");
        return;
    }
    long after = e->count - 1;
    mem_add(m, pp, -1);
    if (after == 0) {
        mem_entry **tp;
        if (mem_lookup(m, f->topic, '#', NULL, 0, 0, &tp)) mem_add(m, tp, -1);
        mem_demand(m, f, "release");
    }
    mem_done(cb, cb_data, after > 0 ? COORD_OK : COORD_LAST, after, NULL);
}

/* One node: it always owns, and has nobody to relay to or hear from. */
static void mem_own(coord *c, const coord_feed *f, coord_cb *cb, void *cb_data) {
    mem_entry *e = feed_lookup((coord_memory *)c, f, 0, NULL);
    mem_done(cb, cb_data, COORD_OK, e ? e->count : 0, NULL);
}

static void mem_claim(coord *c, const coord_feed *f, int announce, coord_cb *cb, void *cb_data) {
    mem_own(c, f, cb, cb_data);
}

static void mem_disown(coord *c, const coord_feed *f, coord_cb *cb, void *cb_data) {
    mem_entry *e = feed_lookup((coord_memory *)c, f, 0, NULL);
    coord_result r = {.status = COORD_OK, .count = e ? e->count : 0, .own = e != NULL, .owner = ""};
    cb(cb_data, &r);
}

static void mem_assert(coord *c, const coord_feed *f, long local, int own, coord_cb *cb, void *cb_data) {
    mem_own(c, f, cb, cb_data);
}

static void mem_relay(coord *c, const coord_feed *f, const char *data, size_t len, const int64_t *offsets,
                      size_t noffsets) {}

static void mem_resign(coord *c, const coord_feed *f, const char *data, size_t len, const int64_t *offsets,
                       size_t noffsets) {}

static void mem_watch(coord *c, const coord_feed *f, coord_watch_kind kind) {}

static int mem_up(coord *c) {
    return 1;
}

static void mem_topic_in_use(coord *c, const char *topic, coord_used_cb *cb, void *cb_data) {
    cb(cb_data, mem_lookup((coord_memory *)c, topic, '#', NULL, 0, 0, NULL) != NULL);
}

static int info_cmp(const void *a, const void *b) {
    const coord_feed_info *x = a, *y = b;
    int c = memcmp(x->name, y->name, x->name_len < y->name_len ? x->name_len : y->name_len);
    return c ? c : (x->name_len > y->name_len) - (x->name_len < y->name_len);
}

/* This node's feeds with a count, as "topic/key" (it owns them all). */
static void mem_list_feeds(coord *c, size_t offset, size_t limit, coord_list_cb *cb, void *cb_data) {
    coord_memory *m = (coord_memory *)c;
    coord_feed_info *all = xcalloc(m->nentries + 1, sizeof(*all));
    size_t n = 0;
    for (size_t i = 0; i < m->nbuckets; i++)
        for (mem_entry *e = m->buckets[i]; e; e = e->next) {
            size_t tl = strlen(e->name);
            char flag = e->name[tl + 1];
            if (flag == '#' || e->count <= 0) continue;
            size_t kl = flag == '=' ? e->len - tl - 2 : 1;
            char *nm = xmalloc(tl + 1 + kl);
            memcpy(nm, e->name, tl);
            nm[tl] = '/';
            memcpy(nm + tl + 1, flag == '=' ? e->name + tl + 2 : "*", kl);
            all[n++] = (coord_feed_info){.name = nm, .name_len = tl + 1 + kl, .count = e->count,
                                         .owner = m->node_id, .owner_ttl_ms = -1};
        }
    qsort(all, n, sizeof(*all), info_cmp);
    size_t from = offset < n ? offset : n;
    coord_feed_list l = {.total = n, .offset = offset, .feeds = all + from, .n = n - from < limit ? n - from : limit};
    cb(cb_data, &l);
    for (size_t i = 0; i < n; i++) free((char *)all[i].name);
    free(all);
}

static const coord_backend memory_backend;

long coord_memory_count(coord *c, const coord_feed *f) {
    if (c->backend != &memory_backend) return -1;
    mem_entry *e = feed_lookup((coord_memory *)c, f, 0, NULL);
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
    free(m->node_id);
    free(m);
}

static const coord_backend memory_backend = {
    "memory", mem_acquire, mem_release, mem_claim, mem_own, mem_disown, mem_assert,
    mem_relay, mem_resign, mem_watch, mem_up, mem_topic_in_use, mem_list_feeds, mem_free,
};

coord *coord_memory_new(const char *node_id) {
    coord_memory *m = xcalloc(1, sizeof(*m));
    m->base.backend = &memory_backend;
    m->node_id = xstrdup(node_id);
    m->nbuckets = 64;
    m->buckets = xcalloc(m->nbuckets, sizeof(*m->buckets));
    return &m->base;
}
