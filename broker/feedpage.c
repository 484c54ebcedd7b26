/* feedpage.c -- the feed tables over HTTP: GET /feeds and /feeds/TOPIC/KEY (this node), /cluster/feeds (coordination), as JSON or browsable HTML. */
#include "broker/feedpage.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <sys/queue.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/auth.h"
#include "broker/conn.h"
#include "broker/json.h"
#include "broker/table.h"
#include "broker/xmalloc.h"
#include "coord/coord.h"

#define PER_PAGE_DEFAULT 50
#define PER_PAGE_MAX 1000         /* larger asks are cut to this */
#define PAGE_MAX 1000000000UL
#define FEEDS_PREFIX "/feeds/"

/* ------------------------------------------------------------------ escaping */

/* Appends s[0..len) as HTML text: printable ASCII as is (& < > " ' as
 * entities, a backslash doubled), every other byte as \xNN, so arbitrary
 * key bytes show unambiguously and can never open markup. */
static void html_add(struct evbuffer *out, const char *s, size_t len) {
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '&': evbuffer_add(out, "&amp;", 5); break;
        case '<': evbuffer_add(out, "&lt;", 4); break;
        case '>': evbuffer_add(out, "&gt;", 4); break;
        case '"': evbuffer_add(out, "&quot;", 6); break;
        case '\'': evbuffer_add(out, "&#39;", 5); break;
        case '\\': evbuffer_add(out, "\\\\", 2); break;
        default:
            if (c < 0x20 || c >= 0x7f)
                evbuffer_add_printf(out, "\\x%02x", c);
            else
                evbuffer_add(out, &s[i], 1);
        }
    }
}

/* Appends s[0..len) percent-encoded for one URL path segment: unreserved
 * characters as is, every other byte as %XX (safe inside an attribute). */
static void url_add(struct evbuffer *out, const char *s, size_t len) {
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
            c == '_' || c == '~')
            evbuffer_add(out, &s[i], 1);
        else
            evbuffer_add_printf(out, "%%%02X", c);
    }
}

/* f's page: /feeds/TOPIC/KEY, a bare * for the every-key feed. */
static void feed_href(struct evbuffer *out, const feed *f) {
    evbuffer_add(out, FEEDS_PREFIX, strlen(FEEDS_PREFIX));
    url_add(out, f->t->name, strlen(f->t->name));
    evbuffer_add(out, "/", 1);
    if (f->wildcard)
        evbuffer_add(out, "*", 1);
    else
        url_add(out, f->key, f->key_len);
}

/* ---------------------------------------------------------------- the table */

/* By topic, then key bytes, the every-key feed first. */
static int feed_cmp(const void *a, const void *b) {
    const feed *x = *(feed *const *)a, *y = *(feed *const *)b;
    int c = strcmp(x->t->name, y->t->name);
    if (c) return c;
    if (x->wildcard != y->wildcard) return x->wildcard ? -1 : 1;
    size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
    c = n ? memcmp(x->key, y->key, n) : 0;
    if (c) return c;
    return (x->key_len > y->key_len) - (x->key_len < y->key_len);
}

/* Every feed of ft, sorted (feed_cmp), in a new array the caller frees. */
static feed **sorted_feeds(feed_table *ft, size_t *n) {
    size_t cnt = 0;
    TABLE_FOR_EACH_TOPIC(ft, t)
        for (feed *f = t->feeds; f; f = f->tnext) cnt++;
    feed **v = xmalloc((cnt ? cnt : 1) * sizeof(*v));
    size_t i = 0;
    TABLE_FOR_EACH_TOPIC(ft, t)
        for (feed *f = t->feeds; f; f = f->tnext) v[i++] = f;
    qsort(v, cnt, sizeof(*v), feed_cmp);
    *n = cnt;
    return v;
}

static long long last_record_age(const feed *f, uint64_t now_ms) {
    return f->last_record_ms ? (long long)(now_ms - f->last_record_ms) : -1;
}

