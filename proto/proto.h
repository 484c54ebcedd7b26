/* proto.h -- the subway wire protocol: frame types, fields, error codes and a pure codec. */
#ifndef SUBWAY_PROTO_H
#define SUBWAY_PROTO_H

#include <stddef.h>
#include <stdint.h>

/*
 * A frame is a 4-byte big-endian unsigned body length followed by a msgpack
 * body: an array whose first element is the frame type (positive fixint) and
 * whose other elements are the type's fields, in the order given below.
 * PROTOCOL.md is the normative description; this header mirrors it.
 *
 *  type            dir  fields after the type
 *  1  HELLO        c>s  version:uint, client_name:str
 *  2  WELCOME      s>c  version:uint, node_id:str, heartbeat_ms:uint, max_frame:uint
 *  3  SUBSCRIBE    c>s  req_id:uint, topic:str, key:bin|str|nil   (nil = every key, "*")
 *                       [, start:[mode:uint, arg]]                 (version 2)
 *  4  SUBSCRIBED   s>c  req_id:uint, feed:uint, partitions:[uint...]
 *  5  UNSUBSCRIBE  c>s  req_id:uint, feed:uint
 *  6  UNSUBSCRIBED s>c  req_id:uint, feed:uint
 *  7  MESSAGE      s>c  feed:uint, partition:uint, offset:uint, timestamp_ms:int,
 *                       key:bin|nil, value:bin|nil [, headers:[[name:str, value:bin|nil]...]]
 *  8  PUBLISH      c>s  req_id:uint, topic:str, key:bin|str|nil, value:bin|str|nil
 *  9  PUBACK       s>c  req_id:uint, partition:uint, offset:uint
 *  10 PING         any  token:uint
 *  11 PONG         any  token:uint   (echoes the PING's token)
 *  12 ERROR        s>c  req_id:uint (0 = not tied to a request), code:uint, text:str
 *  13 DROPPED      s>c  feed:uint, count:uint
 *  14 GOAWAY       s>c  text:str
 *  15 LIVE         s>c  feed:uint, positions:[[partition:uint, offset:uint]...]  (version 2)
 *
 * Encoders always write the smallest msgpack representation (the golden
 * vectors in PROTOCOL.md depend on it), bin for bytes and str for text.
 * Decoders accept any integer width and both str and bin where a byte string
 * is expected, and reject everything else with PROTO_E_BAD_FRAME.
 */

#define PROTO_VERSION 3           /* the newest version this codec speaks */
#define PROTO_MIN_VERSION 1       /* the oldest a node still accepts */
#define PROTO_HEADER_SIZE 4
#define PROTO_DEFAULT_MAX_FRAME (1024 * 1024)   /* what a node accepts from a client by default */
/* The largest MESSAGE frame body a node sends by default (--max-message),
 * and so what clients accept by default: records up to ~16 MiB. */
#define PROTO_DEFAULT_MAX_MESSAGE (16 * 1024 * 1024)
#define PROTO_MIN_MAX_FRAME 64

typedef enum proto_type {
    PROTO_HELLO = 1,
    PROTO_WELCOME = 2,
    PROTO_SUBSCRIBE = 3,
    PROTO_SUBSCRIBED = 4,
    PROTO_UNSUBSCRIBE = 5,
    PROTO_UNSUBSCRIBED = 6,
    PROTO_MESSAGE = 7,
    PROTO_PUBLISH = 8,
    PROTO_PUBACK = 9,
    PROTO_PING = 10,
    PROTO_PONG = 11,
    PROTO_ERROR = 12,
    PROTO_DROPPED = 13,
    PROTO_GOAWAY = 14,
    PROTO_LIVE = 15,
    PROTO_AUTH = 16,
    PROTO_AUTHED = 17,
} proto_type;

#define PROTO_TYPE_MAX 17

/* Where a SUBSCRIBE starts (version 2): its optional start field is
 * [mode, arg]. Without it (PROTO_START_NONE) the feed starts at the log end. */
typedef enum proto_start_mode {
    PROTO_START_NONE = 0,         /* field absent: live from the log end */
    PROTO_START_POSITIONS = 1,    /* arg: [[partition, next offset]...]; partitions not listed start live */
    PROTO_START_TIMESTAMP = 2,    /* arg: int, ms since the epoch: Kafka's offsets-for-times */
    PROTO_START_LAST = 3,         /* arg: uint N: N records back from each partition's log end */
    PROTO_START_BEGINNING = 4,    /* arg: 0: each partition's log start */
    PROTO_START_OFFSET = 5,       /* arg: uint: the same offset in each partition */
} proto_start_mode;

