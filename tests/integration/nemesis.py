"""nemesis.py -- fault injection for the cluster tests: a TCP proxy that can
partition (cut/heal) and reset the connections through it.

    p = TcpProxy("127.0.0.1", redis.port)       # listens on 127.0.0.1:p.port
    node = Node(bootstrap, ["--redis", p.addr_str, ...])
    p.cut()     # a partition: connections stay open, nothing moves either way
    p.heal()    # everything queued during the cut flows, as after a real heal
    p.reset()   # every proxied connection closed at once with an RST
    p.close()

Process pauses (SIGSTOP/SIGCONT) are Proc.pause()/resume() in harness.py;
Redis crashes are Redis.down()/up(); Cluster(redis_proxy=True) puts one
TcpProxy between each node and Redis (cluster.proxy(node_id)).

One thread per proxy runs a selectors loop that owns every socket; cut(),
heal(), reset() and close() hand it a command and return once the loop has
carried it out, so when cut() returns no further byte is forwarded.
"""

import atexit
import errno
import selectors
import socket
import struct
import threading

import harness

# Bytes read from one side and not yet written to the other, per direction,
# before the proxy stops reading that side (TCP's own backpressure then
# reaches the sender).
MAX_BUFFERED = 256 * 1024
_RECV = 64 * 1024