/* f's summary fields after an opening brace, without the closing one. */
static void feed_fields_json(struct evbuffer *out, const feed *f, uint64_t now_ms) {
    evbuffer_add_printf(out, "{\"topic\":");
    json_add_str(out, f->t->name, strlen(f->t->name));
    evbuffer_add_printf(out, ",\"key\":");
    if (f->wildcard)
        evbuffer_add_printf(out, "null");
    else
        json_add_str(out, f->key, f->key_len);
    evbuffer_add_printf(out, ",\"handle\":%u,\"subscribers\":%zu,\"partitions\":[", f->handle, f->nsubs);
    int32_t a, z;
    feed_range(f, &a, &z);
    for (int32_t p = a; p <= z; p++) evbuffer_add_printf(out, "%s%d", p == a ? "" : ",", (int)p);
    evbuffer_add_printf(out, "],\"records\":%llu,\"lingering\":%s,\"ready\":%s,\"role\":\"%s\","
                        "\"fenced\":%s,\"repairing\":%s,\"local\":%ld,\"cluster_count\":%ld,\"nodes\":%ld,"
                        "\"last_record_age_ms\":",
                        (unsigned long long)f->records, f->lingering ? "true" : "false", f->ready ? "true" : "false",
                        feed_role_name(f->role), f->fenced ? "true" : "false", f->repairing ? "true" : "false",
                        f->local, f->cluster_count, f->nodes);
    long long age = last_record_age(f, now_ms);
    if (age < 0)
        evbuffer_add_printf(out, "null");
    else
        evbuffer_add_printf(out, "%lld", age);
}

void feedpage_feed_json(struct evbuffer *out, const feed *f, uint64_t now_ms) {
    feed_fields_json(out, f, now_ms);
    evbuffer_add(out, "}", 1);
}

#define PAGE_SUBSCRIBERS 100      /* subscribers a feed's page names */

/* The first PAGE_SUBSCRIBERS subscribers of f: who (the token's sub, or
 * anonymous) and from where, as JSON objects. */
static void subscribers_json(struct evbuffer *out, const feed *f) {
    evbuffer_add_printf(out, ",\"clients\":[");
    size_t n = 0;
    for (const sub *s = f->subs; s && n < PAGE_SUBSCRIBERS; s = s->next, n++) {
        const char *who = auth_who(s->c);
        evbuffer_add_printf(out, "%s{\"client\":", n ? "," : "");
        json_add_str(out, who, strlen(who));
        evbuffer_add_printf(out, ",\"peer\":");
        json_add_str(out, s->c->peer, strlen(s->c->peer));
        evbuffer_add_printf(out, ",\"conn\":%llu}", (unsigned long long)s->c->id);
    }
    evbuffer_add_printf(out, "]");
}

static void subscribers_html(struct evbuffer *out, const feed *f) {
    evbuffer_add_printf(out, "<h2>Subscribers</h2><table id=clients><thead><tr><th>client</th><th>peer</th>"
                        "<th>connection</th></tr></thead><tbody>");
    size_t n = 0;
    for (const sub *s = f->subs; s && n < PAGE_SUBSCRIBERS; s = s->next, n++) {
        const char *who = auth_who(s->c);
        evbuffer_add_printf(out, "<tr><td>");
        html_add(out, who, strlen(who));
        evbuffer_add_printf(out, "</td><td>");
        html_add(out, s->c->peer, strlen(s->c->peer));
        evbuffer_add_printf(out, "</td><td class=n>%llu</td></tr>", (unsigned long long)s->c->id);
    }
    evbuffer_add_printf(out, "</tbody></table>%s", f->nsubs > PAGE_SUBSCRIBERS ? "<p>(the first 100)</p>" : "");
}

/* f's summary, whether subscriptions wait for it, and per partition its
 * offsets: next_off (owner: where its next record is read from), rpos (the
 * relay stream's position), live (feed_live_pos), -1 when not known. */
static void feed_detail_json(struct evbuffer *out, const feed *f, uint64_t now_ms) {
    feed_fields_json(out, f, now_ms);
    subscribers_json(out, f);
    evbuffer_add_printf(out, ",\"waiting\":%s,\"offsets\":[", f->waiters ? "true" : "false");
    int32_t a, z;
    feed_range(f, &a, &z);
    for (int32_t p = a; p <= z; p++)
        evbuffer_add_printf(out, "%s{\"partition\":%d,\"next_off\":%lld,\"rpos\":%lld,\"live\":%lld,"
                            "\"assigned\":%s}",
                            p == a ? "" : ",", (int)p, (long long)f->next_off[p], (long long)f->rpos[p],
                            (long long)feed_live_pos(f, p), f->t->parts[p].state == PART_ASSIGNED ? "true" : "false");
    evbuffer_add_printf(out, "]}\n");
}

