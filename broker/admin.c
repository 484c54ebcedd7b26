/* admin.c -- the HTTP admin surface: its routes, its limits and its bearer token; GET /stats, /healthz and /readyz. */
#include "broker/admin.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/auth.h"
#include "broker/catchup.h"
#include "broker/conn.h"
#include "broker/feedpage.h"
#include "broker/health.h"
#include "broker/json.h"
#include "broker/keyfile.h"
#include "broker/log.h"
#include "broker/metrics.h"
#include "broker/table.h"
#include "broker/upstream.h"
#include "broker/xmalloc.h"
#include "proto/addr.h"

/* The feed table: "subscriptions", "feeds" and "assigned". */
static void feeds_json(feed_table *ft, struct evbuffer *out) {
    evbuffer_add_printf(out, "\"subscriptions\":%zu,\"feeds\":[", ft->nsubs);
    int first = 1;
    TABLE_FOR_EACH_TOPIC(ft, t)
        for (feed *f = t->feeds; f; f = f->tnext) {
            if (!first) evbuffer_add(out, ",", 1);
            first = 0;
            feedpage_feed_json(out, f, monotonic_ms());
        }
    evbuffer_add_printf(out, "],\"assigned\":[");
    first = 1;
    TABLE_FOR_EACH_TOPIC(ft, t)
        for (int32_t p = 0; t->ready && p < t->partition_cnt; p++) {
            if (t->parts[p].state != PART_ASSIGNED) continue;
            evbuffer_add_printf(out, "%s{\"topic\":", first ? "" : ",");
            first = 0;
            json_add_str(out, t->name, strlen(t->name));
            evbuffer_add_printf(out, ",\"partition\":%d}", (int)p);
        }
    evbuffer_add_printf(out, "]");
}

