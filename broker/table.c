/* table.c -- the bottom of the node's feed side: topics, feeds, partitions and subscriptions as data, with lookup, create and destroy. */
#include "broker/table.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/xmalloc.h"

static const char *const role_names[] = {"pending", "owner", "relay"};

const char *feed_role_name(feed_role r) {
    return role_names[r];
}

/* ---------------------------------------------------------------- hashing */

/* FNV-1a. Topics hash their names; feeds hash their topic's address, the
 * kind and the key, so one table holds the feeds of every topic. */
static uint64_t hash_bytes(uint64_t h, const void *p, size_t len) {
    const uint8_t *s = p;
    for (size_t i = 0; i < len; i++) h = (h ^ s[i]) * 1099511628211ull;
    return h;
}

#define HASH_SEED 14695981039346656037ull

static uint64_t feed_hash(const topic *t, const char *key, size_t key_len, int wildcard) {
    uint64_t h = hash_bytes(HASH_SEED, &t, sizeof(t));
    h = hash_bytes(h, wildcard ? "*" : "=", 1);
    return wildcard ? h : hash_bytes(h, key, key_len);
}

/* The node's one hash table: chained, doubled when as full as it is wide.
 * Entries start with hnext then hash, so topics and feeds share it. */
typedef struct chained {
    struct chained *hnext;
    uint64_t hash;
} chained;

_Static_assert(offsetof(topic, hnext) == offsetof(chained, hnext) && offsetof(topic, hash) == offsetof(chained, hash) &&
                   offsetof(feed, hnext) == offsetof(chained, hnext) && offsetof(feed, hash) == offsetof(chained, hash),
               "the hash table needs hnext then hash first in topic and feed");

static void chain_insert(void ***buckets, size_t *nbuckets, size_t nitems, chained *e) {
    if (nitems >= *nbuckets) {
        size_t n = *nbuckets * 2;
        chained **nb = xcalloc(n, sizeof(*nb));
        chained **old = (chained **)*buckets;
        for (size_t i = 0; i < *nbuckets; i++)
            for (chained *x = old[i], *next; x; x = next) {
                next = x->hnext;
                x->hnext = nb[x->hash % n];
                nb[x->hash % n] = x;
            }
        free(old);
        *buckets = (void **)nb;
        *nbuckets = n;
    }
    chained **slot = (chained **)*buckets + e->hash % *nbuckets;
    e->hnext = *slot;
    *slot = e;
}

static void chain_remove(void **buckets, size_t nbuckets, chained *e) {
    chained **pp = (chained **)buckets + e->hash % nbuckets;
    while (*pp != e) pp = &(*pp)->hnext;
    *pp = e->hnext;
}

/* ------------------------------------------------------------------ table */

feed_table *table_new(broker *b) {
    feed_table *ft = xcalloc(1, sizeof(*ft));
    ft->b = b;
    ft->ntbuckets = 16;
    ft->nfbuckets = 64;
    ft->tbuckets = xcalloc(ft->ntbuckets, sizeof(*ft->tbuckets));
    ft->fbuckets = xcalloc(ft->nfbuckets, sizeof(*ft->fbuckets));
    return ft;
}

void table_free(feed_table *ft) {
    if (!ft) return;
    free(ft->tbuckets);
    free(ft->fbuckets);
    free(ft);
}

/* ----------------------------------------------------------------- topics */

topic *topic_find(feed_table *ft, const char *name, size_t len) {
    uint64_t h = hash_bytes(HASH_SEED, name, len);
    for (topic *t = ft->tbuckets[h % ft->ntbuckets]; t; t = t->hnext)
        if (t->hash == h && strlen(t->name) == len && memcmp(t->name, name, len) == 0) return t;
    return NULL;
}

topic *topic_create(feed_table *ft, const char *name, size_t len, partitioner ptr) {
    topic *t = xcalloc(1, sizeof(*t));
    t->name = xstrndup(name, len);
    t->hash = hash_bytes(HASH_SEED, name, len);
    t->ft = ft;
    t->ptr = ptr;
    chain_insert((void ***)&ft->tbuckets, &ft->ntbuckets, ft->ntopics, (chained *)t);
    ft->ntopics++;
    return t;
}

