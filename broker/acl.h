/* acl.h -- who may subscribe to and publish on which feeds: topic/key patterns from a token or --anonymous-acl. */
#ifndef SUBWAY_ACL_H
#define SUBWAY_ACL_H

#include <stddef.h>

#include <jansson.h>

#define ACL_MAX_PATTERNS 256      /* per list, per token */
#define ACL_MAX_PATTERN 1300      /* bytes: a topic (249), '/', a key (1024) and some globbing */

/* A pattern is TOPIC/KEY (split at the first '/': topics have none). In
 * each part '*' matches any run of bytes, '?' one byte, anything else
 * itself. A nil key (the every-key feed, a PUBLISH without key) is
 * matched only by a key part of exactly "*". */
typedef struct acl {
    char **subscribe;
    size_t subscribe_cnt;
    char **publish;
    size_t publish_cnt;
} acl;

/* From a verified token's claims: {"subway": {"subscribe": [...], "publish": [...]}};
 * a missing list allows nothing. Returns 0, or -1 with why in err. */
int acl_from_claims(acl *a, json_t *claims, char *err, size_t errlen);

/* Adds one --anonymous-acl entry, "subscribe:PATTERN" or "publish:PATTERN".
 * Returns 0, or -1 with why in err. */
int acl_add_spec(acl *a, const char *spec, char *err, size_t errlen);

/* Checks one pattern's form; NULL when fine, else why. */
const char *acl_pattern_problem(const char *pattern);

void acl_clear(acl *a);

/* 1 when a allows SUBSCRIBE / PUBLISH of topic and key (key NULL: nil). */
int acl_may_subscribe(const acl *a, const char *topic, size_t topic_len, const char *key, size_t key_len);
int acl_may_publish(const acl *a, const char *topic, size_t topic_len, const char *key, size_t key_len);

#endif