static int str_cmp(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* "clients": connections per client name (a token's sub, or anonymous). */
static void clients_json(broker *b, struct evbuffer *out) {
    size_t n = 0;
    const char **who = xcalloc(b->nconns + 1, sizeof(*who));
    for (conn *c = b->conns; c && n <= b->nconns; c = c->next)
        if (!(c->flags & CONN_REFUSED)) who[n++] = auth_who(c);
    qsort(who, n, sizeof(*who), str_cmp);
    evbuffer_add_printf(out, ",\"clients\":{");
    for (size_t i = 0, j; i < n; i = j) {
        for (j = i + 1; j < n && strcmp(who[i], who[j]) == 0; j++) {}
        evbuffer_add_printf(out, "%s", i ? "," : "");
        json_add_str(out, who[i], strlen(who[i]));
        evbuffer_add_printf(out, ":%zu", j - i);
    }
    evbuffer_add_printf(out, "}");
    free(who);
}

static void stats_cb(struct evhttp_request *req, void *arg) {
    broker *b = arg;
    struct evbuffer *out = evbuffer_new();
    if (!out) {
        evhttp_send_error(req, HTTP_INTERNAL, "out of memory");
        return;
    }
    const broker_counters *k = &b->ctr;
    evbuffer_add_printf(out, "{\"node_id\":\"%s\",\"version\":\"%s\",\"kafka\":", b->node_id, SUBWAY_VERSION);
    json_add_str(out, b->kafka_bootstrap, strlen(b->kafka_bootstrap));
    evbuffer_add_printf(out, ",\"uptime_ms\":%llu,"
                        "\"draining\":%s,\"connections\":%zu,\"coord\":\"%s\",\"redis\":\"%s\",",
                        (unsigned long long)(broker_now_ms() - b->start_ms), b->draining ? "true" : "false",
                        b->nconns, config_cluster(b->cfg) ? "redis" : "memory",
                        !config_cluster(b->cfg) ? "none" : coord_up(b->coord) ? "connected" : "down");
    feeds_json(b->feeds, out);
    clients_json(b, out);
    catchup_stats cs;
    catchup_stats_get(b->feeds, &cs);
    evbuffer_add_printf(out, ",\"lookups_queued\":%zu", b->up ? upstream_lookups_queued(b->up) : 0);
    evbuffer_add_printf(out, ",\"catchup\":{\"readers\":%zu,\"active\":%zu,\"queued\":%zu,\"reading\":%zu,"
                        "\"parked\":%zu,\"resolving\":%zu}",
                        cs.readers, cs.active, cs.queued, cs.reading, cs.parked, cs.resolving);
    evbuffer_add_printf(out, ",\"counters\":{\"records_in\":%llu,\"bytes_in\":%llu,\"records_out\":%llu,\"dropped\":%llu,"
                        "\"lost\":%llu,\"slow_closed\":%llu,\"heartbeat_closed\":%llu,\"hello_closed\":%llu,"
                        "\"input_paused\":%llu,\"auth_refused\":%llu,\"forbidden\":%llu,\"protocol_errors\":%llu,"
                        "\"conns_accepted\":%llu,\"conns_refused\":%llu,\"catchup_records\":%llu,"
                        "\"catchup_missing\":%llu,\"catchup_yields\":%llu,\"headers_cut\":%llu,\"oversize\":%llu,"
                        "\"tls_handshakes\":%llu,\"tls_handshake_failed\":%llu}}\n",
                        (unsigned long long)k->records_in, (unsigned long long)k->bytes_in, (unsigned long long)k->records_out,
                        (unsigned long long)k->dropped, (unsigned long long)k->lost, (unsigned long long)k->slow_closed,
                        (unsigned long long)k->heartbeat_closed, (unsigned long long)k->hello_closed,
                        (unsigned long long)k->input_paused, (unsigned long long)k->auth_refused,
                        (unsigned long long)k->forbidden, (unsigned long long)k->protocol_errors,
                        (unsigned long long)k->conns_accepted, (unsigned long long)k->conns_refused,
                        (unsigned long long)k->catchup_records, (unsigned long long)k->catchup_missing,
                        (unsigned long long)k->catchup_yields, (unsigned long long)k->headers_cut, (unsigned long long)k->oversize,
                        (unsigned long long)k->tls_handshakes, (unsigned long long)k->tls_handshake_failed);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    evhttp_send_reply(req, HTTP_OK, "OK", out);
    evbuffer_free(out);
}

static void send_text(struct evhttp_request *req, int code, const char *reason, const char *text) {
    struct evbuffer *out = evbuffer_new();
    if (!out) {
        evhttp_send_error(req, HTTP_INTERNAL, "out of memory");
        return;
    }
    evbuffer_add_printf(out, "%s\n", text);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "text/plain");
    evhttp_send_reply(req, code, reason, out);
    evbuffer_free(out);
}

/* Alive: the loop answers. Restart the node when this fails. */
static void healthz_cb(struct evhttp_request *req, void *arg) {
    send_text(req, HTTP_OK, "OK", "ok");
}

/* Ready: worth sending new clients to (health.c). 503 with the reasons
 * otherwise; load balancers check this one. */
static void readyz_cb(struct evhttp_request *req, void *arg) {
    char why[600], text[640];
    if (health_ready(arg, why, sizeof(why))) {
        send_text(req, HTTP_OK, "OK", "ready");
        return;
    }
    snprintf(text, sizeof(text), "not ready: %s", why);
    send_text(req, 503, "Not Ready", text);
}

/* The admin's limits: requests are small GETs, and a client that sends an
 * endless header or nothing at all is cut off. */
#define ADMIN_MAX_HEADERS 8192
#define ADMIN_MAX_BODY 1024
#define ADMIN_TIMEOUT_S 10

typedef struct route {
    const char *path;             /* exact, or a prefix when it ends in '/' */
    void (*cb)(struct evhttp_request *, void *);
    int open;                     /* served without the bearer token (load balancers' checks) */
} route;

static const route routes[] = {
    {"/healthz", healthz_cb, 1},
    {"/readyz", readyz_cb, 1},
    {"/stats", stats_cb, 0},
    {"/metrics", metrics_cb, 0},
    {"/feeds", feedpage_list_cb, 0},
    {"/feeds/", feedpage_gen_cb, 0},
    {"/cluster/feeds", feedpage_cluster_cb, 0},
};

/* 1 when the request carries "Authorization: Bearer <--admin-token-file>". */
static int authorized(broker *b, struct evhttp_request *req) {
    const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    static const char scheme[] = "Bearer ";
    if (!h || strncasecmp(h, scheme, sizeof(scheme) - 1) != 0) return 0;
    h += sizeof(scheme) - 1;
    return keyfile_equal(h, strlen(h), b->admin_token, b->admin_token_len);
}

static void route_cb(struct evhttp_request *req, void *arg) {
    broker *b = arg;
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    const route *r = NULL;
    for (size_t i = 0; path && i < sizeof(routes) / sizeof(routes[0]) && !r; i++) {
        size_t n = strlen(routes[i].path);
        if (routes[i].path[n - 1] == '/' ? strncmp(path, routes[i].path, n) == 0 : strcmp(path, routes[i].path) == 0)
            r = &routes[i];
    }
    if (!r) {
        feedpage_gen_cb(req, b);  /* its 404, in JSON or HTML as the client asks */
        return;
    }
    if (!r->open && b->admin_token && !authorized(b, req)) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate", "Bearer realm=\"subway\"");
        send_text(req, 401, "Unauthorized", "this page needs Authorization: Bearer <the node's --admin-token-file>");
        return;
    }
    r->cb(req, b);
}

