/* tlserr.h -- OpenSSL's last error as one short text, for the node's and the client library's TLS messages. */
#ifndef SUBWAY_TLSERR_H
#define SUBWAY_TLSERR_H

/* The reason of the thread's last OpenSSL error ("certificate verify
 * failed", or strerror's text for a system error such as a missing file),
 * or fallback when there is none. Clears the error queue. The text is
 * static. */
const char *proto_tls_reason(const char *fallback);

#endif
