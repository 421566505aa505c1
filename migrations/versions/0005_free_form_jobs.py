"""free-form jobs: job kind, gold aliases, grader, generation options, generated text, graded answers,
per-token log-probs, and the 'abstained' decision

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""
import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("kind", sa.String(8), nullable=False, server_default="choice"))
        batch.add_column(sa.Column("gold_aliases", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("grader", sa.String(16), nullable=True))
        batch.add_column(sa.Column("max_tokens", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("stop", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("correct", sa.Boolean(), nullable=True))
        batch.alter_column("answer", type_=sa.Text(), existing_type=sa.String(8), existing_nullable=True)
        batch.create_check_constraint("kind", "kind IN ('choice', 'open')")
    with op.batch_alter_table("attempts") as batch:
        batch.add_column(sa.Column("correct", sa.Boolean(), nullable=True))
        batch.add_column(sa.Column("p_t_aggregate", sa.String(16), nullable=True))
        batch.add_column(sa.Column("token_logprobs", sa.JSON(), nullable=True))
        batch.alter_column("answer", type_=sa.Text(), existing_type=sa.String(8), existing_nullable=True)
        batch.drop_constraint(op.f("ck_attempts_decision"), type_="check")
        batch.create_check_constraint("decision", "decision IN ('accepted', 'escalated', 'failed', 'abstained')")
    # Grade what is already stored: a multiple-choice answer is right when it is the gold letter.
    op.execute("UPDATE jobs SET grader = 'choice' WHERE gold IS NOT NULL")
    op.execute("UPDATE jobs SET correct = (answer = gold) WHERE gold IS NOT NULL AND status = 'done'")
    op.execute(
        "UPDATE attempts SET correct = (answer = (SELECT gold FROM jobs WHERE jobs.id = attempts.job_id)) "
        "WHERE answer IS NOT NULL AND EXISTS (SELECT 1 FROM jobs WHERE jobs.id = attempts.job_id AND jobs.gold IS NOT NULL)"
    )


def downgrade() -> None:
    op.execute("DELETE FROM attempts WHERE decision = 'abstained'")
    with op.batch_alter_table("attempts") as batch:
        batch.drop_constraint(op.f("ck_attempts_decision"), type_="check")
        batch.create_check_constraint("decision", "decision IN ('accepted', 'escalated', 'failed')")
        batch.drop_column("token_logprobs")
        batch.drop_column("p_t_aggregate")
        batch.drop_column("correct")
    op.execute("DELETE FROM jobs WHERE kind = 'open'")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_constraint(op.f("ck_jobs_kind"), type_="check")
        batch.drop_column("correct")
        batch.drop_column("stop")
        batch.drop_column("max_tokens")
        batch.drop_column("grader")
        batch.drop_column("gold_aliases")
        batch.drop_column("kind")
