"""The local web console served by ``cloudqueue ui`` (needs the ``ui`` extra:
starlette, uvicorn, jinja2, python-multipart).

::

    from cloudqueue.ui import create_app
    app = create_app(["memory://orders", "sqlite:///cloudqueue.db?queue=demo-orders"])
"""

from __future__ import annotations

from ._app import create_app
from ._destinations import read_config

__all__ = ["create_app", "read_config"]
