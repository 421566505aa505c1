"""batches, and batch membership of jobs

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "batches",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("id_field", sa.String(255), nullable=False),
        sa.Column("rows_read", sa.BigInteger(), nullable=False),
        sa.Column("rows_rejected", sa.BigInteger(), nullable=False),
        sa.Column("errors", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('validating', 'in_progress', 'finalizing', 'completed', 'failed', 'cancelling', 'cancelled')",
            name=op.f("ck_batches_status"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_batches")),
        sa.UniqueConstraint("name", name=op.f("uq_batches_name")),
    )
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("batch_id", sa.Uuid(), nullable=True))
        batch.add_column(sa.Column("row_id", sa.String(255), nullable=True))
        batch.add_column(sa.Column("row_index", sa.BigInteger(), nullable=True))
        batch.create_foreign_key(
            op.f("fk_jobs_batch_id_batches"), "batches", ["batch_id"], ["id"], ondelete="CASCADE"
        )
        batch.create_unique_constraint("uq_jobs_batch_id_row_id", ["batch_id", "row_id"])
        batch.drop_constraint(op.f("ck_jobs_status"), type_="check")
        batch.create_check_constraint("status", "status IN ('queued', 'done', 'failed', 'cancelled')")
    op.create_index("ix_jobs_batch_id_status", "jobs", ["batch_id", "status"])


def downgrade() -> None:
    op.drop_index("ix_jobs_batch_id_status", table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_constraint(op.f("ck_jobs_status"), type_="check")
        batch.create_check_constraint("status", "status IN ('queued', 'done', 'failed')")
        batch.drop_constraint("uq_jobs_batch_id_row_id", type_="unique")
        batch.drop_constraint(op.f("fk_jobs_batch_id_batches"), type_="foreignkey")
        batch.drop_column("row_index")
        batch.drop_column("row_id")
        batch.drop_column("batch_id")
    op.drop_table("batches")
