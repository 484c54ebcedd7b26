"""program.py -- what every example program's main() shares: the --subway option, asyncio.run, and exit codes for errors and Ctrl-C."""

import argparse
import asyncio
import sys
from typing import Awaitable

import subway


def parser(doc: str) -> argparse.ArgumentParser:
    """An ArgumentParser described by doc's first line, with --subway HOST:PORT."""
    ap = argparse.ArgumentParser(description=doc.strip().split("\n")[0])
    ap.add_argument("--subway", default="127.0.0.1:7700", help="a node (or a load balancer) HOST:PORT")
    return ap


def run(name: str, main: Awaitable[None]) -> int:
    """Runs main to its end: 0, or 1 after printing a subway error; Ctrl-C is a clean 0."""
    try:
        asyncio.run(main)  # type: ignore[arg-type]
    except subway.SubwayError as e:
        print("%s: %s: %s" % (name, e.name, e.text), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0
