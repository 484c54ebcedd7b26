"""wire.py -- a raw subway protocol client for tests: minimal msgpack, framing, frames.

Mirrors proto/proto.h (the contract), protocol version 2. The standard library
and the frame type numbers of proto/python. The msgpack part covers what the protocol uses: nil, bool, ints,
str, bin, array, map (floats are decoded too, so a test can see what a node
sent by mistake). Encoding always uses the smallest representation, like
proto_encode().

    c = RawClient(node.addr)
    c.hello()                                  # version 2; RawClient(addr, version=1) for 1
    sub = c.subscribe("events", b"alice")      # SUBSCRIBED frame; ServerError on ERROR
    msg = c.expect(MESSAGE, timeout=10)
    c.send_raw(b"\\x00\\x00\\x00\\x01\\xc1")        # malformed body
    err = c.expect(ERROR)

Version 2 (PROTOCOL.md sections 3.3, 3.13, 5.8): a SUBSCRIBE may carry a
start, and every subscription on a version-2 connection gets one LIVE frame
once it follows the live feed:

    sub = c.subscribe("events", None, start=("positions", {0: 12, 1: 7}))
    history, live = c.until_live(sub.feed)     # MESSAGE/DROPPED frames, then LIVE
    live.position_map()                        # {0: 15, 1: 7}: next offset per partition
"""

import collections
import os
import select
import ssl as _ssl
import sys
import socket
import struct
import time

# ---------------------------------------------------------------- constants

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                                "proto", "python"))

PROTO_VERSION = 3       # the newest version this client speaks (proto.h)
PROTO_MIN_VERSION = 1   # the oldest a node accepts
HEADER_SIZE = 4

# The frame types: the Python client's list of them is the one in Python
# (proto/python/subway/codec.py); this module's framing and msgpack stay
# its own, so the tests do not judge the node with the client's decoder.
from subway.codec import (  # noqa: E402
    AUTH, AUTHED, DROPPED, ERROR, GOAWAY, HELLO, LIVE, MESSAGE, PING, PONG, PUBACK, PUBLISH, SUBSCRIBE,
    SUBSCRIBED, UNSUBSCRIBE, UNSUBSCRIBED, WELCOME)

TYPE_NAMES = {
    HELLO: "HELLO", WELCOME: "WELCOME", SUBSCRIBE: "SUBSCRIBE",
    SUBSCRIBED: "SUBSCRIBED", UNSUBSCRIBE: "UNSUBSCRIBE",
    UNSUBSCRIBED: "UNSUBSCRIBED", MESSAGE: "MESSAGE", PUBLISH: "PUBLISH",
    PUBACK: "PUBACK", PING: "PING", PONG: "PONG", ERROR: "ERROR",
    DROPPED: "DROPPED", GOAWAY: "GOAWAY", LIVE: "LIVE", AUTH: "AUTH", AUTHED: "AUTHED",
}

# Field names after the type, per frame type: the Python client's table
# (proto.h's, written once in Python); only the names, never its decoder.
from subway.codec import SPEC  # noqa: E402
FIELDS = {t: names for t, (names, _kinds, _nopt) in SPEC.items()}

# SUBSCRIBE start modes (PROTOCOL.md section 3.3): start is [mode, arg].
from subway.codec import (  # noqa: E402
    START_BEGINNING, START_LAST, START_OFFSET, START_POSITIONS, START_TIMESTAMP)

START_NAMES = {
    START_POSITIONS: "positions", START_TIMESTAMP: "timestamp", START_LAST: "last",
    START_BEGINNING: "beginning", START_OFFSET: "offset",
}
_START_MODES = {v: k for k, v in START_NAMES.items()}