/* ----------------------------------------------------------------- requests */

static int wants_html(struct evhttp_request *req) {
    const char *acc = evhttp_find_header(evhttp_request_get_input_headers(req), "Accept");
    return acc && strstr(acc, "text/html") != NULL;
}

static void reply(struct evhttp_request *req, int html, int code, const char *reason, struct evbuffer *out) {
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      html ? "text/html; charset=utf-8" : "application/json");
    evhttp_send_reply(req, code, reason, out);
    evbuffer_free(out);
}

/* Answers code with msg, as {"error": msg} or a small page. */
static void reply_error(struct evhttp_request *req, int html, int code, const char *reason, const char *msg) {
    struct evbuffer *out = evbuffer_new();
    if (!out) {
        evhttp_send_error(req, HTTP_INTERNAL, "out of memory");
        return;
    }
    if (html) {
        evbuffer_add_printf(out, "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>%d</title></head>"
                            "<body><h1>%d %s</h1><p>", code, code, reason);
        html_add(out, msg, strlen(msg));
        evbuffer_add_printf(out, "</p><p><a href=\"/feeds\">all feeds</a></p></body></html>\n");
    } else {
        evbuffer_add_printf(out, "{\"error\":");
        json_add_str(out, msg, strlen(msg));
        evbuffer_add_printf(out, "}\n");
    }
    reply(req, html, code, reason, out);
}

/* v as an integer in [1, max]: 0, or -1 for anything else (signs, spaces,
 * empty, too many digits). */
static int parse_count(const char *v, unsigned long max, unsigned long *out) {
    unsigned long n = 0;
    if (!*v) return -1;
    for (const char *p = v; *p; p++) {
        if (*p < '0' || *p > '9') return -1;
        n = n * 10 + (unsigned long)(*p - '0');
        if (n > max) return -1;
    }
    if (n == 0) return -1;
    *out = n;
    return 0;
}

/* page and per_page of req's query (defaults 1 and PER_PAGE_DEFAULT,
 * per_page cut to PER_PAGE_MAX): 0, or -1 with why filled. */
static int page_args(struct evhttp_request *req, unsigned long *page, unsigned long *per_page, char *why,
                     size_t len) {
    *page = 1;
    *per_page = PER_PAGE_DEFAULT;
    const char *q = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    if (!q) return 0;
    struct evkeyvalq kv;
    TAILQ_INIT(&kv);
    int rc = 0;
    if (evhttp_parse_query_str(q, &kv) < 0) {
        snprintf(why, len, "malformed query string");
        rc = -1;
    }
    const char *v;
    if (rc == 0 && (v = evhttp_find_header(&kv, "page")) && parse_count(v, PAGE_MAX, page) < 0) {
        snprintf(why, len, "page must be an integer from 1 to %lu", PAGE_MAX);
        rc = -1;
    }
    if (rc == 0 && (v = evhttp_find_header(&kv, "per_page"))) {
        if (parse_count(v, ~0UL / 10, per_page) < 0) {
            snprintf(why, len, "per_page must be a positive integer (at most %d are given)", PER_PAGE_MAX);
            rc = -1;
        } else if (*per_page > PER_PAGE_MAX) {
            *per_page = PER_PAGE_MAX;
        }
    }
    evhttp_clear_headers(&kv);
    return rc;
}

/* ---------------------------------------------------------------- HTML */

static const char page_head[] =
    "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>%s</title><style>"
    "body{font:14px sans-serif;margin:1.5em}table{border-collapse:collapse}"
    "th,td{border:1px solid #ccc;padding:3px 8px;text-align:left}"
    "th[data-col]{cursor:pointer;background:#eef}td.n{text-align:right}"
    "i{color:#777}code{background:#f4f4f4}</style></head><body>";

/* Sorts #feeds by the clicked column, numerically when both cells are
 * numbers; a second click reverses. */
static const char sort_js[] =
    "<script>document.querySelectorAll('#feeds th[data-col]').forEach(function(th){"
    "th.onclick=function(){var tb=document.querySelector('#feeds tbody'),c=+th.dataset.col,"
    "d=th.dataset.dir=th.dataset.dir==='1'?'-1':'1',rows=Array.from(tb.rows);"
    "rows.sort(function(a,b){var x=a.cells[c].textContent,y=b.cells[c].textContent,"
    "nx=parseFloat(x),ny=parseFloat(y);"
    "return d*(!isNaN(nx)&&!isNaN(ny)?nx-ny:x.localeCompare(y));});"
    "rows.forEach(function(r){tb.appendChild(r);});};});</script>";

