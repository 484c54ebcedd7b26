"""codec.py -- subway frames on the wire: the protocol's numbers, an encoder and a streaming decoder that checks every frame."""

# PROTOCOL.md is the contract and proto/codec.c the reference; the decoder
# refuses what codec.c refuses, with the same code and text (section 2.1),
# and proto/vectors.json holds the frames both must agree on.
#
# A decoded frame is the body's msgpack array itself, `[type, field1, ...]`,
# checked and normalised: text fields are str, byte fields bytes or None,
# headers a list of (name, value) tuples. Lists rather than objects keep
# the MESSAGE path fast; fields() names them for people and tests.

import struct
from typing import Any, Dict, List, Optional, Sequence, Tuple

import msgpack

from .errors import ErrorCode, ProtocolError

# ---------------------------------------------------------------- constants

PROTO_VERSION = 3                 # the newest version this client speaks
PROTO_MIN_VERSION = 1             # the oldest node it still talks to
HEADER_SIZE = 4
DEFAULT_MAX_FRAME = 1 << 20       # what a node accepts from a client by default
DEFAULT_MAX_MESSAGE = 16 << 20    # the largest MESSAGE a node sends by default
MIN_MAX_FRAME = 64
MAX_ARRAY = 100000                # partitions, start and LIVE positions per frame
MAX_HEADERS = 10000
MAX_DEPTH = 32                    # msgpack nesting, the frame's own array included
UINT32_MAX = 0xFFFFFFFF
INT64_MAX = (1 << 63) - 1
INT64_MIN = -(1 << 63)

HELLO = 1
WELCOME = 2
SUBSCRIBE = 3
SUBSCRIBED = 4
UNSUBSCRIBE = 5
UNSUBSCRIBED = 6
MESSAGE = 7
PUBLISH = 8
PUBACK = 9
PING = 10
PONG = 11
ERROR = 12
DROPPED = 13
GOAWAY = 14
LIVE = 15
AUTH = 16
AUTHED = 17
TYPE_MAX = 17

TYPE_NAMES = {
    HELLO: "HELLO", WELCOME: "WELCOME", SUBSCRIBE: "SUBSCRIBE", SUBSCRIBED: "SUBSCRIBED",
    UNSUBSCRIBE: "UNSUBSCRIBE", UNSUBSCRIBED: "UNSUBSCRIBED", MESSAGE: "MESSAGE",
    PUBLISH: "PUBLISH", PUBACK: "PUBACK", PING: "PING", PONG: "PONG", ERROR: "ERROR",
    DROPPED: "DROPPED", GOAWAY: "GOAWAY", LIVE: "LIVE", AUTH: "AUTH", AUTHED: "AUTHED",
}
TYPES_BY_NAME = {v: k for k, v in TYPE_NAMES.items()}

# SUBSCRIBE start modes (PROTOCOL.md 3.3): the start field is [mode, arg].
START_POSITIONS = 1
START_TIMESTAMP = 2
START_LAST = 3
START_BEGINNING = 4
START_OFFSET = 5
START_NAMES = {START_POSITIONS: "POSITIONS", START_TIMESTAMP: "TIMESTAMP", START_LAST: "LAST",
               START_BEGINNING: "BEGINNING", START_OFFSET: "OFFSET"}
START_MAX = 5

# Field kinds, as PROTOCOL.md section 2 names them.
K_UINT, K_UINT32, K_INT, K_TEXT, K_BYTES, K_PARTITIONS, K_HEADERS, K_START, K_POSITIONS = range(9)

# type -> (field names after the type, their kinds, how many trailing ones are optional)
SPEC: Dict[int, Tuple[Tuple[str, ...], Tuple[int, ...], int]] = {
    HELLO: (("version", "client_name", "token"), (K_UINT, K_TEXT, K_TEXT), 1),
    WELCOME: (("version", "node_id", "heartbeat_ms", "max_frame", "heartbeat_timeout_ms", "max_key", "max_subs",
               "client", "expires_ms"),
              (K_UINT, K_TEXT, K_UINT, K_UINT, K_UINT, K_UINT, K_UINT, K_TEXT, K_UINT), 5),
    SUBSCRIBE: (("req_id", "topic", "key", "start"), (K_UINT, K_TEXT, K_BYTES, K_START), 1),
    SUBSCRIBED: (("req_id", "feed", "partitions"), (K_UINT, K_UINT, K_PARTITIONS), 0),
    UNSUBSCRIBE: (("req_id", "feed"), (K_UINT, K_UINT), 0),
    UNSUBSCRIBED: (("req_id", "feed"), (K_UINT, K_UINT), 0),
    MESSAGE: (("feed", "partition", "offset", "timestamp_ms", "key", "value", "headers"),
              (K_UINT, K_UINT32, K_UINT, K_INT, K_BYTES, K_BYTES, K_HEADERS), 1),
    PUBLISH: (("req_id", "topic", "key", "value"), (K_UINT, K_TEXT, K_BYTES, K_BYTES), 0),
    PUBACK: (("req_id", "partition", "offset"), (K_UINT, K_UINT32, K_UINT), 0),
    PING: (("token",), (K_UINT,), 0),
    PONG: (("token",), (K_UINT,), 0),
    ERROR: (("req_id", "code", "text"), (K_UINT, K_UINT, K_TEXT), 0),
    DROPPED: (("feed", "count"), (K_UINT, K_UINT), 0),
    GOAWAY: (("text",), (K_TEXT,), 0),
    LIVE: (("feed", "positions"), (K_UINT, K_POSITIONS), 0),
    AUTH: (("req_id", "token"), (K_UINT, K_TEXT), 0),
    AUTHED: (("req_id", "expires_ms"), (K_UINT, K_UINT), 0),
}