E_NONE = 0
E_VERSION = 1
E_FRAME_TOO_LARGE = 2
E_MALFORMED = 3
E_BAD_FRAME = 4
E_UNKNOWN_TYPE = 5
E_HELLO_REQUIRED = 6
E_TOO_MANY_SUBS = 7
E_TOO_MANY_CONNS = 8
E_INVALID_ARG = 9
E_UNKNOWN_TOPIC = 10
E_ALREADY_SUBSCRIBED = 11
E_NOT_SUBSCRIBED = 12
E_KAFKA = 13
E_HEARTBEAT_TIMEOUT = 14
E_SLOW_CONSUMER = 15
E_SHUTTING_DOWN = 16
E_UNAVAILABLE = 17
E_INTERNAL = 18
E_UNAUTHORIZED = 19
E_FORBIDDEN = 20

ERR_NAMES = {
    E_NONE: "NONE", E_VERSION: "VERSION", E_FRAME_TOO_LARGE: "FRAME_TOO_LARGE",
    E_MALFORMED: "MALFORMED", E_BAD_FRAME: "BAD_FRAME",
    E_UNKNOWN_TYPE: "UNKNOWN_TYPE", E_HELLO_REQUIRED: "HELLO_REQUIRED",
    E_TOO_MANY_SUBS: "TOO_MANY_SUBS", E_TOO_MANY_CONNS: "TOO_MANY_CONNS",
    E_INVALID_ARG: "INVALID_ARG", E_UNKNOWN_TOPIC: "UNKNOWN_TOPIC",
    E_ALREADY_SUBSCRIBED: "ALREADY_SUBSCRIBED",
    E_NOT_SUBSCRIBED: "NOT_SUBSCRIBED", E_KAFKA: "KAFKA",
    E_HEARTBEAT_TIMEOUT: "HEARTBEAT_TIMEOUT", E_SLOW_CONSUMER: "SLOW_CONSUMER",
    E_SHUTTING_DOWN: "SHUTTING_DOWN", E_UNAVAILABLE: "UNAVAILABLE",
    E_INTERNAL: "INTERNAL", E_UNAUTHORIZED: "UNAUTHORIZED", E_FORBIDDEN: "FORBIDDEN",
}


def type_name(t):
    return TYPE_NAMES.get(t, "UNKNOWN(%r)" % (t,))


def err_name(code):
    return ERR_NAMES.get(code, "UNKNOWN(%r)" % (code,))


# ------------------------------------------------------------------ msgpack


class MsgpackError(ValueError):
    pass


def packb(obj):
    """Returns the smallest msgpack encoding of obj (None, bool, int, str,
    bytes/bytearray, list/tuple, dict)."""
    out = bytearray()
    _pack(obj, out)
    return bytes(out)


def _pack(obj, out):
    if obj is None:
        out.append(0xC0)
    elif obj is True:
        out.append(0xC3)
    elif obj is False:
        out.append(0xC2)
    elif isinstance(obj, int):
        _pack_int(obj, out)
    elif isinstance(obj, str):
        b = obj.encode("utf-8")
        n = len(b)
        if n < 32:
            out.append(0xA0 | n)
        elif n < 0x100:
            out += bytes((0xD9, n))
        elif n < 0x10000:
            out += b"\xda" + struct.pack(">H", n)
        else:
            out += b"\xdb" + struct.pack(">I", n)
        out += b
    elif isinstance(obj, (bytes, bytearray, memoryview)):
        b = bytes(obj)
        n = len(b)
        if n < 0x100:
            out += bytes((0xC4, n))
        elif n < 0x10000:
            out += b"\xc5" + struct.pack(">H", n)
        else:
            out += b"\xc6" + struct.pack(">I", n)
        out += b
    elif isinstance(obj, (list, tuple)):
        n = len(obj)
        if n < 16:
            out.append(0x90 | n)
        elif n < 0x10000:
            out += b"\xdc" + struct.pack(">H", n)
        else:
            out += b"\xdd" + struct.pack(">I", n)
        for x in obj:
            _pack(x, out)
    elif isinstance(obj, dict):
        n = len(obj)
        if n < 16:
            out.append(0x80 | n)
        elif n < 0x10000:
            out += b"\xde" + struct.pack(">H", n)
        else:
            out += b"\xdf" + struct.pack(">I", n)
        for k, v in obj.items():
            _pack(k, out)
            _pack(v, out)
    else:
        raise TypeError("cannot msgpack %r" % (type(obj),))