static const char *const list_cols[] = {"topic", "key", "role", "subscribers", "partitions", "records",
                                        "last record (ms ago)", "lingering", "cluster count"};

static void html_key(struct evbuffer *out, const feed *f) {
    if (f->wildcard)
        evbuffer_add_printf(out, "<i>* (every key)</i>");
    else
        html_add(out, f->key, f->key_len);
}

static void html_age(struct evbuffer *out, const feed *f, uint64_t now_ms) {
    long long age = last_record_age(f, now_ms);
    if (age < 0)
        evbuffer_add_printf(out, "<i>never</i>");
    else
        evbuffer_add_printf(out, "%lld", age);
}

static void html_row(struct evbuffer *out, const feed *f, uint64_t now_ms) {
    int32_t a, z;
    feed_range(f, &a, &z);
    evbuffer_add_printf(out, "<tr><td>");
    html_add(out, f->t->name, strlen(f->t->name));
    evbuffer_add_printf(out, "</td><td><a href=\"");
    feed_href(out, f);
    evbuffer_add_printf(out, "\">");
    html_key(out, f);
    evbuffer_add_printf(out, "</a></td><td>%s</td><td class=n>%zu</td><td>", feed_role_name(f->role), f->nsubs);
    if (a == z)
        evbuffer_add_printf(out, "%d", (int)a);
    else
        evbuffer_add_printf(out, "%d-%d", (int)a, (int)z);
    evbuffer_add_printf(out, "</td><td class=n>%llu</td><td class=n>", (unsigned long long)f->records);
    html_age(out, f, now_ms);
    evbuffer_add_printf(out, "</td><td>%s</td><td class=n>%ld</td></tr>", f->lingering ? "yes" : "no",
                        f->cluster_count);
}

static void html_list(struct evbuffer *out, broker *b, feed **v, size_t n, unsigned long page,
                      unsigned long per_page, size_t from, size_t to) {
    uint64_t now = broker_now_ms();
    evbuffer_add_printf(out, page_head, "subway feeds");
    evbuffer_add_printf(out, "<h1>Feeds of node <code>");
    html_add(out, b->node_id, strlen(b->node_id));
    evbuffer_add_printf(out, "</code></h1><p>%zu feeds; page %lu, %lu per page. Click a column to sort this page.</p>"
                        "<table id=feeds><thead><tr>", n, page, per_page);
    for (size_t c = 0; c < sizeof(list_cols) / sizeof(list_cols[0]); c++)
        evbuffer_add_printf(out, "<th data-col=%zu>%s</th>", c, list_cols[c]);
    evbuffer_add_printf(out, "</tr></thead><tbody>");
    for (size_t i = from; i < to; i++) html_row(out, v[i], now);
    evbuffer_add_printf(out, "</tbody></table><p class=pages>");
    if (page > 1)
        evbuffer_add_printf(out, "<a rel=prev href=\"/feeds?page=%lu&amp;per_page=%lu\">previous</a> ", page - 1,
                            per_page);
    if (to < n)
        evbuffer_add_printf(out, "<a rel=next href=\"/feeds?page=%lu&amp;per_page=%lu\">next</a>", page + 1,
                            per_page);
    evbuffer_add_printf(out, "</p>%s</body></html>\n", sort_js);
}

