"""``python -m cloudqueue``: the same as the ``cloudqueue`` command."""

import sys

from .cli import main

sys.exit(main())