#define PROTO_START_MAX 5

/* A partition and the offset of the next record in it (SUBSCRIBE start
 * positions, LIVE positions). */
typedef struct proto_position {
    uint32_t partition;
    uint64_t offset;
} proto_position;

/* Error codes carried by ERROR frames; programs switch on these. "close"
 * means the node closes the connection once the ERROR frame is flushed;
 * "refuse" means only the request is refused. */
typedef enum proto_err {
    PROTO_E_NONE = 0,
    PROTO_E_VERSION = 1,           /* close: unsupported protocol version */
    PROTO_E_FRAME_TOO_LARGE = 2,   /* close: length prefix above max_frame */
    PROTO_E_MALFORMED = 3,         /* close: body is not one valid msgpack value */
    PROTO_E_BAD_FRAME = 4,         /* close: not an array, wrong field count or types */
    PROTO_E_UNKNOWN_TYPE = 5,      /* refuse: frame type not known to this node */
    PROTO_E_HELLO_REQUIRED = 6,    /* close: first frame was not HELLO, or HELLO repeated */
    PROTO_E_TOO_MANY_SUBS = 7,     /* refuse: per-connection subscription limit */
    PROTO_E_TOO_MANY_CONNS = 8,    /* close: node connection limit */
    PROTO_E_INVALID_ARG = 9,       /* refuse: empty/oversize topic or key, bad name */
    PROTO_E_UNKNOWN_TOPIC = 10,    /* refuse: topic does not exist in Kafka */
    PROTO_E_ALREADY_SUBSCRIBED = 11, /* refuse: this connection already has that feed */
    PROTO_E_NOT_SUBSCRIBED = 12,   /* refuse: UNSUBSCRIBE of a feed handle not held */
    PROTO_E_KAFKA = 13,            /* refuse: Kafka failed the request (text says why) */
    PROTO_E_HEARTBEAT_TIMEOUT = 14, /* close: peer silent past the heartbeat timeout */
    PROTO_E_SLOW_CONSUMER = 15,    /* close: output over the hard limit / slow timeout */
    PROTO_E_SHUTTING_DOWN = 16,    /* refuse: node is draining */
    PROTO_E_UNAVAILABLE = 17,      /* refuse: coordination or Kafka temporarily unavailable */
    PROTO_E_INTERNAL = 18,         /* refuse: node-side failure (out of memory, ...) */
    PROTO_E_UNAUTHORIZED = 19,     /* close: token missing, invalid or expired */
    PROTO_E_FORBIDDEN = 20,        /* refuse: this request is not allowed to this client */
} proto_err;

#define PROTO_ERR_MAX 20

/* A byte string inside a decoded frame or to encode. ptr == NULL means msgpack
 * nil (for keys: every key / no key). Decoded pointers point into the caller's
 * input buffer. */
typedef struct proto_bytes {
    const char *ptr;
    size_t len;
} proto_bytes;

typedef struct proto_header {
    proto_bytes name;                 /* never nil */
    proto_bytes value;                /* may be nil */
} proto_header;

/* One frame, decoded or to encode. Only the fields of `type` are meaningful. */
typedef struct proto_frame {
    proto_type type;
    uint64_t req_id;                  /* SUBSCRIBE..PUBACK, ERROR */
    uint64_t version;                 /* HELLO, WELCOME */
    proto_bytes name;                 /* HELLO client_name, WELCOME node_id */
    uint64_t heartbeat_ms;            /* WELCOME */
    uint64_t max_frame;               /* WELCOME */
    proto_bytes auth;                 /* HELLO (optional, version 3), AUTH: the token; ptr NULL: none */
    uint64_t heartbeat_timeout_ms;    /* WELCOME (version 3, as the rest below) */
    uint64_t max_key;                 /* WELCOME */
    uint64_t max_subs;                /* WELCOME */
    proto_bytes client;               /* WELCOME: the token's sub, "" without a token */
    uint64_t expires_ms;              /* WELCOME, AUTHED: when the token expires (ms since 1970), 0: never */
    proto_bytes topic;                /* SUBSCRIBE, PUBLISH */
    proto_bytes key;                  /* SUBSCRIBE, MESSAGE, PUBLISH */
    proto_bytes value;                /* MESSAGE, PUBLISH */
    uint64_t feed;                    /* SUBSCRIBED, UNSUBSCRIBE(D), MESSAGE, DROPPED */
    const uint32_t *partitions;       /* SUBSCRIBED */
    size_t partition_cnt;
    uint32_t partition;               /* MESSAGE, PUBACK */
    uint64_t offset;                  /* MESSAGE, PUBACK */
    int64_t timestamp_ms;             /* MESSAGE (-1 when Kafka has none) */
    const proto_header *headers;      /* MESSAGE; NULL/0 encodes no headers element */
    size_t header_cnt;
    uint64_t token;                   /* PING, PONG */
    uint64_t code;                    /* ERROR (a proto_err) */
    proto_bytes text;                 /* ERROR, GOAWAY */
    uint64_t count;                   /* DROPPED */
    uint64_t start_mode;              /* SUBSCRIBE (a proto_start_mode; 0 = no start field) */
    int64_t start_arg;                /* SUBSCRIBE: TIMESTAMP, LAST, OFFSET argument */
    const proto_position *positions;  /* SUBSCRIBE (START_POSITIONS), LIVE */
    size_t position_cnt;
} proto_frame;

