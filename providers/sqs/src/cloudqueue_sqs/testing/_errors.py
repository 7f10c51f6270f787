"""Errors raised by the LocalStack helpers."""

from __future__ import annotations


class LocalStackError(RuntimeError):
    """LocalStack could not be installed, started or reached."""


class LocalStackInstallError(LocalStackError):
    """Creating the LocalStack virtual environment or installing into it failed."""


class LocalStackStartError(LocalStackError):
    """LocalStack did not become ready; the message ends with the tail of its log."""