def _pack_int(v, out):
    if 0 <= v < 0x80:
        out.append(v)
    elif -32 <= v < 0:
        out.append(v & 0xFF)
    elif v >= 0:
        if v < 0x100:
            out += bytes((0xCC, v))
        elif v < 0x10000:
            out += b"\xcd" + struct.pack(">H", v)
        elif v < 0x100000000:
            out += b"\xce" + struct.pack(">I", v)
        elif v < 0x10000000000000000:
            out += b"\xcf" + struct.pack(">Q", v)
        else:
            raise OverflowError("int too large for msgpack")
    else:
        if v >= -0x80:
            out += b"\xd0" + struct.pack(">b", v)
        elif v >= -0x8000:
            out += b"\xd1" + struct.pack(">h", v)
        elif v >= -0x80000000:
            out += b"\xd2" + struct.pack(">i", v)
        elif v >= -0x8000000000000000:
            out += b"\xd3" + struct.pack(">q", v)
        else:
            raise OverflowError("int too small for msgpack")


# str is decoded to Python str when it is valid UTF-8, else kept as bytes;
# bin to bytes. Tests compare byte strings with as_bytes().
_FIXED = {
    0xCC: (">B", 1), 0xCD: (">H", 2), 0xCE: (">I", 4), 0xCF: (">Q", 8),
    0xD0: (">b", 1), 0xD1: (">h", 2), 0xD2: (">i", 4), 0xD3: (">q", 8),
    0xCA: (">f", 4), 0xCB: (">d", 8),
}

MAX_DEPTH = 64


def unpackb(data):
    """Decodes exactly one msgpack value filling all of data; raises
    MsgpackError when data is truncated, has trailing bytes or is invalid."""
    value, pos = unpack_from(data, 0)
    if pos != len(data):
        raise MsgpackError("%d trailing bytes" % (len(data) - pos))
    return value


def unpack_from(data, pos, depth=0):
    """Decodes one value at data[pos:]; returns (value, next_pos)."""
    if depth > MAX_DEPTH:
        raise MsgpackError("nesting too deep")
    data = memoryview(data) if not isinstance(data, memoryview) else data

    def take(n):
        nonlocal pos
        if pos + n > len(data):
            raise MsgpackError("truncated")
        b = bytes(data[pos:pos + n])
        pos += n
        return b

    b = take(1)[0]
    if b < 0x80:
        return b, pos
    if b >= 0xE0:
        return b - 0x100, pos
    if 0x80 <= b <= 0x8F:
        return _unpack_map(data, pos, b & 0x0F, depth)
    if 0x90 <= b <= 0x9F:
        return _unpack_array(data, pos, b & 0x0F, depth)
    if 0xA0 <= b <= 0xBF:
        return _str(take(b & 0x1F)), pos
    if b == 0xC0:
        return None, pos
    if b == 0xC2:
        return False, pos
    if b == 0xC3:
        return True, pos
    if b in (0xC4, 0xC5, 0xC6):
        n = struct.unpack(">" + "BHI"[b - 0xC4], take(1 << (b - 0xC4)))[0]
        return take(n), pos
    if b in _FIXED:
        fmt, size = _FIXED[b]
        return struct.unpack(fmt, take(size))[0], pos
    if b in (0xD9, 0xDA, 0xDB):
        n = struct.unpack(">" + "BHI"[b - 0xD9], take(1 << (b - 0xD9)))[0]
        return _str(take(n)), pos
    if b in (0xDC, 0xDD):
        n = struct.unpack(">" + "HI"[b - 0xDC], take(2 << (b - 0xDC)))[0]
        return _unpack_array(data, pos, n, depth)
    if b in (0xDE, 0xDF):
        n = struct.unpack(">" + "HI"[b - 0xDE], take(2 << (b - 0xDE)))[0]
        return _unpack_map(data, pos, n, depth)
    raise MsgpackError("unsupported msgpack byte 0x%02x" % b)


