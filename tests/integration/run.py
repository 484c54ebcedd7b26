#!/usr/bin/env python3
"""run.py -- runs the subway integration tests (tests/integration/test_*.py).

    python3 tests/integration/run.py --bin bin [-k PATTERN]... [-v]

Ends with one line "integration: N passed, M failed" (N, M = test methods;
errors, skips and unexpected successes count as failed: this suite never
skips) and exits non-zero when any failed. --after-plain (the sanitizer pass
of make test) leaves out the tests marked PLAIN_ONLY and says how many.
SUBWAY_DURATIONS=FILE writes every test's time there, slowest first. -k
selects tests whose id
(module.Class.test_name) contains PATTERN, or matches it as a shell-style
pattern when it has wildcards (* ? [). On a failure the tails of the logs of
the processes the test used are printed; SUBWAY_KEEP_TMP=1 keeps the whole
logs (the temp dir's path is printed at the end).
"""

import argparse
import fnmatch
import os
import signal
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import harness  # noqa: E402


class Result(unittest.TextTestResult):
    """Counts per test method; prints process logs of failed tests."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.passed = 0
        self.failed_ids = []
        self._t0 = 0.0
        self._alive = []
        self.durations = []   # (seconds, test id)

    def startTest(self, test):
        self._t0 = time.monotonic()
        self._alive = harness.alive_procs()
        super().startTest(test)

    def stopTest(self, test):
        self.durations.append((time.monotonic() - self._t0, test.id()))
        super().stopTest(test)

    def addSuccess(self, test):
        super().addSuccess(test)
        self.passed += 1

    def _failed(self, test, what):
        self.failed_ids.append("%s (%s)" % (test.id(), what))
        logs = [p.tail() for p in harness.procs_since(self._t0, self._alive)]
        if logs:
            self.stream.writeln("")
            self.stream.writeln("==== process logs for %s" % test.id())
            for t in logs:
                self.stream.writeln(t)
            self.stream.writeln("====")
        self.stream.flush()

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._failed(test, "failed")

    def addError(self, test, err):
        super().addError(test, err)
        # setUpClass/tearDownClass errors arrive as _ErrorHolder "tests"
        self._failed(test, "error")

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self.failed_ids.append("%s (skipped: %s)" % (test.id(), reason))

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self.passed += 1

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self.failed_ids.append("%s (unexpected success)" % test.id())

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        # a failing subtest fails its test; count the method once
        if err is not None:
            self._failed(subtest, "subtest failed")


def iter_tests(suite):
    for t in suite:
        if isinstance(t, unittest.TestSuite):
            yield from iter_tests(t)
        else:
            yield t


def select(suite, patterns):
    if not patterns:
        return suite
    out = unittest.TestSuite()
    for t in iter_tests(suite):
        tid = t.id()
        for p in patterns:
            if (any(c in p for c in "*?[") and fnmatch.fnmatchcase(tid, "*" + p + "*")) or p in tid:
                out.addTest(t)
                break
    return out


def plain_only(t):
    """Why t is left to the plain pass (a PLAIN_ONLY on its class or
    module), or None."""
    return getattr(type(t), "PLAIN_ONLY", None) or getattr(sys.modules.get(type(t).__module__), "PLAIN_ONLY", None)


def leave_plain_only(suite):
    """The suite without the PLAIN_ONLY tests, and their count by reason."""
    out, left = unittest.TestSuite(), {}
    for t in iter_tests(suite):
        why = plain_only(t)
        if why:
            left[why] = left.get(why, 0) + 1
        else:
            out.addTest(t)
    return out, left


def main():
    # Started in the background by a non-interactive shell, this process has
    # SIGINT ignored, and so would every process it starts: a script's Ctrl-C
    # trap (run-dev.sh) could not even be set. Take it back to the default.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default=os.path.join(harness.REPO, "bin"),
                    help="directory with subway, subway-cli and tests/mock_kafka (default: bin)")
    ap.add_argument("-k", dest="patterns", action="append", default=[],
                    help="run only tests whose id contains PATTERN (repeatable)")
    ap.add_argument("--after-plain", action="store_true",
                    help="a second pass (under a sanitizer) after a plain one: leave out the tests marked "
                         "PLAIN_ONLY, which check Kafka's, a script's or a Python client's behaviour rather "
                         "than the node's memory; they are listed, not counted")
    ap.add_argument("-v", dest="verbose", action="store_true", help="one line per test")
    args = ap.parse_args()

    harness.configure(args.bin)
    os.environ["SUBWAY_BIN"] = os.path.abspath(args.bin)
    missing = [n for n in ("subway", "subway-cli", "tests/mock_kafka")
               if not os.access(harness.bin_path(n), os.X_OK)]
    if missing:
        print("run.py: not built in %s: %s (the tests that need them fail)"
              % (os.path.abspath(args.bin), ", ".join(missing)), file=sys.stderr)

    loader = unittest.TestLoader()
    suite = loader.discover(HERE, pattern="test_*.py", top_level_dir=HERE)
    suite = select(suite, args.patterns)
    if args.after_plain:
        suite, left = leave_plain_only(suite)
        for why, n in sorted(left.items()):
            print("left to the plain pass: %d test%s (%s)" % (n, "" if n == 1 else "s", why))
    total = suite.countTestCases()

    runner = unittest.TextTestRunner(stream=sys.stdout, verbosity=2 if args.verbose else 1,
                                     resultclass=Result, buffer=False)
    t0 = time.monotonic()
    result = runner.run(suite)
    elapsed = time.monotonic() - t0

    # A method passes when it succeeded (no failing subtest either); every
    # other selected method failed: failure, error, skip, unexpected
    # success, or never ran because its class or module failed to set up.
    # A tearDownClass/tearDownModule error after passing tests still fails
    # the run.
    failed = total - result.passed
    holder_errors = sum(1 for t, _ in result.errors if isinstance(t, unittest.suite._ErrorHolder))
    if failed == 0 and holder_errors:
        failed = holder_errors
    if os.environ.get("SUBWAY_DURATIONS"):
        # Every test's seconds, slowest first: what to look at when the suite nears its budget.
        with open(os.environ["SUBWAY_DURATIONS"], "w") as f:
            for d, tid in sorted(result.durations, reverse=True):
                f.write("%8.2f  %s\n" % (d, tid))
    if args.verbose:
        print("\nslowest:")
        for d, tid in sorted(result.durations, reverse=True)[:8]:
            print("  %6.2fs  %s" % (d, tid))
    if result.failed_ids:
        print("\nnot passed:")
        for tid in result.failed_ids:
            print("  " + tid)
    if os.environ.get("SUBWAY_KEEP_TMP") and harness._tmp_root:
        print("logs kept in %s" % harness._tmp_root)
    print("(%.1fs)" % elapsed)
    print("integration: %d passed, %d failed" % (result.passed, failed))
    if total == 0:
        print("run.py: no tests selected", file=sys.stderr)
        return 1
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
