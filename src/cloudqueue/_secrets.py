"""Secrets the library was given, and keeping them out of everything it prints or logs.

A secret is *registered* the moment the library sees it: :class:`~cloudqueue.driver.Url`
registers its password, the values of the provider's secret parameters and the password
of every ``scheme://user:password@host`` inside a parameter value as soon as it is built
(parsing a URL builds one), before any SDK call; drivers register what they read
elsewhere (credentials, environment variables). Structured output (``str(url)``) hides
secrets by position; free text is *scrubbed*: every registered secret is replaced by
``***`` in

- the message of every :class:`~cloudqueue.QueueError` (when it is made);
- the text of the native exceptions behind it (:func:`scrub_exception`, applied to the
  whole ``__cause__``/``__context__`` chain when an exception becomes the cause of a
  ``QueueError``: :func:`cloudqueue.errors.translated`, ``error.__cause__ = native``);
- every log record of every logger, the SDKs' included (botocore logs request URLs at
  DEBUG): once a first secret is registered, a log record factory wrapping the previous
  one (:func:`logging.setLogRecordFactory`) scrubs each record as it is made, message,
  arguments, exception and stack. Records are only made for enabled levels, so this costs
  nothing when logging is off, and nothing at all in a process that registered no secret.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import quote, quote_plus, unquote

__all__ = [
    "REDACTED",
    "hide_url_passwords",
    "register_secret",
    "register_url_secrets",
    "scrub",
    "scrub_exception",
    "scrub_record",
]

REDACTED = "***"
#: Shorter values would blank out ordinary words.
_MIN_LENGTH = 4
#: ``name=value`` parts of a connection string whose value is a secret
#: (``SharedAccessKey``, ``AccountKey``, ``Password``, ``SharedAccessSignature``...).
_SECRET_PART_SUFFIXES = ("key", "secret", "password", "pwd", "signature", "sig", "token")
# The authority of ``scheme://authority`` or ``//authority`` (as urlsplit reads it: up to
# the first / ? # ; the user-info is everything before its last @).
_AUTHORITY = re.compile(r"(?:[A-Za-z][A-Za-z0-9+.\-]*:)?//([^/?#\s]*)")

_lock = threading.Lock()
_known: set[str] = set()
#: Every registered form of every secret, longest first (so a connection string is
#: blanked out whole before its key is); replaced, never mutated, so readers need no lock.
_secrets: tuple[str, ...] = ()
_log_scrubbing_installed = False


def register_secret(value: str) -> None:
    """Remember ``value`` as a secret to blank out of every message and log record.

    Its URL-encoded and repr-escaped forms are registered too, so are the secret parts
    of a connection string (``SharedAccessKey=...``) and URL passwords inside it.
    """
    if not isinstance(value, str) or len(value) < _MIN_LENGTH:
        return
    forms = {value, repr(value)[1:-1]}
    with contextlib.suppress(UnicodeError):  # a lone surrogate has no URL-encoded form
        forms |= {
            unquote(value),
            quote(value, safe=""),
            quote_plus(value, safe=""),
            quote_plus(value, safe="/:*@"),  # as Url's str() encodes parameter values
        }
    _add(form for form in forms if len(form) >= _MIN_LENGTH)
    if ";" in value or "=" in value:
        for part in value.split(";"):
            name, sep, part_value = part.partition("=")
            if sep and name.strip().lower().endswith(_SECRET_PART_SUFFIXES):
                register_secret(part_value.strip())
    register_url_secrets(value)


def register_url_secrets(text: str) -> None:
    """Register the password of every ``scheme://user:password@host`` in ``text``."""
    if "@" not in text:
        return
    for start, end in _password_spans(text):
        register_secret(text[start:end])


def hide_url_passwords(text: str) -> str:
    """``text`` with the password of every ``scheme://user:password@host`` in it as ``***``."""
    if "@" not in text:
        return text
    spans = list(_password_spans(text))
    for start, end in reversed(spans):
        text = text[:start] + REDACTED + text[end:]
    return text


def _password_spans(text: str) -> Iterator[tuple[int, int]]:
    for match in _AUTHORITY.finditer(text):
        userinfo, at, _ = match.group(1).rpartition("@")
        user, colon, password = userinfo.partition(":")
        if at and colon and password:
            start = match.start(1) + len(user) + 1
            yield start, start + len(password)


def _add(forms: Iterable[str]) -> None:
    global _secrets
    with _lock:
        new = set(forms) - _known
        if not new:
            return
        _known.update(new)
        _secrets = tuple(sorted(_known, key=len, reverse=True))
        _install_log_scrubbing()


def scrub(text: str) -> str:
    """``text`` with every registered secret replaced by ``***``."""
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def _dirty(text: str) -> bool:
    return any(secret in text for secret in _secrets)


# -- exceptions -------------------------------------------------------------------