def _str(b):
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        return b


def _unpack_array(data, pos, n, depth):
    items = []
    for _ in range(n):
        v, pos = unpack_from(data, pos, depth + 1)
        items.append(v)
    return items, pos


def _unpack_map(data, pos, n, depth):
    m = {}
    for _ in range(n):
        k, pos = unpack_from(data, pos, depth + 1)
        v, pos = unpack_from(data, pos, depth + 1)
        m[k if not isinstance(k, list) else tuple(k)] = v
    return m, pos


def as_bytes(v):
    """A decoded str/bin field as bytes (None stays None)."""
    if v is None or isinstance(v, bytes):
        return v
    if isinstance(v, str):
        return v.encode("utf-8")
    raise TypeError("not a byte string: %r" % (v,))


# ------------------------------------------------------------------- frames


def frame(body):
    """Returns header + body for an already-encoded msgpack body."""
    return struct.pack(">I", len(body)) + body


def encode(ftype, *fields):
    """Returns the frame [ftype, *fields] with its length header."""
    return frame(packb([ftype] + list(fields)))


def encode_start(start):
    """Returns SUBSCRIBE's start field, [mode, arg], for a start given as

        ("positions", {partition: offset, ...})  or a list of (partition, offset)
                                                  pairs, kept in order (duplicates too)
        ("timestamp", ms)                         ms since the epoch; may be negative
        ("last", n)                               n records back from the log end
        ("beginning",)                            or just "beginning"
        ("offset", n)                             offset n in every partition

    and None for None (no start field). The mode name and the tuple's shape
    are checked (ValueError); the numbers are sent as given, so a test can
    send ones a node must refuse. For a start that is not even of this shape
    (mode 6, a nil arg, ...) use subscribe(..., raw_start=True)."""
    if start is None:
        return None
    if isinstance(start, str):
        start = (start,)
    if not isinstance(start, tuple) or not start or start[0] not in _START_MODES:
        raise ValueError("start must be (mode, arg) with mode one of %s, not %r"
                         % ("/".join(_START_MODES), start))
    mode = _START_MODES[start[0]]
    if mode == START_BEGINNING:
        if len(start) != 1:
            raise ValueError("('beginning',) takes no argument, got %r" % (start,))
        return [mode, 0]
    if len(start) != 2:
        raise ValueError("(%r, arg) takes one argument, got %r" % (start[0], start))
    arg = start[1]
    if mode == START_POSITIONS:
        pairs = arg.items() if isinstance(arg, dict) else arg
        return [mode, [[p, o] for p, o in pairs]]
    if not isinstance(arg, int) or isinstance(arg, bool):
        raise ValueError("%r takes an int, got %r" % (start[0], arg))
    return [mode, arg]


def decode_start(raw):
    """The inverse of encode_start(): [mode, arg] as sent (a decoded
    SUBSCRIBE's .start) to ("positions", {partition: offset}),
    ("timestamp", ms), ("last", n), ("beginning",) or ("offset", n); None
    stays None. Raises ProtocolViolation for anything else."""
    if raw is None:
        return None
    if (not isinstance(raw, list) or len(raw) != 2 or isinstance(raw[0], bool)
            or raw[0] not in START_NAMES):
        raise ProtocolViolation("start is not [mode 1..5, arg]: %r" % (raw,))
    mode, arg = raw
    name = START_NAMES[mode]
    if mode == START_POSITIONS:
        return (name, position_map(arg))
    if mode == START_BEGINNING:
        if arg != 0 or isinstance(arg, bool):
            raise ProtocolViolation("start beginning takes 0, got %r" % (arg,))
        return (name,)
    if not isinstance(arg, int) or isinstance(arg, bool) or (mode != START_TIMESTAMP and arg < 0):
        raise ProtocolViolation("start %s takes an int%s, got %r"
                                % (name, "" if mode == START_TIMESTAMP else " >= 0", arg))
    return (name, arg)


