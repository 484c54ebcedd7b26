/* admin.c -- the HTTP admin surface: GET /stats (JSON) and GET /healthz. */
#include "broker/admin.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/feed.h"
#include "broker/log.h"

static void stats_cb(struct evhttp_request *req, void *arg) {
    broker *b = arg;
    struct evbuffer *out = evbuffer_new();
    if (!out) {
        evhttp_send_error(req, HTTP_INTERNAL, "out of memory");
        return;
    }
    const broker_counters *k = &b->ctr;
    evbuffer_add_printf(out, "{\"node_id\":\"%s\",\"version\":\"%s\",\"kafka\":\"%s\",\"uptime_ms\":%llu,"
                        "\"draining\":%s,\"connections\":%zu,\"coord\":\"%s\",\"redis\":\"%s\",",
                        b->node_id, SUBWAY_VERSION, b->kafka_bootstrap,
                        (unsigned long long)(broker_now_ms() - b->start_ms), b->draining ? "true" : "false",
                        b->nconns, b->cfg->redis ? "redis" : "memory",
                        !b->cfg->redis ? "none" : coord_up(b->coord) ? "connected" : "down");
    feed_table_stats_json(b->feeds, out);
    evbuffer_add_printf(out, ",\"counters\":{\"records_in\":%llu,\"bytes_in\":%llu,\"records_out\":%llu,\"dropped\":%llu,"
                        "\"lost\":%llu,\"slow_closed\":%llu,\"heartbeat_closed\":%llu,\"protocol_errors\":%llu,"
                        "\"conns_accepted\":%llu,\"conns_refused\":%llu}}\n",
                        (unsigned long long)k->records_in, (unsigned long long)k->bytes_in, (unsigned long long)k->records_out,
                        (unsigned long long)k->dropped, (unsigned long long)k->lost, (unsigned long long)k->slow_closed,
                        (unsigned long long)k->heartbeat_closed, (unsigned long long)k->protocol_errors,
                        (unsigned long long)k->conns_accepted, (unsigned long long)k->conns_refused);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    evhttp_send_reply(req, HTTP_OK, "OK", out);
    evbuffer_free(out);
}

static void healthz_cb(struct evhttp_request *req, void *arg) {
    broker *b = arg;
    struct evbuffer *out = evbuffer_new();
    if (!out) {
        evhttp_send_error(req, HTTP_INTERNAL, "out of memory");
        return;
    }
    evbuffer_add_printf(out, b->draining ? "draining\n" : "ok\n");
    evhttp_send_reply(req, b->draining ? 503 : HTTP_OK, b->draining ? "Draining" : "OK", out);
    evbuffer_free(out);
}

int admin_start(broker *b, char *errstr, size_t errlen) {
    const char *addr = b->cfg->admin;
    if (!addr || strcmp(addr, "off") == 0 || !*addr) return 0;
    const char *colon = strrchr(addr, ':');
    if (!colon) {
        snprintf(errstr, errlen, "--admin: '%s' is not HOST:PORT or off", addr);
        return -1;
    }
    char host[128];
    snprintf(host, sizeof(host), "%.*s", (int)(colon - addr), addr);
    b->admin = evhttp_new(b->base);
    if (!b->admin || evhttp_bind_socket(b->admin, host, (ev_uint16_t)atoi(colon + 1)) < 0) {
        snprintf(errstr, errlen, "cannot serve the admin endpoint on %s", addr);
        return -1;
    }
    evhttp_set_allowed_methods(b->admin, EVHTTP_REQ_GET);
    evhttp_set_cb(b->admin, "/stats", stats_cb, b);
    evhttp_set_cb(b->admin, "/healthz", healthz_cb, b);
    log_info("admin on http://%s/stats", addr);
    return 0;
}

void admin_stop(broker *b) {
    if (b->admin) evhttp_free(b->admin);
    b->admin = NULL;
}