def scrub_exception(error: BaseException) -> bool:
    """Scrub, in place, the text of ``error`` and of every exception chained to it.

    String ``args`` and ``__notes__`` are scrubbed; an exception whose ``str()`` or
    ``repr()`` is computed from elsewhere (gRPC's, for one) is given a subclass of its
    own type that scrubs them, so ``isinstance``, ``as_`` and tracebacks see the same
    type name. Returns False if some text could not be cleaned (a built-in type whose
    text does not come from ``args``).
    """
    if not _secrets:
        return True
    clean = True
    pending: list[BaseException | None] = [error]
    seen: set[int] = set()
    while pending:
        exc = pending.pop()
        if exc is None or id(exc) in seen:
            continue
        seen.add(id(exc))
        clean = _scrub_one(exc) and clean
        pending += [exc.__cause__, exc.__context__]
        if isinstance(exc, BaseExceptionGroup):
            pending += exc.exceptions
    return clean


def _texts(exc: BaseException) -> tuple[str, str]:
    try:
        return str(exc), repr(exc)
    except Exception:  # a broken __str__: traceback prints a placeholder instead
        return "", ""


def _scrub_one(exc: BaseException) -> bool:
    args = getattr(exc, "args", ())
    if isinstance(args, tuple) and any(isinstance(arg, str) and _dirty(arg) for arg in args):
        with contextlib.suppress(Exception):
            exc.args = tuple(scrub(arg) if isinstance(arg, str) else arg for arg in args)
    notes = getattr(exc, "__notes__", None)
    if isinstance(notes, list) and any(isinstance(n, str) and _dirty(n) for n in notes):
        with contextlib.suppress(Exception):
            exc.__notes__ = [scrub(n) if isinstance(n, str) else n for n in notes]
    if not any(_dirty(text) for text in _texts(exc)):
        return True
    scrubbing = _scrubbing_type(type(exc))
    if scrubbing is not None:
        with contextlib.suppress(TypeError):  # instances of built-in types keep their class
            exc.__class__ = scrubbing
    return not any(_dirty(text) for text in _texts(exc))


_scrubbing_types: dict[type[BaseException], type[BaseException] | None] = {}


def _scrubbing_type(cls: type[BaseException]) -> type[BaseException] | None:
    """A subclass of ``cls`` whose ``str()`` and ``repr()`` are scrubbed (None if impossible)."""
    if getattr(cls, "_cloudqueue_scrubbing", False):
        return None
    if cls in _scrubbing_types:
        return _scrubbing_types[cls]
    base_str: Callable[[BaseException], str] = cls.__str__
    base_repr: Callable[[BaseException], str] = cls.__repr__
    base_reduce: Callable[[BaseException], Any] = cls.__reduce__

    def __str__(self: BaseException) -> str:
        return scrub(base_str(self))

    def __repr__(self: BaseException) -> str:
        return scrub(base_repr(self))

    def __reduce__(self: BaseException) -> Any:
        # Pickle as the original type (this subclass cannot be imported by name).
        reduced = base_reduce(self)
        if isinstance(reduced, tuple) and reduced and reduced[0] is type(self):
            reduced = (cls, *reduced[1:])
        return reduced

    namespace = {
        "__slots__": (),
        "__str__": __str__,
        "__repr__": __repr__,
        "__reduce__": __reduce__,
        "__module__": cls.__module__,
        "__qualname__": cls.__qualname__,
        "_cloudqueue_scrubbing": True,
    }
    subclass: type[BaseException] | None
    try:
        metaclass: Any = type(cls)
        subclass = metaclass(cls.__name__, (cls,), namespace)
    except Exception:  # a metaclass or __init_subclass__ that will not have it
        subclass = None
    _scrubbing_types[cls] = subclass
    return subclass


# -- logging ----------------------------------------------------------------------


def scrub_record(record: logging.LogRecord) -> None:
    """Scrub a log record in place: its message (arguments merged in when they hold a
    secret), exception and stack text."""
    if not _secrets:
        return
    try:
        message = record.getMessage()
    except Exception:  # a bad format string: logging reports msg and args as they are
        record.msg = scrub(str(record.msg))
        if isinstance(record.args, tuple):
            record.args = tuple(scrub(a) if isinstance(a, str) else a for a in record.args)
    else:
        if _dirty(message):
            record.msg, record.args = scrub(message), ()
    exc_info = record.exc_info
    if exc_info and exc_info[1] is not None and not scrub_exception(exc_info[1]):
        # Some text could not be fixed in place: format the traceback now, scrubbed
        # (formatters use exc_text when it is set).
        record.exc_text = scrub(logging.Formatter().formatException(exc_info))
    if record.exc_text and _dirty(record.exc_text):
        record.exc_text = scrub(record.exc_text)
    if record.stack_info and _dirty(record.stack_info):
        record.stack_info = scrub(record.stack_info)


def _install_log_scrubbing() -> None:
    """Wrap the log record factory so every record is scrubbed as it is made (once)."""
    global _log_scrubbing_installed
    if _log_scrubbing_installed:
        return
    _log_scrubbing_installed = True
    previous = logging.getLogRecordFactory()

    def scrubbing_record_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        if _secrets:
            try:
                scrub_record(record)
            except Exception:  # never let scrubbing break a log call
                record.msg, record.args, record.exc_info, record.exc_text = (
                    "(log record withheld: it could not be scrubbed of secrets)", (), None, None,
                )
        return record

    logging.setLogRecordFactory(scrubbing_record_factory)
