"""indexes for audit reports filtered by time and tier

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Time-range filters on attempts and jobs; per-tier signal quantiles read (tier, p_t) alone.
    op.create_index("ix_attempts_created_at", "attempts", ["created_at"])
    op.create_index("ix_jobs_created_at", "jobs", ["created_at"])
    op.create_index("ix_attempts_tier_p_t", "attempts", ["tier", "p_t"])


def downgrade() -> None:
    op.drop_index("ix_attempts_tier_p_t", table_name="attempts")
    op.drop_index("ix_jobs_created_at", table_name="jobs")
    op.drop_index("ix_attempts_created_at", table_name="attempts")
