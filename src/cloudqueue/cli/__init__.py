"""The ``cloudqueue`` command.

Each subcommand lives in a module of this package exposing ``NAME``, ``HELP``,
``configure(parser)`` and ``execute(args) -> int``. Adding a subcommand is one
new module plus one entry in :data:`COMMANDS`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from ..errors import QueueError
from . import (
    asyncapi,
    declare,
    demo,
    dlq,
    peek,
    providers,
    purge,
    receive,
    redrive,
    run,
    send,
    stats,
    top,
    ui,
)
from ._common import CliError, OneLineParser, fail

__all__ = ["COMMANDS", "build_parser", "main"]

#: Every subcommand, in the order ``--help`` lists them.
COMMANDS = (providers, declare, send, receive, purge, demo, run, stats, peek, dlq, redrive, top, asyncapi, ui)


def build_parser() -> OneLineParser:
    parser = OneLineParser(
        prog="cloudqueue",
        description="Send, receive and manage messages on any cloudqueue backend. "
        "Pick the backend with --url or the CLOUDQUEUE_URL environment variable.",
    )
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"cloudqueue {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        sub = commands.add_parser(command.NAME, help=command.HELP, description=command.HELP)
        command.configure(sub)
        sub.set_defaults(execute=command.execute)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); return the exit code.

    Library errors become one line on stderr and exit code 1; bad usage exits 2.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        code: int = args.execute(args)
        return code
    except SystemExit as exit_:  # argparse: --help, --version, usage errors
        return exit_.code if isinstance(exit_.code, int) else 1
    except QueueError as error:
        return fail(f"{error.code.value}: {error}")
    except CliError as error:
        return fail(str(error), error.exit_code)
    except ImportError as error:  # a provider plugin that cannot be imported
        return fail(f"could not load a provider plugin: {error}")
    except BrokenPipeError:  # the reader went away (e.g. `| head`): not an error
        return 0
    except OSError as error:
        return fail(f"{error.strerror or error}" + (f": {error.filename}" if error.filename else ""))
    except KeyboardInterrupt:
        return fail("interrupted", 130)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
