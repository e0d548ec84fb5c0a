"""Errors the command line reports as one line with exit code 2 (bad input)."""

from __future__ import annotations


class UserError(ValueError):
    """Bad input from the user: the message says what is wrong and how to fix it."""
