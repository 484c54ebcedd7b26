/* tlserr.c -- OpenSSL's last error as one short text, for the node's and the client library's TLS messages. */
#include "tlserr.h"

#include <openssl/err.h>
#include <string.h>

const char *proto_tls_reason(const char *fallback) {
    const char *r = NULL, *sys = NULL;
    unsigned long e;
    /* A system error (a missing file) is followed by OpenSSL's own "system
     * lib", which says nothing: the errno does. */
    while ((e = ERR_get_error()) != 0) {
        if (ERR_SYSTEM_ERROR(e))
            sys = strerror((int)ERR_GET_REASON(e));
        else if (ERR_reason_error_string(e))
            r = ERR_reason_error_string(e);
    }
    return sys ? sys : r ? r : fallback;
}