_WANT = {K_UINT: "an unsigned integer", K_UINT32: "an unsigned integer", K_INT: "an integer",
         K_TEXT: "str or bin", K_BYTES: "bin, str or nil", K_PARTITIONS: "an array",
         K_HEADERS: "an array", K_START: "a 2-element array", K_POSITIONS: "an array"}

_BE32 = struct.Struct(">I")

# ------------------------------------------------------------------ encoding

_packer = msgpack.Packer(use_bin_type=True, autoreset=True)


def encode(ftype: int, *fields: Any) -> bytes:
    """One frame, length prefix and body, of type ftype with these fields.
    Text must be str and bytes bytes (msgpack str and bin); a trailing
    optional field (SUBSCRIBE start, MESSAGE headers) is left out by not
    passing it. msgpack-python writes the smallest representation, which
    the golden vectors depend on. Checks nothing: the node does."""
    body = _packer.pack([ftype, *fields])
    return _BE32.pack(len(body)) + body


def encode_fields(ftype: int, fields: Dict[str, Any]) -> bytes:
    """encode() with fields by name (fields() gives them back); an absent or
    None optional field (start, headers) is not written, and empty headers
    are not written either (PROTOCOL.md 2)."""
    names, _, nopt = SPEC[ftype]
    values = [fields.get(n) for n in names]
    while nopt and values and (values[-1] is None or (names[len(values) - 1] == "headers" and not values[-1])):
        values.pop()
        nopt -= 1
    return encode(ftype, *values)


# ------------------------------------------------------------------ decoding


def _fail(code: int, text: str):
    raise ProtocolError(code, text)


def _uint(name: str, i: int, fname: str, v: Any, limit: Optional[int] = None) -> int:
    if type(v) is not int or v < 0:
        _fail(ErrorCode.BAD_FRAME, "%s: field %d (%s) must be an unsigned integer" % (name, i, fname))
    if limit is not None and v > limit:
        _fail(ErrorCode.BAD_FRAME, "%s: field %d (%s) must be at most %d" % (name, i, fname, limit))
    return v


def _text(v: Any) -> Optional[str]:
    if type(v) is str:
        return v
    if type(v) is bytes:
        return v.decode("utf-8", "replace")
    return None


def _bytes(v: Any) -> Any:
    """bytes for a byte field, None for nil, False when it is neither."""
    if v is None or type(v) is bytes:
        return v
    if type(v) is str:
        return v.encode("utf-8", "surrogateescape")
    return False


def _is_pos(p: Any) -> bool:
    return (type(p) is list and len(p) == 2 and type(p[0]) is int and 0 <= p[0] <= UINT32_MAX
            and type(p[1]) is int and 0 <= p[1] <= INT64_MAX)


def _positions(name: str, ps: list) -> List[Tuple[int, int]]:
    if len(ps) > MAX_ARRAY:
        _fail(ErrorCode.BAD_FRAME, "%s: %d positions exceed the %d limit" % (name, len(ps), MAX_ARRAY))
    for j, p in enumerate(ps):
        if not _is_pos(p):
            _fail(ErrorCode.BAD_FRAME, "%s: positions[%d] must be [partition, offset], a uint32 and "
                  "an int64 >= 0" % (name, j))
    return [(p[0], p[1]) for p in ps]


