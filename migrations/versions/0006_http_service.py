"""the HTTP service: API keys, uploaded files, webhook deliveries; jobs and batches record their key,
jobs their callback and a pinned tier

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("webhook_secret", sa.String(64), nullable=False),
        sa.Column("budget_usd", sa.Double(), nullable=True),
        sa.Column("rpm", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("name", name=op.f("uq_api_keys_name")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
    )
    op.create_table(
        "files",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("api_key_id", sa.Uuid(), nullable=True),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("purpose", sa.String(32), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["api_key_id"], ["api_keys.id"], name=op.f("fk_files_api_key_id_api_keys"), ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_files")),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("delivered", sa.Boolean(), nullable=False),
        sa.Column("duration_ms", sa.Double(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name=op.f("fk_webhook_deliveries_job_id_jobs"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
    )
    op.create_index(op.f("ix_webhook_deliveries_job_id"), "webhook_deliveries", ["job_id"])
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("stop_tier", sa.String(64), nullable=True))
        batch.add_column(sa.Column("api_key_id", sa.Uuid(), nullable=True))
        batch.add_column(sa.Column("callback_url", sa.Text(), nullable=True))
        batch.add_column(sa.Column("callback_state", sa.String(16), nullable=True))
        batch.add_column(sa.Column("callback_attempts", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("callback_next_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_foreign_key(op.f("fk_jobs_api_key_id_api_keys"), "api_keys", ["api_key_id"], ["id"], ondelete="SET NULL")
        batch.create_index("ix_jobs_api_key_id", ["api_key_id"])
        batch.create_index("ix_jobs_callback_pending", ["callback_state", "callback_next_at"])
    with op.batch_alter_table("batches") as batch:
        batch.add_column(sa.Column("api_key_id", sa.Uuid(), nullable=True))
        batch.add_column(sa.Column("input_file_id", sa.String(64), nullable=True))
        batch.add_column(sa.Column("request_meta", sa.JSON(), nullable=True))
        batch.create_foreign_key(op.f("fk_batches_api_key_id_api_keys"), "api_keys", ["api_key_id"], ["id"], ondelete="SET NULL")


def downgrade() -> None:
    with op.batch_alter_table("batches") as batch:
        batch.drop_constraint(op.f("fk_batches_api_key_id_api_keys"), type_="foreignkey")
        batch.drop_column("request_meta")
        batch.drop_column("input_file_id")
        batch.drop_column("api_key_id")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_index("ix_jobs_callback_pending")
        batch.drop_index("ix_jobs_api_key_id")
        batch.drop_constraint(op.f("fk_jobs_api_key_id_api_keys"), type_="foreignkey")
        for column in ("callback_next_at", "callback_attempts", "callback_state", "callback_url", "api_key_id", "stop_tier"):
            batch.drop_column(column)
    op.drop_index(op.f("ix_webhook_deliveries_job_id"), "webhook_deliveries")
    op.drop_table("webhook_deliveries")
    op.drop_table("files")
    op.drop_table("api_keys")