int topic_unused(const topic *t) {
    return !t->feeds && !t->waiters;
}

void topic_free(feed_table *ft, topic *t) {
    chain_remove((void **)ft->tbuckets, ft->ntbuckets, (chained *)t);
    ft->ntopics--;
    free(t->parts);
    free(t->name);
    free(t);
}

static void tpart_init(tpart *tp) {
    memset(tp, 0, sizeof(*tp));
    tp->next = tp->head = tp->rewind = -1;
}

void topic_set_partitions(topic *t, int32_t cnt) {
    int32_t old = t->parts ? t->partition_cnt : 0;
    t->parts = xreallocarray(t->parts, (size_t)cnt, sizeof(*t->parts));
    for (int32_t p = old; p < cnt; p++) tpart_init(&t->parts[p]);
    for (feed *f = t->feeds; f; f = f->tnext) {
        f->next_off = xreallocarray(f->next_off, (size_t)cnt, sizeof(*f->next_off));
        f->rpos = xreallocarray(f->rpos, (size_t)cnt, sizeof(*f->rpos));
        f->live = xreallocarray(f->live, (size_t)cnt, sizeof(*f->live));
        for (int32_t p = old; p < cnt; p++) f->next_off[p] = f->rpos[p] = f->live[p] = -1;
    }
    t->partition_cnt = cnt;
}

/* ------------------------------------------------------------------ feeds */

feed *feed_find(feed_table *ft, topic *t, const char *key, size_t key_len, int wildcard) {
    if (wildcard) return t->wild;
    uint64_t h = feed_hash(t, key, key_len, 0);
    for (feed *f = ft->fbuckets[h % ft->nfbuckets]; f; f = f->hnext)
        if (f->hash == h && f->t == t && !f->wildcard && f->key_len == key_len && memcmp(f->key, key, key_len) == 0)
            return f;
    return NULL;
}

feed *feed_lookup(feed_table *ft, const char *topic_name, const char *key, size_t key_len, int wildcard) {
    topic *t = topic_find(ft, topic_name, strlen(topic_name));
    return t && t->ready ? feed_find(ft, t, key, key_len, wildcard) : NULL;
}

feed *feed_create(feed_table *ft, topic *t, const char *key, size_t key_len, int wildcard) {
    feed *f = xcalloc(1, sizeof(*f));
    f->next_off = xcalloc((size_t)t->partition_cnt, sizeof(*f->next_off));
    f->rpos = xcalloc((size_t)t->partition_cnt, sizeof(*f->rpos));
    f->live = xcalloc((size_t)t->partition_cnt, sizeof(*f->live));
    for (int32_t p = 0; p < t->partition_cnt; p++) f->next_off[p] = f->rpos[p] = f->live[p] = -1; /* nothing read yet */
    if (!wildcard) f->key = xmemdup(key, key_len);
    f->key_len = wildcard ? 0 : key_len;
    f->wildcard = wildcard;
    f->t = t;
    f->role = ROLE_PENDING;
    f->handle = ++ft->next_handle ? ft->next_handle : ++ft->next_handle;
    f->hash = feed_hash(t, key, key_len, wildcard);
    f->partition = wildcard ? -1 : partitioner_partition(t->ptr, key, key_len, t->partition_cnt);
    if (wildcard)
        t->wild = f;
    else
        chain_insert((void ***)&ft->fbuckets, &ft->nfbuckets, ft->nfeeds, (chained *)f);
    f->tnext = t->feeds;
    if (t->feeds) t->feeds->tprev = f;
    t->feeds = f;
    ft->nfeeds++;
    return f;
}

