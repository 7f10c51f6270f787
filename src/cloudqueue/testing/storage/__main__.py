"""``python -m cloudqueue.testing.storage install-azurite [--dir DIR]``: Azurite ahead of the tests."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ._azurite import install_azurite
from ._process import EmulatorError


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cloudqueue.testing.storage")
    commands = parser.add_subparsers(dest="command", required=True)
    install = commands.add_parser("install-azurite", help="npm-install the pinned Azurite (idempotent)")
    install.add_argument(
        "--dir", type=Path, help="install folder (default: $CLOUDQUEUE_AZURITE_DIR, else the cache)"
    )
    args = parser.parse_args(argv)
    try:
        print(install_azurite(args.dir, quiet=False), flush=True)
    except EmulatorError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
