"""The user's own SDK objects, handed to a provider next to a URL (``sdk=``)."""

from __future__ import annotations

import dataclasses

from .errors import InvalidArgument

__all__ = ["SdkObjects", "expect_type"]


class SdkObjects:
    """Base of each provider's bundle of the user's own SDK objects: a session, a
    credential, a configured client. Pass one as ``sdk=`` next to the URL::

        cloudqueue.open_producer("sqs://queue/orders", sdk=SqsSdk(session=my_session))

    Ownership: objects in it belong to the user and are never closed by cloudqueue;
    what cloudqueue makes from them (clients built on the user's session or
    credential) it closes.

    For plugin authors: declare subclasses ``@dataclass(frozen=True, repr=False)``
    with fields typed by the SDK's classes, check each field in ``__post_init__``
    with :func:`expect_type`, and set ``Provider.sdk_type`` to the class. The
    ``repr`` here names the fields that are set and their types, never their
    values: credentials live inside them.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        names: list[str] = (
            [item.name for item in dataclasses.fields(self)] if dataclasses.is_dataclass(self) else []
        )
        shown = ", ".join(
            f"{name}=<{type(value).__name__}>"
            for name in names
            if (value := getattr(self, name, None)) is not None
        )
        return f"{type(self).__name__}({shown})"


def expect_type(owner: str, name: str, value: object, expected: tuple[type, ...] | type,
                described: str) -> None:
    """Refuse ``value`` for field ``name`` of ``owner`` unless it is None or an
    instance of ``expected``; the error names ``described`` (the expected classes
    as users import them) and the type given, never the value."""
    if value is not None and not isinstance(value, expected):
        raise InvalidArgument(
            f"{owner}({name}=...) must be {described}, not {type(value).__module__}."
            f"{type(value).__qualname__}"
        )