void feed_free(feed_table *ft, feed *f) {
    topic *t = f->t;
    if (f->wildcard)
        t->wild = NULL;
    else
        chain_remove((void **)ft->fbuckets, ft->nfbuckets, (chained *)f);
    if (f->tprev)
        f->tprev->tnext = f->tnext;
    else
        t->feeds = f->tnext;
    if (f->tnext) f->tnext->tprev = f->tprev;
    ft->nfeeds--;
    if (f->linger_ev) event_free(f->linger_ev);
    proto_buf_free(&f->batch);
    free(f->next_off);
    free(f->rpos);
    free(f->live);
    free(f->marks);
    free(f->key);
    free(f);
}

int64_t feed_live_pos(const feed *f, int32_t p) {
    int64_t n = f->next_off[p];
    if (f->role == ROLE_RELAY) {
        if (f->rpos[p] > n) n = f->rpos[p];
    } else if (f->role == ROLE_OWNER && f->has_parts) {
        /* The consumer handed every record below its position to f. */
        const tpart *tp = &f->t->parts[p];
        if (tp->state == PART_ASSIGNED && tp->next > n) n = tp->next;
    }
    return n;
}

cu_part *cu_find(sub_catchup *cu, int32_t p) {
    if (cu->nparts == 0) return NULL;
    int64_t i = (int64_t)p - cu->parts[0].partition;
    return i >= 0 && (size_t)i < cu->nparts && cu->parts[i].partition == p ? &cu->parts[i] : NULL;
}

void cu_list_push(cu_part **head, cu_part *cp) {
    cp->list = head;
    cp->prev = NULL;
    cp->next = *head;
    if (*head) (*head)->prev = cp;
    *head = cp;
}

void cu_list_del(cu_part *cp) {
    if (!cp->list) return;
    if (cp->prev)
        cp->prev->next = cp->next;
    else
        *cp->list = cp->next;
    if (cp->next) cp->next->prev = cp->prev;
    cp->prev = cp->next = NULL;
    cp->list = NULL;
}

const char *feed_label(const feed *f) {
    static char buf[160];
    size_t n = (size_t)snprintf(buf, sizeof(buf), "%s/", f->t->name);
    if (n >= sizeof(buf)) return buf;
    if (f->wildcard) {
        snprintf(buf + n, sizeof(buf) - n, "*");
        return buf;
    }
    for (size_t i = 0; i < f->key_len && n + 4 < sizeof(buf); i++) {
        unsigned char ch = (unsigned char)f->key[i];
        buf[n++] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
    }
    if (f->key_len && n + 4 >= sizeof(buf)) memcpy(buf + n - 3, "...", 3);
    buf[n] = '\0';
    return buf;
}

void feed_range(const feed *f, int32_t *first, int32_t *last) {
    if (f->partition >= 0) {
        *first = *last = f->partition;
    } else {
        *first = 0;
        *last = f->t->partition_cnt - 1;
    }
}

coord_feed feed_coord(const feed *f) {
    return (coord_feed){f->t->name, f->key, f->key_len, f->wildcard};
}

/* -------------------------------------------------------------- sub lists */

void sub_list_push(sub **head, sub *s) {
    s->prev = NULL;
    s->next = *head;
    if (*head) (*head)->prev = s;
    *head = s;
}

void sub_list_del(sub **head, sub *s) {
    if (s->prev)
        s->prev->next = s->next;
    else
        *head = s->next;
    if (s->next) s->next->prev = s->prev;
    s->prev = s->next = NULL;
}

/* ---------------------------------------------------------------- tickets */

struct ticket {
    feed_table *ft;
    int wildcard;
    size_t key_len;
    char topic[256];              /* topic names are at most 249 bytes */
    char key[];
};

ticket *ticket_new(feed_table *ft, const feed *f) {
    ticket *tk = xmalloc(sizeof(*tk) + f->key_len);
    tk->ft = ft;
    tk->wildcard = f->wildcard;
    tk->key_len = f->key_len;
    snprintf(tk->topic, sizeof(tk->topic), "%s", f->t->name);
    if (f->key_len) memcpy(tk->key, f->key, f->key_len);
    return tk;
}

feed *ticket_take(ticket *tk) {
    feed *f = feed_lookup(tk->ft, tk->topic, tk->key, tk->key_len, tk->wildcard);
    free(tk);
    return f;
}
