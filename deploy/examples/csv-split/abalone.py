#!/usr/bin/env python3
"""abalone.py -- publishes CSV rows shaped like the UCI abalone data through subway, keyed by one column."""

import asyncio
import os
import random
import sys
from typing import List

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))   # program.py

import program  # noqa: E402
import subway  # noqa: E402

COLUMNS = ("sex", "length", "diameter", "height", "whole", "shucked", "viscera", "shell", "rings")
HEADER = ",".join(COLUMNS)


def make_row(rnd: random.Random) -> List[str]:
    """One made-up abalone: the real data's columns, units (mm/200, grams/200) and rough ranges."""
    sex = rnd.choice("MFI")
    length = rnd.uniform(0.2, 0.75) if sex != "I" else rnd.uniform(0.1, 0.55)
    diameter = length * rnd.uniform(0.74, 0.82)
    height = length * rnd.uniform(0.24, 0.36)
    whole = 3.0 * length ** 3 * rnd.uniform(0.8, 1.2)
    shucked = whole * rnd.uniform(0.38, 0.48)
    viscera = whole * rnd.uniform(0.18, 0.25)
    shell = whole * rnd.uniform(0.26, 0.32)
    rings = max(1, int(round(length * 18 + rnd.gauss(0, 2))))
    return [sex] + ["%.3f" % v for v in (length, diameter, height)] + \
        ["%.4f" % v for v in (whole, shucked, viscera, shell)] + [str(rings)]


async def publish_rows(addr: str, topic: str, key_column: str, rows: int, seed: int, interval: float) -> None:
    """Publishes `rows` rows (key: the row's key_column), printing each as KEY<TAB>ROW once acked."""
    col = COLUMNS.index(key_column)
    rnd = random.Random(seed)
    async with subway.connect(addr, client_name="abalone") as c:
        for _ in range(rows):
            row = make_row(rnd)
            line = ",".join(row)
            await c.publish(topic, row[col], line)   # one at a time: each key's rows stay in order
            print("%s\t%s" % (row[col], line), flush=True)
            if interval:
                await asyncio.sleep(interval)       # the pace of the demo, not a wait for an event


def main() -> int:
    ap = program.parser(__doc__)
    ap.add_argument("--topic", default="abalone")
    ap.add_argument("--key", default="sex", choices=COLUMNS, help="the column whose value is the record's key")
    ap.add_argument("--rows", type=int, default=100)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--interval", type=float, default=0.0, help="seconds between rows")
    ap.add_argument("--header", action="store_true", help="print the CSV header line and exit")
    args = ap.parse_args()
    if args.header:
        print(HEADER)
        return 0
    return program.run("abalone", publish_rows(args.subway, args.topic, args.key, args.rows, args.seed,
                                               args.interval))


if __name__ == "__main__":
    sys.exit(main())