def _start(v: Any) -> list:
    if type(v) is not list or len(v) != 2:
        _fail(ErrorCode.BAD_FRAME, "SUBSCRIBE: field 4 (start) must be a 2-element array")
    mode, arg = v
    if type(mode) is not int or not 1 <= mode <= START_MAX:
        _fail(ErrorCode.BAD_FRAME, "SUBSCRIBE: start mode must be 1..5")
    if mode == START_POSITIONS:
        if type(arg) is not list:
            _fail(ErrorCode.BAD_FRAME, "SUBSCRIBE: start positions must be an array")
        return [mode, _positions("SUBSCRIBE", arg)]
    if mode == START_BEGINNING:
        if type(arg) is not int or arg != 0:
            _fail(ErrorCode.BAD_FRAME, "SUBSCRIBE: start mode 4 (beginning) takes 0")
    elif mode == START_TIMESTAMP:
        if type(arg) is not int or not INT64_MIN <= arg <= INT64_MAX:
            _fail(ErrorCode.BAD_FRAME, "SUBSCRIBE: start mode 2 takes an integer")
    elif type(arg) is not int or not 0 <= arg <= INT64_MAX:
        _fail(ErrorCode.BAD_FRAME, "SUBSCRIBE: start mode %d takes an integer >= 0" % mode)
    return [mode, arg]


def _check(f: Any) -> list:
    """The frame f checked field by field and normalised, or ProtocolError
    with codec.c's code and text. Assumes nothing about f."""
    if type(f) is not list:
        _fail(ErrorCode.BAD_FRAME, "frame body is not an array")
    if not f:
        _fail(ErrorCode.BAD_FRAME, "frame body is an empty array")
    t = f[0]
    if type(t) is not int or t < 1:
        _fail(ErrorCode.BAD_FRAME, "frame type must be a positive integer")
    if t > TYPE_MAX:
        _fail(ErrorCode.UNKNOWN_TYPE, "unknown frame type %d" % t)
    name = TYPE_NAMES[t]
    names, kinds, nopt = SPEC[t]
    got, nmax = len(f) - 1, len(names)
    if not nmax - nopt <= got <= nmax:
        want = "%d or %d fields" % (nmax - nopt, nmax) if nopt else \
            "%d field%s" % (nmax, "" if nmax == 1 else "s")
        _fail(ErrorCode.BAD_FRAME, "%s: expected %s, got %d" % (name, want, got))
    out = [t]
    for i in range(1, got + 1):
        v, k, fname = f[i], kinds[i - 1], names[i - 1]
        if k == K_UINT:
            v = _uint(name, i, fname, v)
        elif k == K_UINT32:
            v = _uint(name, i, fname, v, UINT32_MAX)
        elif k == K_INT:
            if type(v) is not int:
                _fail(ErrorCode.BAD_FRAME, "%s: field %d (%s) must be an integer" % (name, i, fname))
            if v > INT64_MAX:
                _fail(ErrorCode.BAD_FRAME, "%s: field %d (%s) must be at most %d" % (name, i, fname, INT64_MAX))
        elif k == K_TEXT:
            v = _text(v)
            if v is None:
                _fail(ErrorCode.BAD_FRAME, "%s: field %d (%s) must be str or bin" % (name, i, fname))
        elif k == K_BYTES:
            v = _bytes(v)
            if v is False:
                _fail(ErrorCode.BAD_FRAME, "%s: field %d (%s) must be bin, str or nil" % (name, i, fname))
        elif k == K_START:
            v = _start(v)
        elif type(v) is not list:
            _fail(ErrorCode.BAD_FRAME, "%s: field %d (%s) must be an array" % (name, i, fname))
        elif k == K_PARTITIONS:
            if len(v) > MAX_ARRAY:
                _fail(ErrorCode.BAD_FRAME, "%s: %d partitions exceed the %d limit" % (name, len(v), MAX_ARRAY))
            for j, p in enumerate(v):
                if type(p) is not int or p < 0:
                    _fail(ErrorCode.BAD_FRAME, "%s: partitions[%d] must be an unsigned integer" % (name, j))
                if p > UINT32_MAX:
                    _fail(ErrorCode.BAD_FRAME, "%s: partitions[%d] must be at most %d" % (name, j, UINT32_MAX))
        elif k == K_POSITIONS:
            v = _positions(name, v)
        else:  # K_HEADERS
            if len(v) > MAX_HEADERS:
                _fail(ErrorCode.BAD_FRAME, "%s: %d headers exceed the %d limit" % (name, len(v), MAX_HEADERS))
            hs = []
            for j, h in enumerate(v):
                if type(h) is not list or len(h) != 2:
                    _fail(ErrorCode.BAD_FRAME, "%s: headers[%d] must be a 2-element array" % (name, j))
                hn, hv = _text(h[0]), _bytes(h[1])
                if hn is None:
                    _fail(ErrorCode.BAD_FRAME, "%s: headers[%d] name must be str or bin" % (name, j))
                if hv is False:
                    _fail(ErrorCode.BAD_FRAME, "%s: headers[%d] value must be bin, str or nil" % (name, j))
                hs.append((hn, hv))
            v = hs
        out.append(v)
    return out


def _depth(v: Any, limit: int) -> bool:
    """True when v nests containers deeper than limit levels (iterative:
    msgpack allows deeper nesting than Python's recursion limit)."""
    stack = [(v, 1)]
    while stack:
        x, d = stack.pop()
        if type(x) is dict:
            x = [y for kv in x.items() for y in kv]
        elif type(x) is not list:
            continue
        if d > limit:
            return True
        stack.extend((y, d + 1) for y in x)
    return False