def position_map(positions):
    """LIVE positions (or SUBSCRIBE start positions) as sent,
    [[partition, offset], ...], to {partition: offset}. Raises
    ProtocolViolation when an entry is not a pair of non-negative ints
    (partition a uint32, offset an int64) or a partition comes twice."""
    if not isinstance(positions, list):
        raise ProtocolViolation("positions is not an array: %r" % (positions,))
    out = {}
    for i, e in enumerate(positions):
        if (not isinstance(e, list) or len(e) != 2
                or not all(isinstance(x, int) and not isinstance(x, bool) for x in e)
                or not 0 <= e[0] <= 0xFFFFFFFF or not 0 <= e[1] <= 0x7FFFFFFFFFFFFFFF):
            raise ProtocolViolation("positions[%d] is not [partition, offset]: %r" % (i, e))
        if e[0] in out:
            raise ProtocolViolation("positions name partition %d twice: %r" % (e[0], positions))
        out[e[0]] = e[1]
    return out


class Frame:
    """A decoded frame: .type, .fields (after the type), and the fields by
    name (f.feed, f.code, ...). .raw is the decoded array as sent."""

    def __init__(self, raw):
        self.raw = raw
        if not isinstance(raw, list) or not raw:
            raise ProtocolViolation("frame body is not a non-empty array: %r" % (raw,))
        self.type = raw[0]
        self.fields = raw[1:]

    def __getattr__(self, name):
        names = FIELDS.get(self.__dict__.get("type"), ())
        if name in names:
            i = names.index(name)
            return self.fields[i] if i < len(self.fields) else None
        raise AttributeError(name)

    def __repr__(self):
        names = FIELDS.get(self.type, ())
        parts = []
        for i, v in enumerate(self.fields):
            if isinstance(v, (bytes, str)) and len(v) > 64:
                v = v[:64] + (b"..." if isinstance(v, bytes) else "...")
            n = names[i] if i < len(names) else "?%d" % i
            if self.type == ERROR and n == "code":
                v = "%s(%s)" % (v, err_name(v))
            parts.append("%s=%r" % (n, v))
        return "<%s %s>" % (type_name(self.type), " ".join(parts))

    def position_map(self):
        """A LIVE frame's positions as {partition: next offset}."""
        if self.type != LIVE:
            raise AttributeError("position_map() of a %s frame" % type_name(self.type))
        return position_map(self.positions)


class ProtocolViolation(AssertionError):
    """The node sent something the protocol does not allow."""


class ConnectionClosed(ConnectionError):
    """The node closed the connection (EOF or reset)."""


class ServerError(Exception):
    """A request was answered with ERROR; .frame, .code, .text."""

    def __init__(self, f):
        self.frame = f
        self.code = f.code
        self.text = f.text
        super().__init__("ERROR %s(%s): %s" % (err_name(f.code), f.code, f.text))


# ------------------------------------------------------------------- client


