"""harness.py -- processes, ports, Kafka helpers and partitioners for the integration tests.

Everything runs on loopback in a temporary directory; every process started
here is killed (its whole process group) when the test that started it ends,
or at exit at the latest. Readiness is always a polled condition with a
deadline, never a fixed sleep.

    kafka = MockKafka({"events": 3})                  # bin/tests/mock_kafka
    node = Node(kafka.bootstrap, ["--linger-ms", "200"])
    produce(kafka.bootstrap, "events", [("alice", "v1"), (None, "no key")])
    node.wait_stats(lambda s: s["subscriptions"] == 0)

For the cluster: Redis (a redis-server of its own), HAProxy (deploy/haproxy.cfg
with the test's ports) and Cluster (Redis + MockKafka + N nodes with --redis
and --node-id + HAProxy in front):

    c = Cluster({"orders": 6}, nodes=3, node_args=["--linger-ms", "300"])
    cl = c.client()                                   # through HAProxy
    c.redis.call("GET", feed_key("orders", "cust-1", "count"))
    c.node("n2").kill9(); c.node("n2").start()

Faults (nemesis.py): Proc/Node/Redis .pause() and .resume() (SIGSTOP and
SIGCONT), Redis.down() and .up() (kill -9 and back on the same port; with
Redis(appendonly=True) the data survives), and Cluster(redis_proxy=True), a
nemesis.TcpProxy between each node and Redis to cut(), heal() or reset():

    c = Cluster({"orders": 6}, nodes=3, redis_proxy=True)
    c.proxy("n2").cut(); ...; c.proxy("n2").heal()

The coordination schema is read in both its forms: owner keys "NODEID" or
"NODEID:INC" (owner_node, Cluster.owner/owner_token), subway:nodes a SET of
ids or a HASH id -> incarnation (registered_nodes, Cluster.registered).

The binaries come from configure(bin_dir) (run.py --bin), else $SUBWAY_BIN,
else ./bin relative to the repository.
"""

import atexit
import binascii
import csv
import io
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

_bin_dir = os.environ.get("SUBWAY_BIN") or os.path.join(REPO, "bin")
_tmp_root = None
_procs = []          # every Proc started, in order
_used_ports = set()  # ports handed out in this run, never handed out twice


def configure(bin_dir):
    """Sets the directory holding subway, subway-cli and tests/mock_kafka."""
    global _bin_dir
    _bin_dir = os.path.abspath(bin_dir)


def bin_path(name):
    """Path of a built binary: "subway", "subway-cli", "tests/mock_kafka"."""
    return os.path.join(_bin_dir, name)


def tmp_root():
    """The run's temporary directory (removed at exit unless
    $SUBWAY_KEEP_TMP is set)."""
    global _tmp_root
    if _tmp_root is None:
        _tmp_root = tempfile.mkdtemp(prefix="subway-it-")
        if not os.environ.get("SUBWAY_KEEP_TMP"):
            atexit.register(shutil.rmtree, _tmp_root, True)
    return _tmp_root


def tmp_path(name):
    """A fresh path inside the run's temp dir (not created)."""
    base = os.path.join(tmp_root(), name)
    path, i = base, 1
    while os.path.exists(path):
        i += 1
        path = "%s.%d" % (base, i)
    return path


# ------------------------------------------------------------------------ TLS


def make_tls_certs(name="tls"):
    """A throwaway PKI made with the openssl command in a fresh temp dir:
    {"ca": CA cert, "cert"/"key": a server certificate for localhost and
    127.0.0.1, "client_cert"/"client_key": a client certificate (CN
    subway-test-client) from the same CA, "other_ca": an unrelated CA,
    "pem": cert + key in one file (HAProxy's crt), "dir"}. EC P-256 keys:
    made in milliseconds."""
    d = tmp_path(name)
    os.makedirs(d)
    p = {k: os.path.join(d, k + ".pem") for k in ("ca", "ca_key", "other_ca", "other_ca_key", "cert", "key",
                                                   "client_cert", "client_key", "pem")}
    p["dir"] = d
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]

    def ossl(*args):
        r = run(["openssl"] + list(args), timeout=30)
        if r.returncode != 0:
            raise AssertionError("openssl %s: %s" % (" ".join(args), r.stderr))

    for ca in ("ca", "other_ca"):
        ossl("req", "-x509", *ec, "-keyout", p[ca + "_key"], "-out", p[ca], "-days", "2",
             "-subj", "/CN=subway test %s" % ca)
    ext = os.path.join(d, "ext.cnf")
    with open(ext, "w") as f:
        f.write("[srv]\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n[cli]\nextendedKeyUsage=clientAuth\n")
    for who, cn, sect in (("", "localhost", "srv"), ("client_", "subway-test-client", "cli")):
        csr = os.path.join(d, who + "req.csr")
        ossl("req", *ec, "-keyout", p[who + "key"], "-out", csr, "-subj", "/CN=" + cn)
        ossl("x509", "-req", "-in", csr, "-CA", p["ca"], "-CAkey", p["ca_key"], "-CAcreateserial",
             "-out", p[who + "cert"], "-days", "2", "-extfile", ext, "-extensions", sect)
    with open(p["pem"], "w") as out:
        for k in ("cert", "key"):
            with open(p[k]) as f:
                out.write(f.read())
    return p


# -------------------------------------------------------------------- waiting


class WaitTimeout(AssertionError):
    pass


class ProcExited(AssertionError):
    """A process a wait depended on exited; ends any wait at once."""


