"""errors.py -- the exceptions of the subway client, each carrying a protocol or library error code."""

import enum
from typing import Optional, Union


class ErrorCode(enum.IntEnum):
    """Error codes. Below 100 a node sent them in an ERROR frame
    (PROTOCOL.md section 4); from 100 up the client found the problem
    itself. The numbers are libsubway's (proto/subway.h), so a Python
    program and a C one log the same code for the same failure."""

    VERSION = 1               # close: unsupported protocol version
    FRAME_TOO_LARGE = 2       # close: a frame above the receiver's limit
    MALFORMED = 3             # close: a body that is not one valid msgpack value
    BAD_FRAME = 4             # close: not an array, wrong field count or types
    UNKNOWN_TYPE = 5          # refuse: a frame type the receiver does not know
    HELLO_REQUIRED = 6        # close: first frame was not HELLO, or HELLO repeated
    TOO_MANY_SUBS = 7         # refuse: per-connection subscription limit
    TOO_MANY_CONNS = 8        # close: the node's connection limit
    INVALID_ARG = 9           # refuse: empty/oversize topic or key, bad name
    UNKNOWN_TOPIC = 10        # refuse: topic does not exist in Kafka
    ALREADY_SUBSCRIBED = 11   # refuse: this connection already has that feed
    NOT_SUBSCRIBED = 12       # refuse: UNSUBSCRIBE of a feed not held
    KAFKA = 13                # refuse: Kafka failed the request (text says why)
    HEARTBEAT_TIMEOUT = 14    # close: this client was silent past the heartbeat timeout
    SLOW_CONSUMER = 15        # close: this client read too slowly
    SHUTTING_DOWN = 16        # refuse: the node is draining
    UNAVAILABLE = 17          # refuse: coordination or Kafka temporarily unavailable
    INTERNAL = 18             # refuse: node-side failure
    UNAUTHORIZED = 19         # close: token missing, invalid or expired
    FORBIDDEN = 20            # refuse: this client may not subscribe or publish there
    IO = 100                  # socket error: connect, read or write failed
    EOF = 101                 # the node closed the connection
    PROTOCOL = 102            # the node sent an unexpected frame
    TIMEOUT = 103             # connect/handshake or heartbeat timeout
    ARG = 105                 # bad argument: address, start, frame above the node's max_frame
    CLOSED = 107              # the client was closed before the request was answered
    GOAWAY = 110              # the node closed the connection after GOAWAY
    LOST = 111                # the connection was lost while the request was in flight
    UNSUPPORTED = 112         # the node's protocol version lacks it (a start on version 1)


def code_name(code: int) -> str:
    """The name of an error code ("UNKNOWN_TOPIC"), or "UNKNOWN"."""
    try:
        return ErrorCode(code).name
    except ValueError:
        return "UNKNOWN"


def _as_code(code: int) -> Union[ErrorCode, int]:
    try:
        return ErrorCode(code)
    except ValueError:
        return code


class SubwayError(Exception):
    """Base of every subway exception. `code` is an ErrorCode (a plain int
    for a code this client does not know), `name` its name, `text` the
    words for people: switch on `code`, never parse `text`."""

    def __init__(self, code: int, text: str):
        self.code = _as_code(code)
        self.name = code_name(code)
        self.text = text
        super().__init__("%s (%d): %s" % (self.name, int(code), text))


class ServerError(SubwayError):
    """The node refused a request, or closed the connection, with an ERROR
    frame. `req_id` is the refused request's id, 0 for the connection."""

    def __init__(self, code: int, text: str, req_id: int = 0):
        super().__init__(code, text)
        self.req_id = req_id


class ProtocolError(SubwayError):
    """Bytes from the node that are not a valid frame (code FRAME_TOO_LARGE,
    MALFORMED, BAD_FRAME or UNKNOWN_TYPE, with PROTOCOL.md 2.1's texts), or
    a valid frame at the wrong moment (PROTOCOL). After any of them but
    UNKNOWN_TYPE the connection is closed."""


class ConnectionLost(SubwayError):
    """The connection went away: `code` says how (EOF, IO, TIMEOUT, GOAWAY,
    LOST, or the node's code from an ERROR with req_id 0). With reconnect
    on, a request in flight fails with this (code LOST) while its
    subscriptions carry on over the next connection."""

    def __init__(self, code: int, text: str, cause: Optional[BaseException] = None):
        super().__init__(code, text)
        self.__cause__ = cause


class ClientClosed(SubwayError):
    """A request on a client that was closed (code CLOSED)."""

    def __init__(self, text: str = "the client is closed"):
        super().__init__(ErrorCode.CLOSED, text)
