"""Credentials never appear in a stored or printed message: URLs are shown without user and password."""

from __future__ import annotations

import re

_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<userinfo>[^/@\s]*@)")


def redact_url(url: str) -> str:
    """`url` with any user:password@ replaced by ***@ (the host stays, so the message still says where)."""
    return _CREDENTIALS.sub(lambda m: f"{m.group('scheme')}***@", url)


def redact(text: str) -> str:
    """Every URL inside `text` redacted, e.g. an exception message that quotes a connection string."""
    return redact_url(text)
