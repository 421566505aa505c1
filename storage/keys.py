"""API keys of the HTTP service: created once (the key is shown then and stored only as a hash),
looked up by hash, listed, revoked, and what each has spent."""

from __future__ import annotations

import hashlib
import secrets
import uuid

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cascade.storage.models import ApiKey, Job, utcnow

KEY_PREFIX = "csk-"


class ApiKeyError(ValueError):
    """A key cannot be created or found as asked."""


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def create_key(session: Session, name: str, *, budget_usd: float | None = None, rpm: int | None = None) -> tuple[str, ApiKey]:
    """A new key; returns (the key itself, its row). The key is never stored, only its hash."""
    if session.scalar(select(ApiKey.id).where(ApiKey.name == name)) is not None:
        raise ApiKeyError(f"a key named {name!r} exists already: choose another name, or revoke it first")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(id=uuid.uuid4(), name=name, key_hash=hash_key(key), prefix=key[:10], webhook_secret=secrets.token_hex(32),
                 budget_usd=budget_usd, rpm=rpm, created_at=utcnow())
    session.add(row)
    session.flush()
    return key, row


def find_by_key(session: Session, key: str) -> ApiKey | None:
    """The live (not revoked) key row for a presented key."""
    return session.scalars(select(ApiKey).where(ApiKey.key_hash == hash_key(key), ApiKey.revoked_at.is_(None))).first()


def list_keys(session: Session) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).order_by(ApiKey.created_at)))


def revoke_key(session: Session, name: str) -> ApiKey:
    row = session.scalars(select(ApiKey).where(ApiKey.name == name)).first()
    if row is None:
        raise ApiKeyError(f"no key named {name!r}: see `cascade keys list`")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
    return row


def key_by_name(session: Session, name: str) -> ApiKey | None:
    return session.scalars(select(ApiKey).where(ApiKey.name == name)).first()


def spent_usd(session: Session, key_id: uuid.UUID) -> float:
    """USD of every job the key submitted (the jobs' totals: shadow audits are not the key's cost)."""
    return float(session.scalar(select(func.coalesce(func.sum(Job.cost_usd), 0.0)).where(Job.api_key_id == key_id)) or 0.0)
