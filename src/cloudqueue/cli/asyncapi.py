"""``cloudqueue asyncapi module:app``: write the AsyncAPI 3.0.0 document of a worker app."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ._common import CliError

NAME = "asyncapi"
HELP = "write the AsyncAPI 3.0.0 document (JSON) of a worker app (module:attribute)"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("app", metavar="MODULE:APP",
                        help="where the cloudqueue.worker.App is, e.g. orders:app (APP: app)")
    parser.add_argument("-o", "--output", metavar="FILE", type=Path,
                        help="write the document to FILE (default: standard output)")
    parser.add_argument("--title", help="the document's info.title (default: the module's name)")
    parser.add_argument("--app-version", default="1.0.0", metavar="VERSION",
                        help="the document's info.version, the version of the app's API (default 1.0.0)")


def execute(args: argparse.Namespace) -> int:
    from ..asyncapi import build_document
    from ..worker import App
    from .run import load_app

    app = load_app(args.app)
    assert isinstance(app, App)
    if not app.routes and not app.publications:
        raise CliError(f"{args.app} has no handlers and declares no publications: nothing to describe", 1)
    module_name = args.app.partition(":")[0]
    description = _module_summary(module_name)
    document = build_document(app, title=args.title or module_name, version=args.app_version,
                              description=description)
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text, encoding="utf-8")
    return 0


def _module_summary(module_name: str) -> str | None:
    """The first paragraph of the app module's docstring, as the document's description."""
    module = sys.modules.get(module_name)
    doc = (module.__doc__ or "").strip() if module else ""
    return " ".join(doc.split("\n\n", 1)[0].split()) or None
