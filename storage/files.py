"""Files uploaded through the OpenAI-style Files API (batch inputs), kept in the database."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from cascade.storage.models import StoredFile, utcnow


def add_file(session: Session, *, filename: str, purpose: str, content: bytes, api_key_id: uuid.UUID | None) -> StoredFile:
    row = StoredFile(id=f"file-{uuid.uuid4().hex}", api_key_id=api_key_id, filename=filename, purpose=purpose, content=content,
                     bytes=len(content), created_at=utcnow())
    session.add(row)
    session.flush()
    return row


def get_file(session: Session, file_id: str) -> StoredFile | None:
    return session.get(StoredFile, file_id)


def list_files(session: Session, api_key_id: uuid.UUID | None, limit: int = 100) -> list[StoredFile]:
    stmt = select(StoredFile).order_by(StoredFile.created_at.desc()).limit(limit)
    if api_key_id is not None:
        stmt = stmt.where(StoredFile.api_key_id == api_key_id)
    return list(session.scalars(stmt))