/* 1 when host only takes connections from this machine. */
static int loopback_host(const char *host) {
    return strcmp(host, "localhost") == 0 || strcmp(host, "::1") == 0 || strncmp(host, "127.", 4) == 0;
}

int admin_start(broker *b, char *errstr, size_t errlen) {
    const char *addr = b->cfg->admin;
    if (!addr || strcmp(addr, "off") == 0 || !*addr) return 0;
    char host[256], why[300];
    int port;
    if (proto_addr_split(addr, host, sizeof(host), &port, why, sizeof(why)) < 0) {
        snprintf(errstr, errlen, "--admin: %s (or off)", why);
        return -1;
    }
    if (b->cfg->admin_token_file) {
        b->admin_token = keyfile_read(b->cfg->admin_token_file, 1, &b->admin_token_len, why, sizeof(why));
        if (!b->admin_token) {
            snprintf(errstr, errlen, "--admin-token-file: %s", why);
            return -1;
        }
        /* The token is the first line (README): a note below it is no part
         * of it, and no HTTP header could carry a line break anyway. */
        size_t n = strcspn(b->admin_token, "\r\n");
        while (n > 0 && (b->admin_token[n - 1] == ' ' || b->admin_token[n - 1] == '\t')) n--;
        b->admin_token[n] = '\0';
        b->admin_token_len = n;
        if (n == 0) {
            snprintf(errstr, errlen, "--admin-token-file %s: its first line (the token) is empty",
                     b->cfg->admin_token_file);
            return -1;
        }
    } else if (!loopback_host(host)) {
        snprintf(errstr, errlen,
                 "--admin %s is reachable from other hosts: give --admin-token-file FILE (the bearer token "
                 "its HTTP clients must send), or bind it to 127.0.0.1", addr);
        return -1;
    }
    b->admin = evhttp_new(b->base);
    if (!b->admin || evhttp_bind_socket(b->admin, host, (ev_uint16_t)port) < 0) {
        snprintf(errstr, errlen, "cannot serve the admin endpoint on %s", addr);
        return -1;
    }
    evhttp_set_allowed_methods(b->admin, EVHTTP_REQ_GET);
    evhttp_set_max_headers_size(b->admin, ADMIN_MAX_HEADERS);
    evhttp_set_max_body_size(b->admin, ADMIN_MAX_BODY);
    evhttp_set_timeout(b->admin, ADMIN_TIMEOUT_S);
    evhttp_set_gencb(b->admin, route_cb, b);
    log_info("admin on http://%s/stats", addr);
    return 0;
}

void admin_stop(broker *b) {
    if (b->admin) evhttp_free(b->admin);
    b->admin = NULL;
    feedpage_stop();
    free(b->admin_token);
    b->admin_token = NULL;
}