static void html_feed(struct evbuffer *out, const feed *f) {
    uint64_t now = broker_now_ms();
    evbuffer_add_printf(out, page_head, "subway feed");
    evbuffer_add_printf(out, "<p><a href=\"/feeds\">all feeds</a></p><h1>");
    html_add(out, f->t->name, strlen(f->t->name));
    evbuffer_add_printf(out, " / ");
    html_key(out, f);
    evbuffer_add_printf(out, "</h1><table id=feed><tbody>"
                        "<tr><th>role</th><td>%s</td></tr><tr><th>subscribers</th><td>%zu</td></tr>"
                        "<tr><th>waiting</th><td>%s</td></tr><tr><th>records</th><td>%llu</td></tr>"
                        "<tr><th>last record (ms ago)</th><td>",
                        feed_role_name(f->role), f->nsubs, f->waiters ? "yes" : "no",
                        (unsigned long long)f->records);
    html_age(out, f, now);
    evbuffer_add_printf(out, "</td></tr><tr><th>ready</th><td>%s</td></tr><tr><th>lingering</th><td>%s</td></tr>"
                        "<tr><th>fenced</th><td>%s</td></tr><tr><th>repairing</th><td>%s</td></tr>"
                        "<tr><th>cluster count</th><td>%ld</td></tr><tr><th>nodes</th><td>%ld</td></tr>"
                        "</tbody></table><h2>Partitions</h2><table id=feeds><thead><tr>"
                        "<th data-col=0>partition</th><th data-col=1>next offset (owner)</th>"
                        "<th data-col=2>relay position</th><th data-col=3>live position</th>"
                        "<th data-col=4>assigned</th></tr></thead><tbody>",
                        f->ready ? "yes" : "no", f->lingering ? "yes" : "no", f->fenced ? "yes" : "no",
                        f->repairing ? "yes" : "no", f->cluster_count, f->nodes);
    int32_t a, z;
    feed_range(f, &a, &z);
    for (int32_t p = a; p <= z; p++)
        evbuffer_add_printf(out, "<tr><td class=n>%d</td><td class=n>%lld</td><td class=n>%lld</td>"
                            "<td class=n>%lld</td><td>%s</td></tr>",
                            (int)p, (long long)f->next_off[p], (long long)f->rpos[p],
                            (long long)feed_live_pos(f, p), f->t->parts[p].state == PART_ASSIGNED ? "yes" : "no");
    evbuffer_add_printf(out, "</tbody></table><p>-1: not known.</p>");
    subscribers_html(out, f);
    evbuffer_add_printf(out, "%s</body></html>\n", sort_js);
}

/* ---------------------------------------------------------------- routes */

/* The page asked for; -1 when the query is bad (400 already sent). */
static int paged_request(struct evhttp_request *req, int html, unsigned long *page, unsigned long *per_page) {
    char why[128];
    if (page_args(req, page, per_page, why, sizeof(why)) == 0) return 0;
    reply_error(req, html, HTTP_BADREQUEST, "Bad Request", why);
    return -1;
}

void feedpage_list_cb(struct evhttp_request *req, void *cb_data) {
    broker *b = cb_data;
    int html = wants_html(req);
    unsigned long page, per_page;
    if (paged_request(req, html, &page, &per_page) < 0) return;
    struct evbuffer *out = evbuffer_new();
    if (!out) {
        evhttp_send_error(req, HTTP_INTERNAL, "out of memory");
        return;
    }
    size_t n;
    feed **v = sorted_feeds(b->feeds, &n);
    unsigned long long skip = (unsigned long long)(page - 1) * per_page;
    size_t from = skip < n ? (size_t)skip : n;
    size_t to = n - from > per_page ? from + per_page : n;
    if (html) {
        html_list(out, b, v, n, page, per_page, from, to);
    } else {
        uint64_t now = broker_now_ms();
        evbuffer_add_printf(out, "{\"results\":[");
        for (size_t i = from; i < to; i++) {
            if (i > from) evbuffer_add(out, ",", 1);
            feedpage_feed_json(out, v[i], now);
        }
        evbuffer_add_printf(out, "],\"page\":%lu,\"per_page\":%lu,\"total\":%zu}\n", page, per_page, n);
    }
    free(v);
    reply(req, html, HTTP_OK, "OK", out);
}

/* ------------------------------------------------------- the cluster's table */

/* A GET /cluster/feeds waiting for coordination. admin_stop() frees the
 * HTTP server (and its requests) first: feedpage_stop() then leaves each
 * waiting one without a request, and its answer is dropped. */
typedef struct cluster_wait {
    struct evhttp_request *req;   /* NULL once the server is gone */
    unsigned long page, per_page;
    int html;
    struct cluster_wait *next;
} cluster_wait;

static cluster_wait *cluster_waits;