class RawClient:
    """A protocol client over a plain socket, for tests.

    Frames that a call skips while looking for another (e.g. MESSAGEs while
    waiting for SUBSCRIBED) are kept in order and returned by later
    read_frame()/expect() calls. PINGs are answered with PONG automatically
    unless auto_pong is False; answered PINGs are still recorded in .pings.

    ssl (an ssl.SSLContext) speaks TLS, for a node's --tls-listen: the
    handshake is done in the constructor (server_hostname defaults to the
    address's host), and the frames go inside it unchanged.

    version is what hello() says by default: PROTO_VERSION (3), or 1 for a
    connection without start and LIVE (NodeCase.client(node, version=1)
    passes it through). token goes into HELLO (version 3).
    """

    def __init__(self, addr, timeout=10.0, rcvbuf=None, auto_pong=True, max_frame=64 << 20,
                 version=PROTO_VERSION, token=None, ssl=None, server_hostname=None):
        self.addr = tuple(addr)
        self.version = version
        self.token = token
        self.auto_pong = auto_pong
        self.max_frame = max_frame
        self.pending = collections.deque()   # decoded frames not yet returned
        self.pings = []                      # tokens of PINGs seen
        self.buf = bytearray()               # undecoded input
        self.closed = False                  # EOF/reset seen
        self.welcome = None
        self._req = 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            # Must be set before connect() to shrink the advertised window.
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.settimeout(timeout)
        self.sock.connect(self.addr)
        if ssl is not None:
            self.sock = ssl.wrap_socket(self.sock, server_hostname=server_hostname or self.addr[0])
        self.sock.setblocking(False)

    # ---- lifetime

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def next_req_id(self):
        self._req += 1
        return self._req

    # ---- sending

    def send_raw(self, data):
        """Sends data as is (blocking until all is written)."""
        self.sock.setblocking(True)
        try:
            self.sock.sendall(data)
        finally:
            self.sock.setblocking(False)

    def send(self, ftype, *fields):
        self.send_raw(encode(ftype, *fields))

    # ---- receiving

    def _fill(self, deadline):
        """Reads more bytes into self.buf; raises TimeoutError at deadline,
        ConnectionClosed on EOF/reset."""
        if self.closed:
            raise ConnectionClosed("connection already closed by the node")
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no data from node within the timeout")
            # Bytes the TLS layer decrypted already do not make the socket readable.
            if not (isinstance(self.sock, _ssl.SSLSocket) and self.sock.pending()):
                r, _, _ = select.select([self.sock], [], [], left)
                if not r:
                    continue
            try:
                data = self.sock.recv(1 << 20)
            except (BlockingIOError, _ssl.SSLWantReadError, _ssl.SSLWantWriteError):
                continue
            except _ssl.SSLEOFError:
                data = b""
            except (ConnectionResetError, BrokenPipeError) as e:
                self.closed = True
                self.close_reason = "reset"
                raise ConnectionClosed("connection reset: %s" % e)
            if not data:
                self.closed = True
                self.close_reason = "EOF"
                raise ConnectionClosed("node closed the connection (EOF)")
            self.buf += data
            return

    def _decode_one(self):
        """Returns one Frame from self.buf, or None when incomplete."""
        if len(self.buf) < HEADER_SIZE:
            return None
        n = struct.unpack(">I", bytes(self.buf[:HEADER_SIZE]))[0]
        if n > self.max_frame:
            raise ProtocolViolation("node sent a frame of %d bytes" % n)
        if len(self.buf) < HEADER_SIZE + n:
            return None
        body = bytes(self.buf[HEADER_SIZE:HEADER_SIZE + n])
        del self.buf[:HEADER_SIZE + n]
        try:
            raw = unpackb(body)
        except MsgpackError as e:
            raise ProtocolViolation("node sent malformed msgpack: %s: %r" % (e, body[:64]))
        return Frame(raw)

    def _read_wire(self, deadline, auto_pong):
        """Returns the next frame off the wire (not from pending)."""
        while True:
            f = self._decode_one()
            if f is not None:
                if f.type == PING:
                    self.pings.append(f.token)
                    if auto_pong:
                        self.send(PONG, f.token)
                return f
            self._fill(deadline)

    def read_frame(self, timeout=10.0, auto_pong=None, skip_pings=True):
        """Returns the next frame: pending ones first, then the wire.
        With skip_pings (default) PINGs are not returned (but answered when
        auto_pong). Raises TimeoutError or ConnectionClosed."""
        auto_pong = self.auto_pong if auto_pong is None else auto_pong
        deadline = time.monotonic() + timeout
        while True:
            if self.pending:
                f = self.pending.popleft()
            else:
                f = self._read_wire(deadline, auto_pong)
            if f.type == PING and skip_pings:
                continue
            return f

    def expect(self, ftype, timeout=10.0, match=None, auto_pong=None):
        """Returns the first frame of type ftype (for which match(frame) is
        true, if given), keeping other frames in pending for later. PINGs are
        answered unless auto_pong is False. Raises TimeoutError (saying what
        was seen instead) or ConnectionClosed."""
        auto_pong = self.auto_pong if auto_pong is None else auto_pong
        deadline = time.monotonic() + timeout

        def wanted(f):
            return (ftype is None or f.type == ftype) and (match is None or match(f))

        for i, f in enumerate(self.pending):
            if wanted(f):
                del self.pending[i]
                return f
        skipped = []
        try:
            while True:
                f = self._read_wire(deadline, auto_pong)
                if wanted(f):
                    return f
                if f.type != PING:
                    skipped.append(f)
        except TimeoutError:
            raise TimeoutError("no %s within %.1fs; saw instead: %s" % (
                "matching frame" if ftype is None else type_name(ftype), timeout,
                _summary(list(self.pending) + skipped)))
        finally:
            self.pending.extend(skipped)

    def expect_error(self, code=None, timeout=10.0, req_id=None):
        """Returns the next ERROR frame (with req_id, if given); asserts its
        code when given."""
        f = self.expect(ERROR, timeout,
                        match=None if req_id is None else (lambda x: x.req_id == req_id))
        if code is not None and f.code != code:
            raise AssertionError("expected ERROR %s, got %r" % (err_name(code), f))
        return f

    def expect_closed(self, timeout=5.0):
        """Reads (and keeps) frames until the node closes the connection;
        returns the frames seen (they also stay readable via pending).
        Raises TimeoutError if it stays open."""
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            try:
                f = self._read_wire(deadline, self.auto_pong)
            except ConnectionClosed:
                self.pending.extend(seen)
                return seen
            except TimeoutError:
                raise TimeoutError("connection still open after %.1fs; saw: %s"
                                   % (timeout, _summary(seen)))
            seen.append(f)

    def collect(self, duration, auto_pong=None):
        """Reads frames for `duration` seconds (a quiet window), returns all
        frames seen (pending first) except PINGs; answers PINGs per
        auto_pong. Stops early on close."""
        auto_pong = self.auto_pong if auto_pong is None else auto_pong
        out = [f for f in self.pending if f.type != PING]
        self.pending.clear()
        deadline = time.monotonic() + duration
        while True:
            try:
                f = self._read_wire(deadline, auto_pong)
            except (TimeoutError, ConnectionClosed):
                return out
            if f.type != PING:
                out.append(f)

    def messages(self, n, timeout=10.0, feed=None):
        """Returns the next n MESSAGE frames (of `feed`, if given)."""
        deadline = time.monotonic() + timeout
        out = []
        while len(out) < n:
            left = deadline - time.monotonic()
            try:
                out.append(self.expect(MESSAGE, max(left, 0.001),
                                       match=None if feed is None else (lambda f: f.feed == feed)))
            except TimeoutError:
                raise TimeoutError("got %d of %d MESSAGE frames within %.1fs: %s"
                                   % (len(out), n, timeout, _summary(out)))
        return out

    # ---- requests

    def hello(self, client_name="subway-tests", version=None, timeout=10.0):
        """Sends HELLO with version (default: the one given to the
        constructor, PROTO_VERSION unless told), returns WELCOME, whose
        .version is the one the connection uses. Raises ServerError on ERROR."""
        fields = [self.version if version is None else version, client_name]
        if self.token is not None:
            fields.append(self.token)
        self.send(HELLO, *fields)
        f = self._expect_reply(WELCOME, None, timeout)
        self.welcome = f
        return f

    def _expect_reply(self, ftype, req_id, timeout):
        f = self.expect(None, timeout, match=lambda x: (
            x.type in (ftype, ERROR) and (req_id is None or x.fields[:1] == [req_id])))
        if f.type == ERROR:
            raise ServerError(f)
        return f

    def subscribe(self, topic, key, timeout=10.0, raw_key=False, start=None, raw_start=False):
        """Subscribes to topic/key; key None or "*" means every key (sent as
        nil) unless raw_key. str keys are sent as bin. start (version 2) is
        where the subscription starts, as encode_start() takes it, e.g.
        ("positions", {0: 12}), ("timestamp", ms), ("last", n),
        ("beginning",), ("offset", n); None sends no start field (live from
        the log end). With raw_start, start is sent as the field as it is
        (e.g. [6, 0]). Returns SUBSCRIBED; raises ServerError when refused.
        On a version-2 connection a LIVE follows: without a start, it is
        awaited here (the subscription is live when this returns) and kept
        as the SUBSCRIBED frame's .live; with one, see until_live()."""
        if not raw_key:
            if key == "*" or key == b"*":
                key = None
            elif isinstance(key, str):
                key = key.encode("utf-8")
        rid = self.next_req_id()
        fields = [rid, topic, key]
        if raw_start or start is not None:
            fields.append(start if raw_start else encode_start(start))
        self.send(SUBSCRIBE, *fields)
        sub = self._expect_reply(SUBSCRIBED, rid, timeout)
        sub.live = None
        if start is None and not raw_start and self.welcome is not None and self.welcome.version >= 2:
            sub.live = self.expect_live(sub.feed, timeout)
        return sub

    def expect_live(self, feed, timeout=10.0):
        """Returns the LIVE frame of feed (other frames stay pending)."""
        return self.expect(LIVE, timeout, match=lambda f: f.feed == feed)

    def until_live(self, feed, timeout=10.0):
        """Reads feed's catch-up: returns (frames, live), frames being the
        feed's MESSAGE and DROPPED frames before its LIVE, in order, and live
        the LIVE frame. Other feeds' frames stay pending. Raises TimeoutError
        (saying what was seen) when no LIVE comes within timeout."""
        deadline = time.monotonic() + timeout
        frames = []
        while True:
            left = deadline - time.monotonic()
            try:
                f = self.expect(None, max(left, 0.001), match=lambda x: (
                    x.type in (MESSAGE, DROPPED, LIVE) and x.feed == feed))
            except TimeoutError as e:
                raise TimeoutError("no LIVE of feed %r within %.1fs after %d of its frames: %s; %s"
                                   % (feed, timeout, len(frames), _summary(frames), e))
            if f.type == LIVE:
                return frames, f
            frames.append(f)

    def unsubscribe(self, feed, timeout=10.0):
        """Returns UNSUBSCRIBED; raises ServerError when refused."""
        rid = self.next_req_id()
        self.send(UNSUBSCRIBE, rid, feed)
        return self._expect_reply(UNSUBSCRIBED, rid, timeout)

    def publish(self, topic, key, value, timeout=10.0):
        """Returns PUBACK; raises ServerError when refused."""
        if isinstance(key, str):
            key = key.encode("utf-8")
        if isinstance(value, str):
            value = value.encode("utf-8")
        rid = self.next_req_id()
        self.send(PUBLISH, rid, topic, key, value)
        return self._expect_reply(PUBACK, rid, timeout)

    def auth(self, token, timeout=10.0):
        """AUTH with a new token; returns AUTHED, raises ServerError on ERROR."""
        req = self.next_req_id()
        self.send(AUTH, req, token)
        return self._expect_reply(AUTHED, req, timeout)

    def ping(self, token, timeout=10.0):
        """Sends PING, returns the matching PONG."""
        self.send(PING, token)
        return self.expect(PONG, timeout, match=lambda f: f.token == token)


def _summary(frames, limit=8):
    if not frames:
        return "nothing"
    s = ", ".join(repr(f) for f in frames[:limit])
    if len(frames) > limit:
        s += ", ... (%d more)" % (len(frames) - limit)
    return s