def wait_until(cond, timeout=10.0, what="condition", interval=0.02):
    """Polls cond() until it returns a true value, which is returned.
    Raises WaitTimeout naming `what` (and the last exception cond raised,
    if any) at the deadline."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            v = cond()
            if v:
                return v
            last_exc = None
        except ProcExited:
            raise
        except Exception as e:  # a not-yet-ready server raises; keep polling
            last_exc = e
        if time.monotonic() >= deadline:
            msg = "timed out after %.1fs waiting for %s" % (timeout, what)
            if last_exc is not None:
                msg += " (last error: %r)" % (last_exc,)
            raise WaitTimeout(msg) from None
        time.sleep(interval)


# ---------------------------------------------------------------------- ports


def free_port():
    """Returns a loopback TCP port that was free a moment ago and was not
    handed out before in this run."""
    for _ in range(100):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        finally:
            s.close()
        if port not in _used_ports:
            _used_ports.add(port)
            return port
    raise RuntimeError("no free port")


def port_open(port, host="127.0.0.1"):
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


# ---------------------------------------------------------------- processes


SANITIZER_RX = re.compile(r"^(==\d+==ERROR: \w+Sanitizer|.*: runtime error: )", re.M)


class Proc:
    """A child process in its own process group, stdout and stderr in files
    of the run's temp dir. Stopped (SIGTERM, then SIGKILL) by stop(), by the
    owning test's cleanup or at exit."""

    def __init__(self, argv, name=None, env=None, cwd=None, stdin=None):
        self.argv = [str(a) for a in argv]
        self.name = name or os.path.basename(self.argv[0])
        self.out_path = tmp_path(self.name + ".out")
        self.err_path = tmp_path(self.name + ".err")
        self.started = time.monotonic()
        full_env = dict(os.environ)
        if env:
            full_env.update(env)
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.p = subprocess.Popen(
                self.argv, stdout=out, stderr=err,
                stdin=subprocess.DEVNULL if stdin is None else stdin,
                env=full_env, cwd=cwd, start_new_session=True)
        self.pid = self.p.pid
        self.paused = False   # pause() stopped it (SIGSTOP) and resume() did not continue it yet
        _procs.append(self)

    # ---- state

    def poll(self):
        """Exit status, or None while running."""
        return self.p.poll()

    @property
    def returncode(self):
        return self.p.returncode

    def alive(self):
        return self.p.poll() is None

    def stdout(self):
        with open(self.out_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stderr(self):
        with open(self.err_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def log(self):
        """stderr then stdout, as text."""
        return self.stderr() + self.stdout()

    def tail(self, lines=40):
        """The last lines of stderr and stdout, for failure reports."""
        parts = []
        for label, text in (("stderr", self.stderr()), ("stdout", self.stdout())):
            t = text.splitlines()[-lines:]
            if t:
                parts.append("--- %s %s (pid %d, exit %s):\n%s" % (
                    self.name, label, self.pid, self.p.poll(), "\n".join(t)))
        if not parts:
            parts.append("--- %s (pid %d, exit %s): no output" % (self.name, self.pid, self.p.poll()))
        return "\n".join(parts)

    # ---- waiting

    def wait_ready(self, cond, timeout=15.0, what=None):
        """Polls cond() until true; fails at once, with the log, if the
        process exits first."""
        what = what or "%s to become ready" % self.name

        def check():
            if self.p.poll() is not None:
                raise ProcExited("%s exited with %s while waiting for %s\n%s"
                                 % (self.name, self.p.returncode, what, self.tail()))
            return cond()

        try:
            return wait_until(check, timeout, what)
        except WaitTimeout as e:
            raise WaitTimeout("%s\n%s" % (e, self.tail())) from None

    def wait_log(self, pattern, timeout=15.0, stream="stderr"):
        """Waits until a line of stderr (or "stdout", or "both") matches the
        regex; returns the match."""
        rx = re.compile(pattern, re.M)

        def find():
            text = {"stderr": self.stderr, "stdout": self.stdout, "both": self.log}[stream]()
            return rx.search(text)

        return self.wait_ready(find, timeout, "/%s/ in %s's %s" % (pattern, self.name, stream))

    def wait_exit(self, timeout=15.0):
        """Waits for the process to exit; returns its status. Raises
        WaitTimeout (the process keeps running) at the deadline."""
        try:
            return self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            raise WaitTimeout("%s still running after %.1fs\n%s" % (self.name, timeout, self.tail()))

    # ---- stopping

    def signal(self, sig):
        if self.p.poll() is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def _killpg(self, sig):
        try:
            os.killpg(self.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def pause(self):
        """SIGSTOP to the process group (the process and any children it
        forked, e.g. a redis-server's background save): it stays alive,
        keeps its sockets open (the kernel still completes connects into its
        listen backlog and buffers what arrives) but runs no code until
        resume(). stop(), kill() and the end-of-run cleanup work on a paused
        process."""
        if self.p.poll() is not None:
            raise AssertionError("%s (pid %d) is not running (exit %s): cannot pause it"
                                 % (self.name, self.pid, self.p.returncode))
        self._killpg(signal.SIGSTOP)
        self.paused = True

    def resume(self):
        """SIGCONT to the process group after pause(). Safe when not paused."""
        self._killpg(signal.SIGCONT)
        self.paused = False

    def stop(self, timeout=5.0):
        """SIGTERM to the process group, SIGKILL after timeout; returns the
        exit status. Safe to call more than once. A paused process is
        continued (SIGCONT right after the SIGTERM, so that the first thing it
        does when it runs again is handle the SIGTERM) rather than left to
        the SIGKILL."""
        if self.p.poll() is None:
            self._killpg(signal.SIGTERM)
            # always, not only when self.paused: a test may have stopped it
            # with signal(SIGSTOP); SIGCONT to a running process is a no-op
            self._killpg(signal.SIGCONT)
            self.paused = False
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self._killpg(signal.SIGKILL)
                self.p.wait()
        else:
            # the leader is gone; children may linger in the group
            self._killpg(signal.SIGKILL)
        return self.p.returncode

    def kill(self):
        self._killpg(signal.SIGKILL)   # ends a stopped (paused) process too
        self.p.wait()
        self.paused = False

    def stop_checked(self, timeout=10.0):
        """stop(), then fails unless the process exited 0 on its own after
        SIGTERM with no sanitizer report in its stderr (so that leaks and
        errors found at shutdown under ASan/UBSan fail the run)."""
        rc = self.stop(timeout)
        report = SANITIZER_RX.search(self.stderr())
        if rc != 0 or report:
            why = ("a sanitizer report" if report else
                   "exit status %s after SIGTERM%s" % (rc, " (killed: no exit within %.0fs)" % timeout
                                                       if rc == -signal.SIGKILL else ""))
            raise AssertionError("%s stopped with %s\n%s" % (self.name, why, self.tail(60)))
        return rc


def alive_procs():
    """The Procs running now."""
    return [p for p in _procs if p.alive()]


def procs_since(t, alive_then=()):
    """Procs started at or after monotonic time t, plus those in alive_then
    (e.g. a class's servers running when a test began, dead or alive now)."""
    then = set(id(p) for p in alive_then)
    return [p for p in _procs if p.started >= t or id(p) in then]


def _stop_all():
    for p in reversed(_procs):
        try:
            p.stop(timeout=2.0)
        except Exception:
            pass


atexit.register(_stop_all)


def run(argv, timeout=30.0, input=None, env=None):
    """Runs a command to completion; returns CompletedProcess with text
    stdout/stderr. Kills its process group if it overruns."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    p = subprocess.Popen([str(a) for a in argv], stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=full_env,
                         start_new_session=True)
    try:
        out, err = p.communicate(input, timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out, err = p.communicate()
        raise WaitTimeout("%s did not finish within %.0fs\nstdout: %s\nstderr: %s" % (
            " ".join(map(str, argv)), timeout, out.decode(errors="replace")[-2000:],
            err.decode(errors="replace")[-2000:]))
    return subprocess.CompletedProcess(
        p.args, p.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"))


# -------------------------------------------------------------------- Kafka


class MockKafka:
    """bin/tests/mock_kafka with the given topics {name: partitions}.
    Topics not listed are auto-created by the mock with 4 partitions when
    anything (producer, consumer, metadata request naming it) asks for them."""

    AUTO_CREATE_PARTITIONS = 4

    def __init__(self, topics=None, brokers=1, list_offsets_errors=0):
        self.topics = dict(topics or {})
        ready = tmp_path("mock_kafka.ready")
        argv = [bin_path("tests/mock_kafka"), "--brokers", brokers, "--ready-file", ready,
                "--list-offsets-errors", list_offsets_errors]
        for name, n in self.topics.items():
            argv += ["--topic", "%s:%d" % (name, n)]
        self.proc = Proc(argv, name="mock_kafka")
        self.proc.wait_ready(lambda: os.path.exists(ready), 15, "mock_kafka's ready file")
        with open(ready) as f:
            self.bootstrap = f.read().strip()

    def stop(self):
        return self.proc.stop_checked()


def _kcat():
    k = shutil.which("kcat") or shutil.which("kafkacat")
    if k is None:
        raise unittest.SkipTest("kcat is not installed (deploy/install-deps.sh installs it)")
    return k


KEY_DELIM = "\x1f"   # ASCII unit separator: never in test keys
MSG_DELIM = "\x1e"   # ASCII record separator: never in test values


def _b(v):
    if v is None:
        return None
    return v.encode("utf-8") if isinstance(v, str) else bytes(v)


def produce(bootstrap, topic, records, partitioner="murmur2_random", partition=None,
            timeout=60.0, extra=()):
    """Produces records [(key, value), ...] straight to Kafka with kcat and
    waits until kcat exits (all delivered). key None = no key; value None
    is sent empty. Values and keys are str or bytes without \\x1e/\\x1f. partitioner: a librdkafka
    partitioner name, or None for kcat's default (consistent_random, CRC32).
    partition: an explicit partition for every record."""
    data = bytearray()
    for key, value in records:
        k, v = _b(key), _b(value) or b""
        for part in (k or b"", v):
            if KEY_DELIM.encode() in part or MSG_DELIM.encode() in part:
                raise ValueError("record contains a harness delimiter")
        if k is not None:
            data += k + KEY_DELIM.encode()
        data += v + MSG_DELIM.encode()
    argv = [_kcat(), "-P", "-b", bootstrap, "-t", topic, "-K", "\\x1f", "-D", "\\x1e",
            "-X", "linger.ms=5", "-X", "message.max.bytes=10000000"]
    if partitioner:
        argv += ["-X", "partitioner=" + partitioner]
    if partition is not None:
        argv += ["-p", str(partition)]
    argv += list(extra)
    r = run(argv, timeout=timeout, input=bytes(data))
    if r.returncode != 0:
        raise AssertionError("kcat produce to %s failed (exit %d): %s" % (topic, r.returncode, r.stderr))


def consume(bootstrap, topic, partition=None, offset="beginning", count=None, timeout=30.0):
    """Reads records with kcat until the end of the partition(s) (or count
    records); returns [{"partition", "offset", "key", "value", "ts"}] with
    key/value as str (None for null). Asking for a topic auto-creates it in
    the mock."""
    # fetch.wait.max.ms: the mock holds an empty fetch that long (default
    # 500 ms), which kcat -e pays at least once per partition round.
    argv = [_kcat(), "-C", "-b", bootstrap, "-t", topic, "-J", "-q", "-o", str(offset),
            "-X", "fetch.wait.max.ms=10"]
    if partition is not None:
        argv += ["-p", str(partition)]
    if count is not None:
        argv += ["-c", str(count)]
    else:
        argv += ["-e"]
    r = run(argv, timeout=timeout)
    if r.returncode != 0:
        raise AssertionError("kcat consume from %s failed (exit %d): %s" % (topic, r.returncode, r.stderr))
    out = []
    for line in r.stdout.splitlines():
        if not line.strip():
            continue
        j = json.loads(line)
        out.append({"partition": j["partition"], "offset": j["offset"], "key": j["key"],
                    "value": j["payload"], "ts": j.get("ts")})
    return out


def topic_partitions(bootstrap, topic=None):
    """{topic: partition count} from kcat -L (of one topic, or all; asking
    for one topic auto-creates it in the mock)."""
    argv = [_kcat(), "-L", "-b", bootstrap]
    if topic is not None:
        argv += ["-t", topic]
    r = run(argv, timeout=30)
    if r.returncode != 0:
        raise AssertionError("kcat -L failed: %s" % r.stderr)
    return {m.group(1): int(m.group(2))
            for m in re.finditer(r'topic "([^"]+)" with (\d+) partitions', r.stdout)}


# -------------------------------------------------------------- partitioners


def murmur2(data):
    """Kafka's Java client murmur2 (Utils.murmur2, seed 0x9747b28c) of bytes,
    as a signed 32-bit int."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    length = len(data)
    m = 0x5BD1E995
    r = 24
    h = (0x9747B28C ^ length) & 0xFFFFFFFF
    n4 = length // 4
    for i in range(n4):
        k = int.from_bytes(data[i * 4:i * 4 + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = (h * m) & 0xFFFFFFFF
        h ^= k
    rest = length % 4
    tail = n4 * 4
    if rest == 3:
        h ^= data[tail + 2] << 16
    if rest >= 2:
        h ^= data[tail + 1] << 8
    if rest >= 1:
        h ^= data[tail]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def java_partition(key, n):
    """The Java client's default partition of a keyed record (also
    librdkafka's murmur2 / murmur2_random partitioners)."""
    return (murmur2(key) & 0x7FFFFFFF) % n


def crc32_partition(key, n):
    """librdkafka's consistent / consistent_random partition of a keyed
    record: zlib CRC-32 of the key modulo the partition count."""
    if isinstance(key, str):
        key = key.encode("utf-8")
    return (binascii.crc32(key) & 0xFFFFFFFF) % n


def keys_by_partition(n, partition_fn=java_partition, prefix="k", count=200):
    """{partition: [keys...]} for keys prefix0..prefix{count-1}."""
    out = {p: [] for p in range(n)}
    for i in range(count):
        k = "%s%d" % (prefix, i)
        out[partition_fn(k, n)].append(k)
    return out


# ---------------------------------------------------------------- the node


class Node:
    """bin/subway on free loopback ports:
    --listen 127.0.0.1:P --admin 127.0.0.1:A --kafka BOOTSTRAP + args.
    Ready when GET /stats answers. bootstrap None leaves --kafka out (for
    --dev); own_flags=False passes only args (listen_port/admin_port must
    then match what args or the --config file say). admin_token writes a
    --admin-token-file, and http_get() sends it as the bearer token."""

    def __init__(self, bootstrap, args=(), listen_port=None, admin_port=None, wait=True,
                 name="subway", own_flags=True, admin_token=None):
        self.port = listen_port or free_port()
        self.admin_port = admin_port or free_port()
        self.bootstrap = bootstrap
        self.addr = ("127.0.0.1", self.port)
        self.argv = [bin_path("subway")]
        if own_flags:  # else args say everything (e.g. --config FILE)
            self.argv += ["--listen", "127.0.0.1:%d" % self.port,
                          "--admin", "127.0.0.1:%d" % self.admin_port]
            if bootstrap is not None:
                self.argv += ["--kafka", bootstrap]
        self.admin_token = admin_token
        if admin_token is not None:
            path = tmp_path("admin-token")
            with open(path, "w") as f:
                f.write(admin_token + "\n")
            self.argv += ["--admin-token-file", path]
        self.argv += [str(a) for a in args]
        self.name = name
        self.killed = False   # kill9() ended the current process on purpose
        self.proc = Proc(self.argv, name=name)
        if wait:
            self.wait_ready()

    @property
    def addr_str(self):
        return "%s:%d" % self.addr

    def wait_ready(self, timeout=20.0):
        self.proc.wait_ready(lambda: self.http_get("/stats")[0] == 200, timeout,
                             "subway's admin /stats on port %d" % self.admin_port)

    def http_get(self, path, timeout=5.0, headers=None):
        """(status, body text) of GET path on the admin port, with the
        node's admin token unless headers are given."""
        if headers is None:
            headers = {"Authorization": "Bearer " + self.admin_token} if self.admin_token else {}
        c = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=timeout)
        try:
            c.request("GET", path, headers=headers)
            r = c.getresponse()
            return r.status, r.read().decode("utf-8", "replace")
        finally:
            c.close()

    def stats(self):
        """GET /stats, parsed."""
        status, body = self.http_get("/stats")
        if status != 200:
            raise AssertionError("GET /stats answered %d: %s" % (status, body))
        return json.loads(body)

    def wait_stats(self, pred, timeout=10.0, what="a /stats condition"):
        """Polls /stats until pred(stats) is true; returns those stats. On
        timeout the last stats are in the error."""
        last = [None]

        def check():
            last[0] = self.stats()
            return pred(last[0])

        try:
            self.proc.wait_ready(check, timeout, what)
        except WaitTimeout as e:
            raise WaitTimeout("%s\nlast /stats: %s" % (e, json.dumps(last[0]))) from None
        return last[0]

    def feed(self, topic, key, stats=None):
        """The /stats feeds entry of topic/key (key None = every key), or None."""
        s = stats or self.stats()
        for f in s["feeds"]:
            if f["topic"] == topic and f["key"] == key:
                return f
        return None

    def assigned(self, topic, stats=None):
        """Sorted partitions of topic in /stats assigned."""
        s = stats or self.stats()
        return sorted(a["partition"] for a in s["assigned"] if a["topic"] == topic)

    def client(self, hello=True, **kw):
        """A RawClient connected to this node (HELLO done unless hello=False)."""
        from wire import RawClient
        c = RawClient(self.addr, **kw)
        if hello:
            c.hello()
        return c

    def stop(self, timeout=10.0):
        """SIGTERM; fails unless the node exits 0 within timeout, cleanly.
        A node ended by kill9() and not started again is left as it is."""
        if self.killed and not self.proc.alive():
            return self.proc.returncode
        return self.proc.stop_checked(timeout)

    def kill9(self):
        """SIGKILL to the node (its whole process group), as a crash would;
        returns once it is gone. start() runs it again."""
        self.killed = True
        self.proc.kill()

    def pause(self):
        """SIGSTOP (Proc.pause): the node is frozen, a GC pause or a VM
        stall as its peers and Redis see it; its connections stay open."""
        self.proc.pause()

    def resume(self):
        """SIGCONT after pause()."""
        self.proc.resume()

    @property
    def paused(self):
        return self.proc.paused

    def start(self, wait=True, timeout=20.0):
        """Starts the node again with the same argv (same ports, same
        --node-id) after kill9() or stop(); waits for /stats unless
        wait=False."""
        if self.proc.alive():
            raise AssertionError("%s (pid %d) is still running" % (self.name, self.proc.pid))
        self.proc = Proc(self.argv, name=self.name)
        self.killed = False
        if wait:
            self.wait_ready(timeout)
        return self


def cli_argv(node_addr, *args):
    """argv for bin/subway-cli talking to node_addr ("host:port").
    The CLI's address option is -s HOST:PORT (default 127.0.0.1:7700)."""
    return [bin_path("subway-cli"), "-s", node_addr] + [str(a) for a in args]


# ---------------------------------------------------------------- Redis


class RedisError(Exception):
    """Redis answered a command with an error reply."""


def _resp_encode(args):
    out = bytearray(b"*%d\r\n" % len(args))
    for a in args:
        if isinstance(a, str):
            a = a.encode("utf-8")
        elif isinstance(a, int):
            a = str(a).encode()
        out += b"$%d\r\n" % len(a) + bytes(a) + b"\r\n"
    return bytes(out)


def _resp_read(f):
    line = f.readline()
    if not line.endswith(b"\r\n"):
        raise ConnectionError("redis closed the connection")
    t, rest = line[:1], line[1:-2]
    if t == b"+":
        return rest.decode("utf-8", "replace")
    if t == b"-":
        raise RedisError(rest.decode("utf-8", "replace"))
    if t == b":":
        return int(rest)
    if t == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)
        if len(data) != n + 2:
            raise ConnectionError("redis closed the connection")
        return data[:-2].decode("utf-8", "replace")
    if t == b"*":
        n = int(rest)
        return None if n < 0 else [_resp_read(f) for _ in range(n)]
    raise ConnectionError("unexpected reply from redis: %r" % line[:64])


def redis_call(port, *args, timeout=5.0, host="127.0.0.1"):
    """Sends one command to the Redis on host:port over a fresh connection;
    returns the reply (bulk strings as str, nil as None, arrays as lists).
    Raises RedisError on an error reply, OSError when Redis is down."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(_resp_encode(args))
        with s.makefile("rb") as f:
            return _resp_read(f)


def _redis_server():
    r = shutil.which("redis-server")
    if r is None:
        raise unittest.SkipTest("redis-server is not installed (deploy/install-deps.sh installs it)")
    return r


class Redis:
    """A redis-server of the test's own on a free loopback port, with no
    persistence: redis-server --port P --bind 127.0.0.1 --save '' --appendonly no
    --dir TMP. Ready when it answers PING.

    appendonly=True turns the append-only file on with an fsync per write
    (--appendonly yes --appendfsync always): every write Redis acknowledged
    survives a kill -9 (restart(keep_data=True), down() then up()). RDB
    snapshots stay off (--save '') either way."""

    def __init__(self, port=None, wait=True, appendonly=False):
        self.port = port or free_port()
        self.dir = tmp_path("redis-%d" % self.port)
        os.makedirs(self.dir)
        self.appendonly = bool(appendonly)
        self.proc = None
        self.down_since = None   # monotonic time of down(), None while up
        self.start(wait)

    @property
    def addr_str(self):
        return "127.0.0.1:%d" % self.port

    def argv(self):
        persistence = (["--appendonly", "yes", "--appendfsync", "always"] if self.appendonly
                       else ["--appendonly", "no"])
        return [_redis_server(), "--port", self.port, "--bind", "127.0.0.1", "--save", ""] + persistence + [
            "--dir", self.dir, "--daemonize", "no"]

    def start(self, wait=True):
        """Starts redis-server on this object's port (again, after kill9())."""
        if self.proc is not None and self.proc.alive():
            raise AssertionError("redis-server (pid %d) is still running" % self.proc.pid)
        self.proc = Proc(self.argv(), name="redis-%d" % self.port)
        self.down_since = None
        if wait:
            self.proc.wait_ready(lambda: self.call("PING") == "PONG", 15,
                                 "redis-server to answer PING on port %d" % self.port)
        return self

    def kill9(self):
        """SIGKILL, as a crash would; returns once it is gone."""
        self.proc.kill()

    def restart(self, keep_data=False):
        """kill -9, then start again on the same port. With keep_data=False
        the new server starts empty (snapshot and append-only file deleted);
        with keep_data=True it loads its append-only file (appendonly=True:
        every acknowledged write) or else a snapshot taken (SAVE) right
        before the kill."""
        if keep_data and not self.appendonly:
            self.call("SAVE")
        self.kill9()
        if not keep_data:
            self.wipe()
        return self.start()

    def wipe(self):
        """Deletes the data files in the server's --dir: dump.rdb and the
        append-only file(s) (Redis 7's appendonlydir/, older appendonly.aof).
        Only while the server is down."""
        if self.alive():
            raise AssertionError("redis-server (pid %d) is running: wipe() only while it is down" % self.proc.pid)
        for name in os.listdir(self.dir):
            if name == "dump.rdb" or name.startswith("appendonly") or name.startswith("temp-"):
                path = os.path.join(self.dir, name)
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path)
                else:
                    os.unlink(path)

    def down(self, save=False):
        """kill -9 (a crash), and remember it (is_down, down_since) until
        up(). With appendonly=True the data stays on disk; without, only a
        snapshot save=True takes (SAVE) right before the kill does."""
        if self.down_since is not None:
            raise AssertionError("redis on port %d is already down (down() without up())" % self.port)
        if save:
            self.call("SAVE")
        self.kill9()
        self.down_since = time.monotonic()
        return self

    @property
    def is_down(self):
        """True between down() and up()."""
        return self.down_since is not None

    def up(self, keep_data=True, wait=True):
        """Starts redis-server again on the same port after down(). With
        keep_data=True it loads what is on disk (see down()); with
        keep_data=False it starts empty."""
        if self.down_since is None:
            raise AssertionError("redis on port %d is not down (up() without down())" % self.port)
        if not keep_data:
            self.wipe()
        return self.start(wait)

    def pause(self):
        """SIGSTOP (Proc.pause): connections to it stay open, nothing answers."""
        self.proc.pause()

    def resume(self):
        self.proc.resume()

    def alive(self):
        return self.proc is not None and self.proc.alive()

    def call(self, *args, timeout=5.0):
        """One command through a fresh connection (see redis_call)."""
        return redis_call(self.port, *args, timeout=timeout)

    def cli(self, *args, timeout=15.0):
        """Runs redis-cli -p PORT ARGS...; returns its stdout, stripped.
        Fails when redis-cli exits non-zero."""
        cli = shutil.which("redis-cli")
        if cli is None:
            raise unittest.SkipTest("redis-cli is not installed (deploy/install-deps.sh installs it)")
        r = run([cli, "-p", self.port] + [str(a) for a in args], timeout=timeout)
        if r.returncode != 0:
            raise AssertionError("redis-cli %s failed (exit %d): %s%s" % (
                " ".join(map(str, args)), r.returncode, r.stdout, r.stderr))
        return r.stdout.strip()

    def hgetall(self, key):
        """{field: value} of a hash ({} when the key does not exist)."""
        flat = self.call("HGETALL", key) or []
        return dict(zip(flat[0::2], flat[1::2]))

    def smembers(self, key):
        return set(self.call("SMEMBERS", key) or [])

    def scan(self, pattern):
        """Every key matching pattern (SCAN, so safe on a big keyspace)."""
        keys, cursor = set(), "0"
        while True:
            cursor, batch = self.call("SCAN", cursor, "MATCH", pattern, "COUNT", 1000)
            keys.update(batch)
            if cursor == "0":
                return keys

    def stop(self):
        return self.proc.stop() if self.proc is not None else None


# The coordination schema in Redis (the node's contract; see README.md,
# "Inspecting with redis-cli"). Every key of one feed shares the hash tag
# {topic/key}; the every-key feed of a topic is {topic/*}.


def feed_name(topic, key):
    """"topic/key" as the node names a feed in Redis; key None or "*" =
    every key."""
    return "%s/%s" % (topic, "*" if key is None else key)


def feed_key(topic, key, suffix):
    """subway:feed:{topic/key}:SUFFIX (count, nodes, owner, offsets, relay, ctl)."""
    return "subway:feed:{%s}:%s" % (feed_name(topic, key), suffix)


def node_key(node_id, suffix=None):
    """subway:node:ID, or subway:node:ID:SUFFIX (e.g. feeds)."""
    return "subway:node:%s" % node_id + (":" + suffix if suffix else "")


NODES_KEY = "subway:nodes"


def owner_node(value):
    """The node id in the value of a feed's owner key: the key holds either
    the node id ("n1") or a session token "NODEID:INC" (INC: the owner's
    incarnation, hex); node ids never contain ':'. None stays None."""
    if value is None:
        return None
    node, sep, _inc = value.rpartition(":")
    return node if sep else value


def registered_nodes(redis):
    """The node ids registered in subway:nodes, a SET of ids or a HASH id ->
    incarnation (either schema); an empty set when the key does not exist."""
    return set(registered_incarnations(redis))


def registered_incarnations(redis):
    """{node id: incarnation} from subway:nodes: the hash's values, or None
    for each member while subway:nodes is a SET (the older schema)."""
    for _ in range(3):
        t = redis.call("TYPE", NODES_KEY)
        try:
            if t == "set":
                return {m: None for m in redis.call("SMEMBERS", NODES_KEY) or []}
            if t == "hash":
                flat = redis.call("HGETALL", NODES_KEY) or []
                return dict(zip(flat[0::2], flat[1::2]))
            if t == "none":
                return {}
        except RedisError as e:  # WRONGTYPE: the key was replaced in between; look again
            if not str(e).startswith("WRONGTYPE"):
                raise
            continue
        raise AssertionError("%s is a %s, neither a set nor a hash" % (NODES_KEY, t))
    raise AssertionError("%s kept changing type" % NODES_KEY)


# -------------------------------------------------------------- HAProxy


HAPROXY_CFG = os.path.join(REPO, "deploy", "haproxy.cfg")
HAPROXY_BACKEND = "subway_nodes"
HAPROXY_FRONTEND = "subway"


HAPROXY_TLS_FRONTEND = "subway_tls"                 # TLS terminated in HAProxy
HAPROXY_PASSTHROUGH_FRONTEND = "subway_tls_passthrough"
HAPROXY_TLS_BACKEND = "subway_nodes_tls"             # the nodes' --tls-listen ports


def haproxy_config(servers, port, stats_port, src=HAPROXY_CFG, tls=None):
    """The text of deploy/haproxy.cfg with the frontend bound to
    127.0.0.1:port, the stats page to 127.0.0.1:stats_port, and one server
    line per (name, listen_port, admin_port) in place of the file's servers
    (their options, checks and all, copied from the file's first server
    line). Fails when the file no longer has the shape this relies on.

    tls: also the file's "#tls " sections, uncommented, with
    {"crt": PEM of cert and key, "port": the terminating frontend's port,
    "passthrough_port": the passthrough frontend's, "servers": [(name,
    tls_port, admin_port)] for the passthrough backend}."""
    with open(src) as f:
        lines = f.read().split("\n")
    if tls is not None:
        lines = [l[5:] if l.startswith("#tls ") else "" if l == "#tls" else l for l in lines]

    def is_header(line):
        return bool(line) and not line[0].isspace() and not line.startswith("#")

    # the section (header line index) of every line, and which sections
    # are the stats page
    owner, cur, stats_sections = [], None, set()
    for i, line in enumerate(lines):
        if is_header(line):
            cur = i
        owner.append(cur)
        if line.strip() == "stats enable":
            stats_sections.add(cur)
    bind_ports = {"frontend " + HAPROXY_FRONTEND: port}
    section_servers = {"backend " + HAPROXY_BACKEND: servers}
    if tls is not None:
        bind_ports["frontend " + HAPROXY_TLS_FRONTEND] = tls["port"]
        bind_ports["frontend " + HAPROXY_PASSTHROUGH_FRONTEND] = tls["passthrough_port"]
        section_servers["backend " + HAPROXY_TLS_BACKEND] = tls["servers"]
    bind_rx = re.compile(r"^(\s*)bind\s+127\.0\.0\.1:\d+(\s.*)?$")
    server_rx = re.compile(r"^(\s*)server\s+\S+\s+127\.0\.0\.1:\d+(\s.*)?$")
    out, binds, servers_done = [], [], set()
    for i, line in enumerate(lines):
        sec = owner[i]
        name = " ".join(lines[sec].split()) if sec is not None else None
        m = bind_rx.match(line)
        if m:
            which = "stats" if sec in stats_sections else name
            if which not in bind_ports and which != "stats" or which in binds:
                raise AssertionError("%s:%d: a bind harness.haproxy_config() does not know: %r" % (src, i + 1, line))
            binds.append(which)
            rest = m.group(2) or ""
            if tls is not None:
                rest = re.sub(r"\bcrt \S+", "crt " + tls["crt"], rest)
            out.append("%sbind 127.0.0.1:%d%s" % (m.group(1), stats_port if which == "stats" else bind_ports[which],
                                                 rest))
            continue
        m = server_rx.match(line)
        if m:
            indent, rest = m.group(1), m.group(2) or ""
            if name not in section_servers:
                raise AssertionError("%s:%d: a server line harness.haproxy_config() does not know" % (src, i + 1))
            if not re.search(r"\bport \d+\b", rest):
                raise AssertionError("%s:%d: a server line without 'check port N'" % (src, i + 1))
            if name not in servers_done:
                for sname, lport, aport in section_servers[name]:
                    out.append("%sserver %s 127.0.0.1:%d%s" % (
                        indent, sname, lport, re.sub(r"\bport \d+\b", "port %d" % aport, rest)))
                servers_done.add(name)
            continue
        out.append(line)
    missing = ([w for w in list(bind_ports) + ["stats"] if w not in binds] +
               ["server lines of " + b for b in section_servers if b not in servers_done])
    if missing:
        raise AssertionError("%s no longer has the shape harness.haproxy_config() rewrites "
                             "(no %s)" % (src, ", ".join(missing)))
    return "\n".join(out)


def _haproxy():
    h = shutil.which("haproxy")
    if h is None:
        raise unittest.SkipTest("haproxy is not installed (deploy/install-deps.sh installs it)")
    return h


class HAProxy:
    """haproxy -f CFG -db in front of servers [(name, listen_port,
    admin_port)], CFG being deploy/haproxy.cfg with the test's ports
    (haproxy_config), or the text given as config. Ready when its stats page
    shows the frontend open."""

    def __init__(self, servers, port=None, stats_port=None, config=None, wait=True, tls_crt=None,
                 tls_servers=None):
        self.servers = [(str(n), int(p), int(a)) for n, p, a in servers]
        self.port = port or free_port()
        self.stats_port = stats_port or free_port()
        self.addr = ("127.0.0.1", self.port)
        tls = None
        if tls_crt is not None:
            # the file's "#tls" sections too: .tls_addr terminates TLS,
            # .passthrough_addr hands it to tls_servers [(name, tls_port, admin_port)]
            tls = {"crt": tls_crt, "port": free_port(), "passthrough_port": free_port(),
                   "servers": [(str(n), int(p), int(a)) for n, p, a in tls_servers or ()]}
            self.tls_addr = ("127.0.0.1", tls["port"])
            self.passthrough_addr = ("127.0.0.1", tls["passthrough_port"])
        self.cfg_path = tmp_path("haproxy.cfg")
        with open(self.cfg_path, "w") as f:
            f.write(config if config is not None else
                    haproxy_config(self.servers, self.port, self.stats_port, tls=tls))
        self.proc = Proc([_haproxy(), "-f", self.cfg_path, "-db"], name="haproxy")
        if wait:
            self.proc.wait_ready(
                lambda: self.stats_rows()[(HAPROXY_FRONTEND, "FRONTEND")]["status"] == "OPEN", 15,
                "haproxy's stats page on port %d to show frontend %s open" % (self.stats_port, HAPROXY_FRONTEND))

    @property
    def addr_str(self):
        return "%s:%d" % self.addr

    def stats_rows(self):
        """{(proxy, server): row} from the stats page's CSV (row: column ->
        value; "status" is UP, DOWN, "UP 1/2", MAINT, OPEN, ...)."""
        c = http.client.HTTPConnection("127.0.0.1", self.stats_port, timeout=5)
        try:
            c.request("GET", "/;csv")
            r = c.getresponse()
            text = r.read().decode("utf-8", "replace")
        finally:
            c.close()
        if text.startswith("# "):
            text = text[2:]
        return {(row["pxname"], row["svname"]): row for row in csv.DictReader(io.StringIO(text))}

    def server_states(self):
        """{server name: status} of the backend's servers."""
        return {sv: row["status"] for (px, sv), row in self.stats_rows().items()
                if px == HAPROXY_BACKEND and sv not in ("FRONTEND", "BACKEND")}

    def wait_servers(self, names, status="UP", timeout=15.0):
        """Waits until every server in names has exactly this status."""
        names = list(names)
        last = [None]

        def check():
            last[0] = self.server_states()
            return all(last[0].get(n) == status for n in names)

        try:
            return self.proc.wait_ready(check, timeout, "haproxy servers %s %s" % (",".join(names), status))
        except WaitTimeout as e:
            raise WaitTimeout("%s\nlast server states: %s" % (e, last[0])) from None

    def client(self, hello=True, **kw):
        """A RawClient connected through HAProxy (HELLO done unless
        hello=False; the node it reached is in .welcome.node_id)."""
        from wire import RawClient
        c = RawClient(self.addr, **kw)
        if hello:
            c.hello()
        return c

    def stop(self):
        return self.proc.stop()


# -------------------------------------------------------------- Cluster


class Cluster:
    """Redis + MockKafka(topics) + N nodes n1..nN, each started with
    --redis 127.0.0.1:P --node-id nI + node_args, + HAProxy in front (the
    test's copy of deploy/haproxy.cfg). Ready when every node answers /stats,
    is listed in Redis's subway:nodes, and HAProxy sees every node UP.

    Stopped in reverse: HAProxy, the nodes (each must exit 0 on SIGTERM,
    except those ended by kill9()), Kafka, Redis."""

    def __init__(self, topics=None, nodes=3, node_args=(), haproxy=True, kafka=None,
                 redis_proxy=False, redis_appendonly=False):
        """kafka: a running Kafka (with .bootstrap) to use instead of a new
        MockKafka(topics); the caller stops it. redis_proxy=True puts a
        nemesis.TcpProxy of its own between each node and Redis (the node's
        --redis is the proxy; proxy(node_id) cuts, heals or resets it; node
        restarts keep it). redis_appendonly: Redis(appendonly=True)."""
        self.redis = None
        self.kafka = None
        self.own_kafka = kafka is None
        self.nodes = []
        self.haproxy = None
        self.proxies = {}     # node id -> TcpProxy, with redis_proxy=True
        self.node_args = [str(a) for a in node_args]
        try:
            self.redis = Redis(appendonly=redis_appendonly)
            self.kafka = MockKafka(topics) if kafka is None else kafka
            for i in range(nodes):
                nid = "n%d" % (i + 1)
                redis_addr = self.redis.addr_str
                if redis_proxy:
                    from nemesis import TcpProxy
                    self.proxies[nid] = TcpProxy("127.0.0.1", self.redis.port, name="redis-proxy-" + nid)
                    redis_addr = self.proxies[nid].addr_str
                n = Node(self.kafka.bootstrap,
                         ["--redis", redis_addr, "--node-id", nid] + self.node_args,
                         wait=False, name="subway-" + nid)
                n.node_id = nid
                self.nodes.append(n)
            for n in self.nodes:
                n.wait_ready()
            for n in self.nodes:
                self.wait_registered(n.node_id)
            if haproxy:
                self.haproxy = HAProxy([(n.node_id, n.port, n.admin_port) for n in self.nodes])
                self.haproxy.wait_servers(self.node_ids)
        except BaseException:
            self._stop_quietly()
            raise

    # ---- the parts

    @property
    def node_ids(self):
        return [n.node_id for n in self.nodes]

    def node(self, node_id):
        """The Node called node_id."""
        for n in self.nodes:
            if n.node_id == node_id:
                return n
        raise KeyError("no node %r in %s" % (node_id, self.node_ids))

    def live_nodes(self):
        """Nodes whose process runs."""
        return [n for n in self.nodes if n.proc.alive()]

    def client(self, hello=True, **kw):
        """A RawClient through HAProxy; .welcome.node_id names its node."""
        return self.haproxy.client(hello=hello, **kw)

    def proxy(self, node_id):
        """The TcpProxy between node_id and Redis (redis_proxy=True)."""
        self.node(node_id)
        if node_id not in self.proxies:
            raise AssertionError("no Redis proxy for %s: the Cluster was made without redis_proxy=True" % node_id)
        return self.proxies[node_id]

    def registered(self):
        """The node ids in subway:nodes (a SET, or a HASH id -> incarnation)."""
        return registered_nodes(self.redis)

    def incarnation(self, node_id):
        """node_id's incarnation as subway:nodes has it (a HASH), None when
        it is not registered or subway:nodes is still a SET."""
        return registered_incarnations(self.redis).get(node_id)

    def wait_registered(self, node_id, timeout=15.0):
        """Waits until node_id is in subway:nodes and its subway:node:ID
        hash exists (the node registered itself)."""
        n = self.node(node_id)
        n.proc.wait_ready(lambda: node_id in self.registered()
                          and self.redis.call("EXISTS", node_key(node_id)) == 1,
                          timeout, "node %s registered in Redis (%s, %s)" % (node_id, NODES_KEY, node_key(node_id)))

    def restart_node(self, node_id, wait_registered=True):
        """kill -9 of node_id, then start it again with the same arguments."""
        n = self.node(node_id)
        n.kill9()
        n.start()
        if wait_registered:
            self.wait_registered(node_id)
        return n

    # ---- what Redis and the nodes say

    def feed_state(self, topic, key):
        """(count, {node_id: n}, owner) of a feed as Redis has it: count 0
        when the count key does not exist, owner None when there is none.
        owner is the node id, also when the owner key holds a session token
        "NODEID:INC" (owner_token() gives it raw)."""
        count = self.redis.call("GET", feed_key(topic, key, "count"))
        nodes = {k: int(v) for k, v in self.redis.hgetall(feed_key(topic, key, "nodes")).items()}
        owner = self.owner(topic, key)
        return (int(count) if count is not None else 0), nodes, owner

    def owner_token(self, topic, key):
        """The feed's owner key as it is ("NODEID" or "NODEID:INC"), None
        when there is none."""
        return self.redis.call("GET", feed_key(topic, key, "owner"))

    def owner(self, topic, key):
        """The node id owning the feed (owner_node of the owner key), None
        when there is none."""
        return owner_node(self.owner_token(topic, key))

    def all_stats(self):
        """{node_id: /stats} of every running node."""
        return {n.node_id: n.stats() for n in self.live_nodes()}

    def describe(self, feeds=()):
        """A text dump for failure messages: each feed's state in Redis and,
        per node, its feeds (role, subscribers, cluster_count) and assigned
        partitions."""
        parts = []
        for topic, key in feeds:
            try:
                parts.append("redis %s: count/nodes/owner = %r" % (feed_name(topic, key), self.feed_state(topic, key)))
            except Exception as e:
                parts.append("redis %s: %r" % (feed_name(topic, key), e))
        try:
            parts.append("redis %s = %r" % (NODES_KEY, sorted(registered_incarnations(self.redis).items())))
        except Exception as e:
            parts.append("redis: %r" % (e,))
        for nid, p in sorted(self.proxies.items()):
            parts.append("redis proxy of %s: %r" % (nid, p))
        for n in self.nodes:
            if not n.proc.alive():
                parts.append("node %s: not running (exit %s)" % (n.node_id, n.proc.returncode))
                continue
            try:
                s = n.stats()
                feeds_txt = ", ".join("%s/%s role=%s subs=%s cluster_count=%s" % (
                    f["topic"], "*" if f["key"] is None else f["key"], f.get("role"), f.get("subscribers"),
                    f.get("cluster_count")) for f in s["feeds"])
                parts.append("node %s: coord=%s redis=%s conns=%s feeds=[%s] assigned=%s" % (
                    n.node_id, s.get("coord"), s.get("redis"), s.get("connections"), feeds_txt,
                    sorted((a["topic"], a["partition"]) for a in s["assigned"])))
            except Exception as e:
                parts.append("node %s: /stats failed: %r" % (n.node_id, e))
        return "\n".join(parts)

    def wait(self, cond, timeout=10.0, what="a cluster condition", feeds=()):
        """wait_until(cond), failing at once if a node that was not killed on
        purpose exits; on timeout the error carries describe(feeds)."""
        def check():
            for n in self.nodes:
                if not n.killed and not n.proc.alive():
                    raise ProcExited("%s exited with %s while waiting for %s\n%s" % (
                        n.name, n.proc.returncode, what, n.proc.tail()))
            return cond()

        try:
            return wait_until(check, timeout, what)
        except WaitTimeout as e:
            raise WaitTimeout("%s\n%s" % (e, self.describe(feeds))) from None

    # ---- stopping

    def _heal_proxies(self):
        """Heals every Redis proxy, so that a partition a test left in place
        does not hold up the nodes' shutdown."""
        for p in self.proxies.values():
            try:
                p.heal()
            except AssertionError:
                pass  # closed already

    def _close_proxies(self):
        errors = []
        for p in self.proxies.values():
            try:
                p.close()
            except AssertionError as e:
                errors.append(e)
        return errors

    def _stop_quietly(self):
        if self.haproxy is not None:
            self.haproxy.stop()
        self._heal_proxies()
        for n in reversed(self.nodes):
            n.proc.stop()
        self._close_proxies()
        if self.kafka is not None and self.own_kafka:
            self.kafka.proc.stop()
        if self.redis is not None:
            self.redis.stop()

    def stop(self):
        """Stops everything; fails (after stopping the rest) when a node did
        not exit cleanly on SIGTERM. Redis proxies are healed before the
        nodes stop (a paused node is continued by its stop) and closed after."""
        errors = []
        if self.haproxy is not None:
            self.haproxy.stop()
        self._heal_proxies()
        for n in reversed(self.nodes):
            try:
                n.stop()
            except AssertionError as e:
                errors.append(e)
        errors += self._close_proxies()
        if self.kafka is not None and self.own_kafka:
            try:
                self.kafka.stop()
            except AssertionError as e:
                errors.append(e)
        if self.redis is not None:
            self.redis.stop()
        if errors:
            raise errors[0]


# ---------------------------------------------------------------- test base


class TestCase(unittest.TestCase):
    """unittest.TestCase with helpers that clean up after the test."""

    def proc(self, *a, **kw):
        p = Proc(*a, **kw)
        self.addCleanup(p.stop)
        return p

    def node(self, bootstrap, args=(), **kw):
        n = Node(bootstrap, args, **kw)
        self.addCleanup(n.stop)
        return n

    def mock_kafka(self, topics=None, **kw):
        k = MockKafka(topics, **kw)
        self.addCleanup(k.stop)
        return k

    def client(self, node, **kw):
        c = node.client(**kw)
        self.addCleanup(c.close)
        return c

    def raw_client(self, node, **kw):
        """Connected, no HELLO."""
        return self.client(node, hello=False, **kw)

    def redis(self, **kw):
        r = Redis(**kw)
        self.addCleanup(r.stop)
        return r

    def tcp_proxy(self, target_host, target_port, **kw):
        """A nemesis.TcpProxy, closed at cleanup."""
        from nemesis import TcpProxy
        p = TcpProxy(target_host, target_port, **kw)
        self.addCleanup(p.close)
        return p

    def haproxy(self, servers, **kw):
        h = HAProxy(servers, **kw)
        self.addCleanup(h.stop)
        return h

    def cluster(self, topics=None, nodes=3, node_args=(), **kw):
        c = Cluster(topics, nodes, node_args, **kw)
        self.addCleanup(c.stop)
        return c


def class_fixture(cls, obj):
    """Registers obj (has .stop()) to be stopped after the class's tests."""
    cls.addClassCleanup(obj.stop)
    return obj


class NodeCase(TestCase):
    """Tests sharing one mock Kafka (TOPICS: {name: partitions}) and one node
    (NODE_ARGS) per class. Each test uses its own keys or topics, so the
    order of tests does not matter."""

    TOPICS = {}
    NODE_ARGS = ()
    KAFKA_ARGS = {}               # MockKafka keyword arguments

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.kafka = class_fixture(cls, MockKafka(cls.TOPICS, **cls.KAFKA_ARGS))
        cls.bootstrap = cls.kafka.bootstrap
        cls.node_ = class_fixture(cls, Node(cls.kafka.bootstrap, cls.NODE_ARGS))

    @property
    def n(self):
        return self.node_

    def produce(self, topic, records, **kw):
        produce(self.bootstrap, topic, records, **kw)