static void cluster_listed(void *cb_data, const coord_feed_list *l) {
    cluster_wait *w = cb_data;
    for (cluster_wait **pp = &cluster_waits; *pp; pp = &(*pp)->next)
        if (*pp == w) {
            *pp = w->next;
            break;
        }
    struct evhttp_request *req = w->req;
    int html = w->html;
    unsigned long page = w->page, per_page = w->per_page;
    free(w);
    if (!req) return;
    if (l->errstr) {
        reply_error(req, html, 503, "Service Unavailable", l->errstr);
        return;
    }
    struct evbuffer *out = evbuffer_new();
    if (!out) {
        evhttp_send_error(req, HTTP_INTERNAL, "out of memory");
        return;
    }
    evbuffer_add_printf(out, "{\"results\":[");
    for (size_t i = 0; i < l->n; i++) {
        const coord_feed_info *fi = &l->feeds[i];
        const char *slash = memchr(fi->name, '/', fi->name_len);
        size_t tl = slash ? (size_t)(slash - fi->name) : fi->name_len;
        const char *key = slash ? slash + 1 : "";
        size_t kl = slash ? fi->name_len - tl - 1 : 0;
        evbuffer_add_printf(out, "%s{\"topic\":", i ? "," : "");
        json_add_str(out, fi->name, tl);
        evbuffer_add_printf(out, ",\"key\":");
        if (kl == 1 && key[0] == '*')
            evbuffer_add_printf(out, "null");   /* the every-key feed, as on /feeds */
        else
            json_add_str(out, key, kl);
        evbuffer_add_printf(out, ",\"count\":%ld,\"owner\":", fi->count);
        json_add_str(out, fi->owner, strlen(fi->owner));
        evbuffer_add_printf(out, ",\"owner_ttl_ms\":%lld}", fi->owner_ttl_ms);
    }
    evbuffer_add_printf(out, "],\"page\":%lu,\"per_page\":%lu,\"total\":%zu}\n", page, per_page, l->total);
    reply(req, 0, HTTP_OK, "OK", out);
}

void feedpage_cluster_cb(struct evhttp_request *req, void *cb_data) {
    broker *b = cb_data;
    int html = wants_html(req);
    unsigned long page, per_page;
    if (paged_request(req, html, &page, &per_page) < 0) return;
    cluster_wait *w = xcalloc(1, sizeof(*w));
    *w = (cluster_wait){.req = req, .page = page, .per_page = per_page, .html = html, .next = cluster_waits};
    cluster_waits = w;
    coord_list_feeds(b->coord, (size_t)(page - 1) * per_page, per_page, cluster_listed, w);
}

void feedpage_stop(void) {
    for (cluster_wait *w = cluster_waits; w; w = w->next) w->req = NULL;
}

/* The feed rest (the path after FEEDS_PREFIX, still encoded) names:
 * TOPIC/KEY, KEY being everything after the first slash; or NULL. */
static feed *feed_of_path(feed_table *ft, const char *rest) {
    const char *slash = strchr(rest, '/');
    if (!slash || slash == rest) return NULL;
    char *enc = xmalloc((size_t)(slash - rest) + 1);
    memcpy(enc, rest, (size_t)(slash - rest));
    enc[slash - rest] = '\0';
    size_t tlen = 0;
    char *tname = evhttp_uridecode(enc, 0, &tlen);
    free(enc);
    feed *f = NULL;
    const char *k = slash + 1;
    if (!tname || strlen(tname) != tlen) {
        /* a NUL in a topic name: no such topic */
    } else if (strcmp(k, "*") == 0) {
        f = feed_lookup(ft, tname, NULL, 0, 1);
    } else {
        size_t klen = 0;
        char *key = evhttp_uridecode(k, 0, &klen);
        if (key) f = feed_lookup(ft, tname, key, klen, 0);
        free(key);
    }
    free(tname);
    return f;
}

void feedpage_gen_cb(struct evhttp_request *req, void *cb_data) {
    broker *b = cb_data;
    int html = wants_html(req);
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    if (!path || strncmp(path, FEEDS_PREFIX, strlen(FEEDS_PREFIX)) != 0) {
        reply_error(req, html, HTTP_NOTFOUND, "Not Found", "no such page (see /stats, /feeds)");
        return;
    }
    feed *f = feed_of_path(b->feeds, path + strlen(FEEDS_PREFIX));
    if (!f) {
        reply_error(req, html, HTTP_NOTFOUND, "Not Found", "no such feed on this node (GET /feeds/TOPIC/KEY, * for every key)");
        return;
    }
    struct evbuffer *out = evbuffer_new();
    if (!out) {
        evhttp_send_error(req, HTTP_INTERNAL, "out of memory");
        return;
    }
    if (html) {
        html_feed(out, f);
    } else {
        feed_detail_json(out, f, broker_now_ms());
    }
    reply(req, html, HTTP_OK, "OK", out);
}