/* ---------------------------------------------------------------- decoding */

typedef enum proto_status {
    PROTO_FRAME = 1,                  /* one frame decoded, *consumed bytes used */
    PROTO_NEED_MORE = 0,              /* input holds no complete frame yet */
    PROTO_BAD_INPUT = -1,             /* input is bad: see proto_decoder_err*() */
} proto_status;

typedef struct proto_decoder proto_decoder;

/* Returns a decoder that accepts bodies up to max_frame bytes, or NULL on
 * out of memory. max_frame below PROTO_MIN_MAX_FRAME is raised to it. */
proto_decoder *proto_decoder_new(size_t max_frame);

/* Changes the largest body the decoder accepts from the next frame on (a
 * node accepts small frames until HELLO, then max_frame). */
void proto_decoder_set_max_frame(proto_decoder *d, size_t max_frame);

/* Frees the decoder and everything it allocated; accepts NULL. */
void proto_decoder_free(proto_decoder *d);

/* Decodes the first frame of buf[0..len). On PROTO_FRAME fills *f and sets
 * *consumed to the frame's total size (header + body); f's pointers point
 * into buf and into the decoder, valid until the next proto_decode() on d
 * and while buf is unchanged. On PROTO_NEED_MORE sets *consumed to 0. On
 * PROTO_BAD_INPUT the code and text are kept in the decoder; the stream
 * cannot be resynchronised, except after PROTO_E_UNKNOWN_TYPE, where
 * *consumed is the frame's size so the caller may skip it and go on. Never allocates per byte; allocation failure is
 * reported as PROTO_BAD_INPUT with PROTO_E_INTERNAL. */
proto_status proto_decode(proto_decoder *d, const char *buf, size_t len,
                          size_t *consumed, proto_frame *f);

/* The error of the last PROTO_BAD_INPUT: a proto_err code and a text for people. */
proto_err proto_decoder_err(const proto_decoder *d);
const char *proto_decoder_errstr(const proto_decoder *d);

/* Returns the body length announced by a complete 4-byte header. */
uint32_t proto_peek_length(const char *hdr);

/* ---------------------------------------------------------------- encoding */

/* A growable byte buffer frames are appended to. Zero-initialise, or
 * proto_buf_init(); free with proto_buf_free(). */
typedef struct proto_buf {
    char *data;
    size_t len;
    size_t cap;
} proto_buf;

void proto_buf_init(proto_buf *b);
void proto_buf_free(proto_buf *b);
void proto_buf_reset(proto_buf *b);   /* len = 0, keeps the memory */
/* Appends raw bytes. Returns 0, or -1 on out of memory (b unchanged). */
int proto_buf_append(proto_buf *b, const void *data, size_t len);

/* Appends the frame f (header + body) to b. Returns 0, or -1 when f->type is
 * unknown or memory ran out (b is then left as it was). */
int proto_encode(proto_buf *b, const proto_frame *f);

/* ------------------------------------------------------------------- names */

/* "HELLO", "SUBSCRIBE", ...; "UNKNOWN" for other values. */
const char *proto_type_name(uint64_t type);
/* "VERSION", "FRAME_TOO_LARGE", ...; "UNKNOWN" for other values. */
const char *proto_err_name(uint64_t code);

#endif