def _abort(sock):
    """Closes sock with an RST (SO_LINGER 0) instead of a FIN."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


class _Side:
    """One socket of a proxied connection and what was read from it but not
    yet written to the other side."""

    def __init__(self, sock, name):
        self.sock = sock
        self.name = name       # "client" or "upstream", for messages
        self.buf = bytearray()  # read here, to be written to the peer
        self.eof = False        # the peer of this socket sent FIN
        self.shut_wr = False    # FIN sent on this socket (after the other side's EOF)
        self.events = 0         # registered with the selector


class _Conn:
    """An accepted client connection and, once opened, its upstream."""

    def __init__(self, client_sock, peer):
        self.peer = peer
        self.client = _Side(client_sock, "client")
        self.upstream = None        # _Side once the upstream connect started
        self.connecting = False     # non-blocking connect in progress


class TcpProxy:
    """A TCP proxy on a free loopback port (or the port given) forwarding
    each accepted connection to target_host:target_port over a connection
    of its own, bytes both ways, FIN and RST passed on.

    cut() partitions: every connection stays open but nothing is read from or
    written to either side, so bytes wait (in the proxy or in the kernels'
    buffers) rather than being lost; new connections are accepted and held
    (no upstream is opened for them, so no round trip completes). heal()
    resumes forwarding, opens the upstreams of held connections, and
    everything queued flows. reset() closes every proxied connection at
    once with an RST to both ends (the proxy keeps listening; a cut stays
    cut). close() stops the proxy and joins its thread."""

    def __init__(self, target_host, target_port, port=0, host="127.0.0.1", name=None):
        self.target = (target_host, int(target_port))
        self.name = name or "proxy->%s:%d" % self.target
        self._lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._lsock.bind((host, int(port)))
        self._lsock.listen(128)
        self._lsock.setblocking(False)
        self.host, self.port = self._lsock.getsockname()[:2]
        harness._used_ports.add(self.port)  # free_port() never hands it out
        self._sel = selectors.DefaultSelector()
        self._sel.register(self._lsock, selectors.EVENT_READ, None)
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._sel.register(self._wake_r, selectors.EVENT_READ, None)
        self._lock = threading.Lock()
        self._cmds = []               # (name, threading.Event)
        self._conns = set()           # owned by the loop thread
        self._n_conns = 0             # len(self._conns), readable from any thread
        self._accepted = 0
        self._cut = False
        self._closed = False
        self._error = None            # an exception that ended the loop
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self._thread.start()
        _proxies.append(self)

    # ---- the API

    @property
    def addr(self):
        return (self.host, self.port)

    @property
    def addr_str(self):
        return "%s:%d" % self.addr

    @property
    def connections(self):
        """Proxied connections open now (held ones included)."""
        return self._n_conns

    @property
    def accepted(self):
        """Connections accepted since the proxy started."""
        return self._accepted

    @property
    def is_cut(self):
        return self._cut

    def cut(self):
        """Partitions: from now on nothing is forwarded either way and new
        connections are held; connections stay open. Idempotent."""
        self._command("cut")

    def heal(self):
        """Ends a cut: forwarding resumes, held connections get their
        upstream, and whatever queued during the cut flows. Idempotent."""
        self._command("heal")

    def reset(self):
        """Closes every proxied connection now, with an RST to the client
        and to the target. Returns how many were closed."""
        return self._command("reset")

    def close(self):
        """Closes every connection and the listener; joins the thread.
        Safe to call more than once."""
        if self._thread.is_alive():
            self._command("close")
        self._thread.join(10)
        if self._thread.is_alive():
            raise AssertionError("%s: its thread did not end" % self.name)
        try:
            _proxies.remove(self)
        except ValueError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return "<TcpProxy %s -> %s:%d%s, %d connections>" % (
            self.addr_str, self.target[0], self.target[1], " CUT" if self._cut else "", self._n_conns)

    def _command(self, name, timeout=10.0):
        done = threading.Event()
        box = {}
        with self._lock:
            if self._closed or not self._thread.is_alive():
                if name == "close":
                    return None
                raise AssertionError("%s is closed%s" % (
                    self.name, "" if self._error is None else " (its loop failed: %r)" % (self._error,)))
            self._cmds.append((name, done, box))
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass  # full: the loop is awake anyway; closed: the loop ended and answers below
        if not done.wait(timeout):
            raise AssertionError("%s: %s not carried out within %.0fs" % (self.name, name, timeout))
        if "error" in box:
            raise box["error"]
        return box.get("result")

    # ---- the loop (every socket is touched only from here)

    def _loop(self):
        try:
            while True:
                for key, mask in self._sel.select():
                    if key.fileobj is self._wake_r:
                        self._drain_wake()
                    elif key.fileobj is self._lsock:
                        self._accept()
                    else:
                        conn, side = key.data
                        if conn in self._conns:
                            self._io(conn, side, mask)
                if self._run_commands():
                    return
        except BaseException as e:  # report it on the next command
            self._error = e
            raise
        finally:
            self._shutdown()

    def _drain_wake(self):
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass

    def _run_commands(self):
        """Runs queued commands; True when the loop must end."""
        with self._lock:
            cmds, self._cmds = self._cmds, []
            if any(c[0] == "close" for c in cmds):
                self._closed = True
        stop = False
        for name, done, box in cmds:
            try:
                if name == "cut":
                    self._cut = True
                    for c in list(self._conns):
                        self._update(c)
                elif name == "heal":
                    self._cut = False
                    for c in list(self._conns):
                        self._update(c)
                elif name == "reset":
                    n = len(self._conns)
                    for c in list(self._conns):
                        self._drop(c, abort=True)
                    box["result"] = n
                elif name == "close":
                    stop = True
            except Exception as e:
                box["error"] = e
            done.set()
        return stop

    def _shutdown(self):
        for c in list(self._conns):
            self._drop(c, abort=True)
        for s in (self._lsock, self._wake_r):
            try:
                self._sel.unregister(s)
            except (KeyError, ValueError):
                pass
            s.close()
        self._sel.close()
        with self._lock:
            self._closed = True
            cmds, self._cmds = self._cmds, []
        for name, done, box in cmds:  # queued as the loop ended
            if name != "close":
                box["error"] = AssertionError("%s is closed" % self.name)
            done.set()
        self._wake_w.close()

    def _accept(self):
        for _ in range(64):
            try:
                s, peer = self._lsock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                if e.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM, errno.ECONNABORTED):
                    return
                raise
            s.setblocking(False)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            c = _Conn(s, peer)
            self._conns.add(c)
            self._accepted += 1
            self._n_conns = len(self._conns)
            self._update(c)

    def _connect_upstream(self, c):
        u = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        u.setblocking(False)
        u.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c.upstream = _Side(u, "upstream")
        err = u.connect_ex(self.target)
        if err in (0,):
            c.connecting = False
        elif err in (errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN):
            c.connecting = True
        else:  # refused at once (the target is down): like a refused connect
            self._drop(c, abort=True)
            return False
        return True

    def _set_events(self, c, side, events):
        if side.events == events:
            return
        if side.events == 0:
            self._sel.register(side.sock, events, (c, side))
        elif events == 0:
            self._sel.unregister(side.sock)
        else:
            self._sel.modify(side.sock, events, (c, side))
        side.events = events

    def _update(self, c):
        """Registers what each socket of c waits for, from the buffers, EOFs
        and the cut."""
        if c not in self._conns:
            return
        if self._cut:
            self._set_events(c, c.client, 0)
            if c.upstream is not None:
                self._set_events(c, c.upstream, 0)
            return
        if c.upstream is None and not self._connect_upstream(c):
            return
        cl, up = c.client, c.upstream
        if c.connecting:
            ev_c = selectors.EVENT_READ if not cl.eof and len(cl.buf) < MAX_BUFFERED else 0
            self._set_events(c, cl, ev_c)
            self._set_events(c, up, selectors.EVENT_WRITE)
            return
        for side, other in ((cl, up), (up, cl)):
            ev = 0
            if not side.eof and len(side.buf) < MAX_BUFFERED:
                ev |= selectors.EVENT_READ
            if other.buf:
                ev |= selectors.EVENT_WRITE
            self._set_events(c, side, ev)
        # a direction whose sender finished and whose bytes are all written:
        # pass the FIN on
        for side, other in ((cl, up), (up, cl)):
            if side.eof and not side.buf and not other.shut_wr:
                try:
                    other.sock.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                other.shut_wr = True
        if cl.shut_wr and up.shut_wr:
            self._drop(c, abort=False)

    def _io(self, c, side, mask):
        other = c.upstream if side is c.client else c.client
        if side is c.upstream and c.connecting:
            err = side.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                self._drop(c, abort=True)  # the target refused: the client sees an RST
                return
            c.connecting = False
            self._update(c)
            return
        if mask & selectors.EVENT_WRITE and other.buf:
            try:
                n = side.sock.send(other.buf)
                del other.buf[:n]
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                self._drop(c, abort=True)
                return
        if mask & selectors.EVENT_READ and not side.eof:
            try:
                data = side.sock.recv(_RECV)
            except (BlockingIOError, InterruptedError):
                data = None
            except OSError:  # ECONNRESET and the like: pass the reset on
                self._drop(c, abort=True)
                return
            if data == b"":
                side.eof = True
            elif data:
                side.buf += data
        self._update(c)

    def _drop(self, c, abort):
        if c not in self._conns:
            return
        self._conns.discard(c)
        self._n_conns = len(self._conns)
        for side in (c.client, c.upstream):
            if side is None:
                continue
            if side.events:
                try:
                    self._sel.unregister(side.sock)
                except (KeyError, ValueError):
                    pass
                side.events = 0
            if abort:
                _abort(side.sock)
            else:
                side.sock.close()


_proxies = []  # open TcpProxy objects, closed at exit


def open_proxies():
    """The TcpProxy objects not closed yet."""
    return list(_proxies)


def _close_all():
    for p in list(_proxies):
        try:
            p.close()
        except Exception:
            pass


atexit.register(_close_all)
