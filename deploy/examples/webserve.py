"""webserve.py -- what the web examples share: --host/--port options, and serving an aiohttp app until the program ends."""

import argparse
import asyncio

from aiohttp import web


def add_options(ap: argparse.ArgumentParser, port: int) -> None:
    """Adds --host (default 127.0.0.1) and --port (default port)."""
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=port)


async def serve(name: str, app: web.Application, host: str, port: int) -> None:
    """Serves app on host:port, prints "NAME: listening on URL", and runs until cancelled."""
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        print("%s: listening on http://%s:%d/" % (name, host, port), flush=True)
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