class Decoder:
    """Frames out of a byte stream: feed() bytes as they arrive, then call
    next() until it returns None (a frame is not complete yet).

    next() returns a checked frame (see the module's comment) or raises
    ProtocolError. A length above max_frame is refused as soon as its 4
    bytes are in. After UNKNOWN_TYPE the frame has been skipped and next()
    may be called again (a newer node's frame); after any other error the
    stream cannot be trusted and the decoder must be dropped.

    The bytes go into one msgpack.Unpacker, which keeps them in its own
    buffer and decodes each body in place: no copy per frame."""

    def __init__(self, max_frame: int = DEFAULT_MAX_MESSAGE):
        self.max_frame = max(int(max_frame), MIN_MAX_FRAME)
        self._u = msgpack.Unpacker(raw=False, strict_map_key=False, unicode_errors="surrogateescape",
                                   max_buffer_size=2 * self.max_frame + (4 << 20))
        self._fed = 0          # bytes fed in all, to compare with the Unpacker's tell()
        self._body = -1        # length of the body whose prefix has been taken, or -1

    def feed(self, data: bytes) -> None:
        """Appends bytes received. Feed at most a few MiB at a time."""
        self._u.feed(data)
        self._fed += len(data)

    def buffered(self) -> int:
        """Bytes fed and not yet decoded (a length prefix taken counts as decoded)."""
        return self._fed - self._u.tell()

    def next(self) -> Optional[list]:
        u = self._u
        n = self._body
        if n < 0:
            if self._fed - u.tell() < HEADER_SIZE:
                return None
            n = _BE32.unpack(u.read_bytes(HEADER_SIZE))[0]
            if n > self.max_frame:
                _fail(ErrorCode.FRAME_TOO_LARGE, "frame of %d bytes exceeds the %d-byte limit" % (n, self.max_frame))
            if n == 0:
                _fail(ErrorCode.MALFORMED, "frame body is empty")
            self._body = n
        start = u.tell()
        if self._fed - start < n:
            return None
        self._body = -1
        try:
            f = u.unpack()
        except msgpack.StackError:
            _fail(ErrorCode.MALFORMED, "frame body nests deeper than %d levels" % MAX_DEPTH)
        except msgpack.FormatError:
            _fail(ErrorCode.MALFORMED, "frame body is not valid msgpack")
        except (msgpack.OutOfData, ValueError):
            # Lengths that claim more than the buffer (or any sane limit) holds.
            _fail(ErrorCode.MALFORMED, "frame body ends inside a msgpack value")
        used = u.tell() - start
        if used != n:
            if used > n:
                _fail(ErrorCode.MALFORMED, "frame body ends inside a msgpack value")
            left = n - used
            _fail(ErrorCode.MALFORMED, "frame body has %d byte%s after its msgpack value" % (left, "" if left == 1 else "s"))
        # The one hot path, MESSAGE without headers as the node writes it,
        # is checked inline; everything else goes through _check().
        if type(f) is list and len(f) == 7 and f[0] == MESSAGE:
            _, feed, part, off, ts, key, val = f
            if (type(feed) is int and feed >= 0 and type(part) is int and 0 <= part <= UINT32_MAX
                    and type(off) is int and off >= 0 and type(ts) is int and INT64_MIN <= ts <= INT64_MAX
                    and (key is None or type(key) is bytes) and (val is None or type(val) is bytes)):
                return f
        try:
            return _check(f)
        except ProtocolError:
            # codec.c judges the nesting before the frame's shape, and no
            # valid frame nests deeper than 4: look only now.
            if _depth(f, MAX_DEPTH):
                _fail(ErrorCode.MALFORMED, "frame body nests deeper than %d levels" % MAX_DEPTH)
            raise


def decode(data: bytes, max_frame: int = DEFAULT_MAX_MESSAGE) -> list:
    """The one frame that data holds exactly; ProtocolError otherwise
    (MALFORMED "frame is incomplete" when data stops short)."""
    d = Decoder(max_frame)
    d.feed(data)
    f = d.next()
    if f is None:
        _fail(ErrorCode.MALFORMED, "frame is incomplete: %d bytes" % len(data))
    if d.buffered():
        _fail(ErrorCode.MALFORMED, "%d bytes after the frame" % d.buffered())
    return f


def fields(frame: Sequence[Any]) -> Dict[str, Any]:
    """A decoded frame's fields by name, with "type" its name; an absent
    optional field is left out."""
    names = SPEC[frame[0]][0]
    out: Dict[str, Any] = {"type": TYPE_NAMES[frame[0]]}
    out.update(zip(names, frame[1:]))
    return out
