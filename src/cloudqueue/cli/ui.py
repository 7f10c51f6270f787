"""``cloudqueue ui [URL...]``: the local web console (needs the ``ui`` extra).

Binds to loopback by default. Binding anywhere else needs a token: the one in
``$CLOUDQUEUE_UI_TOKEN``, else a new one printed once; every request must then carry it.
"""

from __future__ import annotations

import argparse
import os

from ._common import CliError

NAME = "ui"
HELP = "serve a local web console: depths, charts, dead letters, redrive, purge, send"

#: Environment variable holding the console's access token.
ENV_TOKEN = "CLOUDQUEUE_UI_TOKEN"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8025
UI_HINT = "pip install 'cloudqueue[ui]'"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("urls", nargs="*", metavar="URL", help="queue or subscription URL (repeatable)")
    parser.add_argument(
        "--config", metavar="FILE",
        help="a file of destination URLs, one per line (blank lines and # comments skipped)",
    )
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"address to bind (default {DEFAULT_HOST})")
    parser.add_argument("--port", type=_port, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    parser.add_argument("--read-only", action="store_true", help="show everything, offer and allow no action")


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a port number (1 to 65535), not {text!r}") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number (1 to 65535), not {port}")
    return port


def execute(args: argparse.Namespace) -> int:
    try:  # imported when used: the core and `cloudqueue --help` stay free of the extra
        from ..ui import create_app, read_config
        from ..ui._guard import is_loopback, new_secret
        from ..ui._serve import serve
    except ImportError as error:
        raise CliError(f"`cloudqueue ui` needs {error.name or 'its extra'}: {UI_HINT}", 1) from None
    urls = list(args.urls)
    if args.config:
        urls += read_config(args.config)
    if not urls:
        raise CliError("give at least one destination URL, or --config FILE")
    token = None
    generated = False
    if not is_loopback(args.host):
        token = os.environ.get(ENV_TOKEN) or None
        if token is None:
            token, generated = new_secret(), True
            print(f"cloudqueue ui: token: {token}", flush=True)
    app = create_app(urls, read_only=args.read_only, token=token)
    shown = f"[{args.host}]" if ":" in args.host else args.host
    # The address carries the token only when it was made here (and printed anyway).
    suffix = f"?token={token}" if generated else ""
    destinations = f"{len(urls)} destination{'' if len(urls) == 1 else 's'}"
    ready = f"cloudqueue ui: serving {destinations} on http://{shown}:{args.port}/{suffix}"
    return 0 if serve(app, args.host, args.port, ready) else 1
