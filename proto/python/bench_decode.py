"""bench_decode.py -- how many MESSAGE frames a second the Python decoder turns into Records on one core.

    python3 proto/python/bench_decode.py [N]

Encodes N (default 500000) MESSAGE frames like the node's (a 7-byte key, a
100-byte value, realistic offsets and timestamps), then times feeding them
to a Decoder in 64 KiB reads, as a socket delivers them: frames checked,
then Records built, as the client does.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from subway import codec  # noqa: E402
from subway.records import Record  # noqa: E402


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 500000
    one = [codec.encode(codec.MESSAGE, 3, i % 12, 1234567 + i, 1700000000000 + i, b"user-42", b"v" * 100)
           for i in range(1000)]
    data = b"".join(one) * (n // 1000)
    chunks = [data[i:i + 65536] for i in range(0, len(data), 65536)]
    for what, build in (("frames", False), ("records", True)):
        d = codec.Decoder()
        got = 0
        t0 = time.perf_counter()
        for chunk in chunks:
            d.feed(chunk)
            f = d.next()
            while f is not None:
                if build:
                    Record("orders", f[5], f[6], f[2], f[3], f[4], [])
                got += 1
                f = d.next()
        dt = time.perf_counter() - t0
        assert got == n // 1000 * 1000, got
        print("%-8s %d MESSAGE frames (%d bytes each) in %.2f s: %.0f frames/s"
              % (what, got, len(one[0]), dt, got / dt))


if __name__ == "__main__":
    main()
