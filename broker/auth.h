/* auth.h -- the node's access policy: --auth modes, tokens at HELLO and AUTH, and what each connection may do. */
#ifndef SUBWAY_AUTH_H
#define SUBWAY_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "broker/broker.h"
#include "proto/proto.h"

typedef enum auth_mode { AUTH_OFF, AUTH_OPTIONAL, AUTH_REQUIRED } auth_mode;

/* Loads the keys and the anonymous ACL named by the options. Returns 0, or
 * -1 with why in err (a bad key file, a mode without keys). */
int auth_start(broker *b, char *err, size_t errlen);
void auth_stop(broker *b);

/* HELLO: takes the token (ptr NULL: none) for c. Returns 0 (c's identity and
 * permissions are set), or -1 with the UNAUTHORIZED text in err. */
int auth_hello(conn *c, proto_bytes token, char *err, size_t errlen);

/* AUTH: replaces c's token. The new one must verify, name the same sub,
 * and allow every subscription c holds. Returns 0, or -1 with the code
 * (UNAUTHORIZED: close; FORBIDDEN: refused, the old token stays) and text. */
int auth_refresh(conn *c, proto_bytes token, proto_err *code, char *err, size_t errlen);

/* Whether c may SUBSCRIBE to / PUBLISH on topic and key (key NULL: nil). */
int auth_may_subscribe(const conn *c, const char *topic_name, size_t topic_len, const char *key, size_t key_len);
int auth_may_publish(const conn *c, const char *topic_name, size_t topic_len, const char *key, size_t key_len);

/* The name c goes by in logs and pages: the token's sub, or "anonymous". */
const char *auth_who(const conn *c);

/* When c's token expires (ms since 1970; 0: never). */
uint64_t auth_expires_ms(const conn *c);

/* Milliseconds since 1970: tokens' clock. */
uint64_t auth_wall_ms(void);

/* Releases c's identity and permissions. */
void auth_conn_free(conn *c);

#endif
