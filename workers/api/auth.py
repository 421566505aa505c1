"""Who is calling: the bearer key checked against its hash, its budget and its rate. Every failure is
a 401 or 429 with a message that never repeats the key."""

from __future__ import annotations

import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass

from fastapi import Request

from cascade.storage.engine import session_scope
from cascade.storage.keys import find_by_key, spent_usd
from cascade.workers.api.http_errors import ApiError

SPENT_CACHE_S = 1.0  # a key's spending is re-read at most this often (one SQL sum per key per second)


@dataclass(frozen=True)
class Caller:
    key_id: uuid.UUID | None  # None: the service runs without keys (--no-auth)
    name: str | None


ANONYMOUS = Caller(None, None)


class RateWindow:
    """Requests per key over the last 60 s, in this process."""

    def __init__(self) -> None:
        self._seen: dict[uuid.UUID, deque[float]] = {}
        self._lock = threading.Lock()

    def admit(self, key_id: uuid.UUID, rpm: int) -> bool:
        now = time.monotonic()
        with self._lock:
            seen = self._seen.setdefault(key_id, deque())
            while seen and seen[0] <= now - 60.0:
                seen.popleft()
            if len(seen) >= rpm:
                return False
            seen.append(now)
            return True


class Authenticator:
    """Checks each request's key; caches key rows and spending briefly so a hot path costs no query."""

    def __init__(self, database_url: str, *, required: bool):
        self.database_url = database_url
        self.required = required
        self.rates = RateWindow()
        self._keys: dict[str, tuple[float, object]] = {}  # presented key -> (read at, row or None)
        self._spent: dict[uuid.UUID, tuple[float, float]] = {}  # key id -> (read at, USD)

    def caller(self, request: Request, *, spends: bool) -> Caller:
        if not self.required:
            return ANONYMOUS
        header = request.headers.get("authorization", "")
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise ApiError(401, "missing API key: send 'Authorization: Bearer KEY' (create one with `cascade keys create NAME`)",
                           code="invalid_api_key")
        row = self._row(key.strip())
        if row is None:
            raise ApiError(401, "invalid or revoked API key", code="invalid_api_key")
        if row.rpm is not None and not self.rates.admit(row.id, row.rpm):
            raise ApiError(429, f"rate limit: key {row.name!r} may send {row.rpm} requests per minute; retry shortly",
                           code="rate_limit_exceeded", type_="requests")
        if spends and row.budget_usd is not None:
            spent = self._spent_usd(row.id)
            if spent >= row.budget_usd:
                raise ApiError(429, f"budget exhausted: key {row.name!r} has spent ${spent:.4f} of its ${row.budget_usd:.4f}",
                               code="insufficient_quota", type_="insufficient_quota")
        return Caller(row.id, row.name)

    def _row(self, key: str):
        def load():
            with session_scope(self.database_url) as session:
                row = find_by_key(session, key)
                if row is not None:
                    session.expunge(row)
                return row

        return _cached(self._keys, key, load)

    def _spent_usd(self, key_id: uuid.UUID) -> float:
        def load() -> float:
            with session_scope(self.database_url) as session:
                return spent_usd(session, key_id)

        return _cached(self._spent, key_id, load)


def _cached(store: dict, key, load):
    """`load()`'s value for `key`, read again once it is older than SPENT_CACHE_S."""
    now = time.monotonic()
    hit = store.get(key)
    if hit is not None and now - hit[0] < SPENT_CACHE_S:
        return hit[1]
    value = load()
    store[key] = (now, value)
    return value
